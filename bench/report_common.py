"""What the per-bench renderers (bench/*_report.py) and bench/report.py share: reading the
JSONs, the lines beside every table (machine, versions, date, load, command) and the
formatting of loads, percentages and unsteady step times. Standard library only, so that
the report renders without TensorFlow."""

import json
import os

# Step times of one variant whose slowest is more than this times the fastest are flagged.
NOISY_SPREAD = 1.25


def load_results(results_dir, names):
    """``{name: the JSON <results_dir>/<name>.json, or None when there is none}``."""
    loaded = {}
    for name in names:
        path = os.path.join(results_dir, f"{name}.json")
        try:
            with open(path) as file:
                loaded[name] = json.load(file)
        except FileNotFoundError:
            loaded[name] = None
    return loaded


def loads(values):
    """The 1 / 5 / 15 minute load averages as "a / b / c"."""
    return " / ".join(f"{value:.2f}" for value in values)


def percent(fraction, sign=False):
    """``fraction`` as a percentage with one decimal, with its sign if ``sign``."""
    return f"{100 * fraction:+.1f}%" if sign else f"{100 * fraction:.1f}%"


def torch_line(bench_name, data):
    """The PyTorch version a bench measured with, or why it measured none."""
    if bench_name == "backbones":
        config = data.get("config", {})
        if config.get("skip_timing"):
            return "PyTorch: not timed (--skip-timing)"
        if config.get("torch_version"):
            return f"PyTorch {config['torch_version']}, same run, steps alternating with ours"
        return f"PyTorch: {config.get('torch_problem') or 'not measured'}"
    if bench_name == "grouped_conv":
        torch = data.get("pytorch")
        if isinstance(torch, dict):
            return f"PyTorch {torch['torch']}, {torch['threads']} threads, same run"
        return f"PyTorch: {torch or 'not measured'}"
    return "PyTorch: not part of this bench"


def machine_lines(bench_name, data):
    """The machine, versions, date, load and command beside a table."""
    info = data.get("machine", {})
    gpus = info.get("gpus") or []
    device = f"GPU: {', '.join(gpus)}" if gpus else "no GPU"
    lines = [
        f"- Machine: {info.get('cpu', 'unknown CPU')}, {info.get('cores', '?')} cores, {device}; "
        f"TensorFlow {info.get('tensorflow', '?')}, Keras {info.get('keras', '?')}; "
        f"{torch_line(bench_name, data)}",
    ]
    when = f"- Date: {info['date']}" if "date" in info else "- Date: not recorded in the JSON"
    start, end = info.get("load_average_at_start"), info.get("load_average_at_end")
    if start or end:
        when += "; load averages (1 / 5 / 15 min): "
        when += f"{loads(start)} at start" if start else "not recorded at start"
        when += f", {loads(end)} at end" if end else ", not recorded at end"
    else:
        when += "; load averages: not recorded in the JSON"
    lines.append(when)
    command = info.get("command")
    lines.append(f"- Command: `{command}`" if command else "- Command: not recorded in the JSON")
    return lines


def spread(values):
    """max / min of a list of positive times (1.0 = perfectly steady)."""
    return max(values) / min(values) if values else 1.0


def unsteady(label, values):
    """``"; <label> steps ranged from a to b s"`` when they spread more than NOISY_SPREAD."""
    if spread(values) <= NOISY_SPREAD:
        return ""
    return f"; {label} steps ranged from {min(values):.2f} to {max(values):.2f} s"
