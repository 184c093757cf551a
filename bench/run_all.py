"""Runs every benchmark at its report setting, then renders docs/BENCHMARKS.md from their JSONs.

    python -m bench.run_all [--quick] [--only NAME,NAME] [--torch-python PATH]
                            [--results-dir DIR] [--out PATH]

The benchmarks and their settings are ``report.BENCHES``: dynamic_filter, grouped_conv,
backbones (ResNet-18, ResNeXt-101 and STC-ResNeXt-101 at 16x112x112, PyTorch's steps
alternating with ours), training (the frame-prediction branch's cost for ResNet-18 and
ResNeXt-101), pipeline and model_garden. Each runs as its own process (one at a time, so that
they do not compete for the cores), writing ``<results-dir>/<name>.json``; a JSON left by an
earlier run is removed first, so a bench that fails shows as "not measured" rather than with
old numbers. Then bench/report.py renders the report. The whole run takes 10-20 minutes on
the 2-core development CPU; other processes on the machine distort the timings, so the load
averages at start and end are recorded (``<results-dir>/run_all.json``) and printed.

PyTorch (for grouped_conv and backbones) is the python given by ``--torch-python``, by
default /tmp/torchenv/bin/python when it exists; without it those benches say PyTorch was not
measured.

``--quick`` runs every bench at a tiny smoke setting (a minute or two), into
bench/results/quick and bench/results/quick/BENCHMARKS.md unless ``--results-dir``/``--out``
say otherwise: it tests the scripts and the report, its numbers mean nothing.
"""

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time

from bench import report
from bench.report_common import loads


def now():
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def torch_version(torch_python):
    """``"<version>, <threads> threads"`` of ``torch_python``'s torch, or None."""
    if not torch_python or not os.path.exists(torch_python):
        return None
    check = subprocess.run(
        [torch_python, "-c", "import torch; print(torch.__version__, torch.get_num_threads())"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        return None
    version, threads = check.stdout.split()
    return f"{version}, {threads} threads"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke settings")
    parser.add_argument(
        "--only",
        help="comma-separated benches to run (the others' JSONs are kept): "
        + ", ".join(bench.name for bench in report.BENCHES),
    )
    parser.add_argument(
        "--torch-python",
        default=report.TORCH_PYTHON if os.path.exists(report.TORCH_PYTHON) else None,
        metavar="PATH",
        help=f"python of an environment with torch (default: {report.TORCH_PYTHON} if it exists)",
    )
    parser.add_argument(
        "--results-dir", help="default: bench/results (bench/results/quick with --quick)"
    )
    parser.add_argument(
        "--out", help="default: docs/BENCHMARKS.md (<results-dir>/BENCHMARKS.md with --quick)"
    )
    args = parser.parse_args(argv)
    results_dir = args.results_dir or (
        report.QUICK_RESULTS if args.quick else report.DEFAULT_RESULTS
    )
    out = args.out or (
        os.path.join(results_dir, "BENCHMARKS.md") if args.quick else report.DEFAULT_OUT
    )
    names = args.only.split(",") if args.only else [bench.name for bench in report.BENCHES]
    unknown = [name for name in names if name not in report.BENCH_BY_NAME]
    if unknown:
        parser.error(
            f"unknown benches {', '.join(unknown)}; valid: {', '.join(report.BENCH_BY_NAME)}"
        )
    version = torch_version(args.torch_python)
    torch_python = args.torch_python if version else None

    os.makedirs(os.path.join(report.REPOSITORY, results_dir), exist_ok=True)
    record = {
        "command": shlex.join(
            ["python", "-m", "bench.run_all"] + (sys.argv[1:] if argv is None else list(argv))
        ),
        "quick": args.quick,
        "results_dir": results_dir,
        "torch_python": torch_python,
        "torch_version": version,
        "date_start": now(),
        "load_average_at_start": os.getloadavg(),
        "benches": [],
    }
    print(
        f"PyTorch: {version or 'not available'}; load averages at start: "
        + loads(record["load_average_at_start"]),
        flush=True,
    )
    start = time.perf_counter()
    for name in names:
        bench = report.BENCH_BY_NAME[name]
        command = bench.command(results_dir, quick=args.quick, torch_python=torch_python)
        json_path = os.path.join(report.REPOSITORY, command[-1])
        if os.path.exists(json_path):
            os.remove(json_path)
        print(f"\n=== {shlex.join(command)}", flush=True)
        bench_start, load_start = time.perf_counter(), os.getloadavg()
        returncode = subprocess.run(
            [sys.executable] + command[1:], cwd=report.REPOSITORY
        ).returncode
        record["benches"].append(
            {
                "name": name,
                "command": shlex.join(command),
                "returncode": returncode,
                "wall_seconds": time.perf_counter() - bench_start,
                "load_average_at_start": load_start,
                "load_average_at_end": os.getloadavg(),
            }
        )
        if returncode != 0:
            print(f"=== {name} failed with exit status {returncode}", flush=True)
    record.update(
        date_end=now(),
        load_average_at_end=os.getloadavg(),
        wall_seconds=time.perf_counter() - start,
    )
    with open(os.path.join(report.REPOSITORY, results_dir, report.RUN_ALL_JSON), "w") as file:
        json.dump(record, file, indent=2)
    print("\nLoad averages at end: " + loads(record["load_average_at_end"]), flush=True)
    report.main(["--results-dir", results_dir, "--out", out])
    return 1 if any(b["returncode"] for b in record["benches"]) else 0


if __name__ == "__main__":
    sys.exit(main())
