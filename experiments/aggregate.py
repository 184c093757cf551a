"""Numbers over seeds: mean and sample standard deviation per metric, and what the paired
difference of two arms over the same seeds can tell (its t interval, the sign test, the
effect the setup could detect)."""

import numpy as np
from scipy import stats


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


# The paired contrasts: two-sided 95 % intervals; power for the detectable effect.
CONFIDENCE = 0.95
POWER = 0.8


def paired_difference(differences, confidence=CONFIDENCE, power=POWER):
    """What paired differences over seeds (one per seed, ``a - b``) can say.

    Returns a dict: ``n``, ``mean``, ``std`` (ddof = 1), the ``confidence`` interval of the
    mean from Student's t with n - 1 degrees of freedom (``low``, ``high``, ``half_width``),
    the two-sided sign test's ``sign_p`` (exact binomial, ties dropped), the counts
    ``higher`` / ``lower`` / ``tied``, and ``detectable``: the true mean difference this
    setup would find with probability ``power`` at this spread, ``(t_{1-a/2} + t_{power}) *
    std / sqrt(n)``. The interval and ``detectable`` are None below 2 seeds or when every
    difference is equal (no spread to scale them).
    """
    values = np.asarray(differences, dtype=np.float64)
    n = len(values)
    higher, lower = int(np.sum(values > 0)), int(np.sum(values < 0))
    found = {
        "n": n,
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if n > 1 else None,
        "higher": higher,
        "lower": lower,
        "tied": n - higher - lower,
        "sign_p": float(stats.binomtest(higher, higher + lower).pvalue) if higher + lower else 1.0,
        "low": None,
        "high": None,
        "half_width": None,
        "detectable": None,
    }
    if n > 1 and found["std"] > 0:
        scale = found["std"] / np.sqrt(n)
        critical = stats.t.ppf(0.5 + confidence / 2, n - 1)
        found["half_width"] = float(critical * scale)
        found["low"] = found["mean"] - found["half_width"]
        found["high"] = found["mean"] + found["half_width"]
        found["detectable"] = float((critical + stats.t.ppf(power, n - 1)) * scale)
    return found


def verdict(paired):
    """``"matches"``, ``"opposite"`` (the interval excludes 0, above or below it) or
    ``"no detectable difference"``; ``"one seed"`` below two, where no interval exists. An
    interval of no width (every seed's difference the same, nonzero) excludes 0."""
    if paired["n"] < 2:
        return "one seed"
    if paired["half_width"] is None:  # every difference equal: a point, trusted from 3 seeds
        if paired["n"] < 3:
            return "no detectable difference"
        low = high = paired["mean"]
    else:
        low, high = paired["low"], paired["high"]
    if low > 0:
        return "matches"
    if high < 0:
        return "opposite"
    return "no detectable difference"
