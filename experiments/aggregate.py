"""Numbers over seeds: mean and sample standard deviation, per metric."""

import numpy as np


def summarize(values):
    """``{"mean", "std", "n"}`` of a list of numbers; ``std`` is the sample standard
    deviation (ddof = 1), None for a single value."""
    values = np.asarray(values, dtype=np.float64)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": float(np.mean(values)), "std": std, "n": int(len(values))}


def summarize_runs(runs):
    """:func:`summarize` of every metric that all ``runs`` (dicts with ``metrics``) report."""
    keys = set.intersection(*(set(run["metrics"]) for run in runs)) if runs else set()
    return {key: summarize([run["metrics"][key] for run in runs]) for key in sorted(keys)}
