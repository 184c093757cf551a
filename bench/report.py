"""Renders docs/BENCHMARKS.md from the JSONs the benchmark scripts wrote.

    python -m bench.report [--results-dir bench/results] [--out docs/BENCHMARKS.md]

Every figure in the report is read from, or computed from, a JSON in ``--results-dir``
(bench/run_all.py runs the scripts that write them, then this): nothing is typed by hand.
Beside each table it prints the machine, the library versions, the date and the load averages
that the JSON recorded, and the exact command that wrote it; a missing JSON gives
"not measured: <command>". Only the standard library is used (no TensorFlow), so rendering
takes well under a second.

This module holds the registry of benches (``BENCHES``: their titles and commands) and puts
the report together; each bench's section is rendered by ``bench/<name>_report.py``, beside
the script, from the helpers of bench/report_common.py.
"""

import argparse
import os
import shlex
import sys

from bench.backbones_report import render_backbones
from bench.dynamic_filter_report import render_dynamic_filter
from bench.grouped_conv_report import render_grouped_conv
from bench.machine import REPOSITORY
from bench.model_garden_report import render_model_garden
from bench.pipeline_report import render_pipeline
from bench.report_common import load_results, loads, machine_lines
from bench.training_report import render_training

DEFAULT_RESULTS = os.path.join("bench", "results")
DEFAULT_OUT = os.path.join("docs", "BENCHMARKS.md")
QUICK_RESULTS = os.path.join("bench", "results", "quick")
TORCH_PYTHON = "/tmp/torchenv/bin/python"
RUN_ALL_JSON = "run_all.json"


class Bench:
    """One benchmark script at its report setting (``args``) and its smoke setting. The script
    is the module ``bench.<name>``, run from the repository root with ``python -m``."""

    def __init__(self, name, title, args, quick, torch=False):
        self.name, self.title, self.args, self.quick, self.torch = name, title, args, quick, torch
        self.module = f"bench.{name}"

    def command(self, results_dir=DEFAULT_RESULTS, quick=False, torch_python=TORCH_PYTHON):
        """The command line (a list, starting with ``python``) that writes this bench's JSON."""
        argv = ["python", "-m", self.module] + (self.quick if quick else self.args)
        if self.torch and torch_python:
            argv += ["--torch-python", torch_python]
        return argv + ["--json", os.path.join(results_dir, f"{self.name}.json")]


BENCHES = (
    Bench(
        "dynamic_filter",
        "DynamicFilter: forward + backward of the frame predictor's filtering",
        [],
        ["--batch", "2", "--frames", "4", "--size", "32", "--repeats", "2"],
    ),
    Bench(
        "grouped_conv",
        "Grouped 3x3x3 convolutions of ResNeXt-101",
        [],
        ["--implementations", "conv2d,auto", "--repeats", "1", "--rounds", "1"],
        torch=True,
    ),
    Bench(
        "backbones",
        "Backbones: one SGD training step, ours beside PyTorch",
        [
            "--backbones",
            "resnet18,resnext101,stc_resnext101",
            "--grouped-conv-implementations",
            "auto,native",
            "--steps",
            "3",
            "--rounds",
            "2",
        ],  # fmt: skip
        ["--backbones", "resnet10", "--frames", "4", "--size", "64", "--steps", "1"],
        torch=True,
    ),
    Bench(
        "training",
        "DynamoNet training step: the frame-prediction branch's cost",
        ["--backbones", "resnet18,resnext101", "--batch", "2", "--steps", "5"],
        [
            "--backbones",
            "resnet10",
            "--frames",
            "4",
            "--size",
            "32",
            "--batch",
            "1",
            "--steps",
            "1",
        ],
    ),
    Bench(
        "pipeline",
        "Input pipelines against the training step's consumption",
        [],
        [
            "--videos",
            "4",
            "--video-frames",
            "12",
            "--height",
            "40",
            "--width",
            "53",
            "--frames",
            "4",
            "--size",
            "32",
            "--batch",
            "2",
            "--warmup",
            "1",
            "--steps",
            "3",
        ],  # fmt: skip
    ),
    Bench(
        "model_garden",
        "3D ResNet-50: ours against the TF Model Garden's ResNet3D",
        ["--batches", "1,2", "--rounds", "3", "--steps", "2"],
        ["--frames", "4", "--size", "32", "--batches", "1", "--rounds", "1", "--steps", "1"],
    ),
)
BENCH_BY_NAME = {bench.name: bench for bench in BENCHES}

RENDERERS = {
    "dynamic_filter": render_dynamic_filter,
    "grouped_conv": render_grouped_conv,
    "backbones": render_backbones,
    "training": render_training,
    "pipeline": render_pipeline,
    "model_garden": render_model_garden,
}


# --- the whole report --------------------------------------------------------------------


def gpu_statement(results):
    """Which tables ran on a GPU, or that none did: said first, because it decides how to
    read every number below."""
    gpu_runs = [
        f"{name} ({', '.join(data['machine']['gpus'])})"
        for name, data in results.items()
        if name != "run_all" and data and data.get("machine", {}).get("gpus")
    ]
    if gpu_runs:
        return (
            "GPU runs in this report: " + "; ".join(gpu_runs) + ". Every other table ran on a CPU."
        )
    return (
        "**No GPU was measured.** Every table here ran on the CPU of a machine without a GPU (no "
        "JSON below lists one); GPU numbers (e.g. H100/H200) are not in this report."
    )


def run_summary(run):
    """When and under what load run_all.py last ran, whether at smoke settings, and what
    failed in it (``run``: its run_all.json, or None)."""
    if not run:
        return ["No run_all.json: these JSONs were written by the scripts run one by one."]
    lines = [
        f"Last `{run['command']}`: {run['date_start']} to {run['date_end']} "
        f"({run['wall_seconds'] / 60:.1f} min); load averages (1 / 5 / 15 min) "
        f"{loads(run['load_average_at_start'])} at start, "
        f"{loads(run['load_average_at_end'])} at end; "
        f"PyTorch {run.get('torch_version') or 'not available'}. It ran: "
        + ", ".join(b["name"] for b in run["benches"])
        + "."
    ]
    if run.get("quick"):
        lines.append("")
        lines.append(
            "**Smoke settings (--quick): the numbers below test the scripts, not the machine.**"
        )
    failed = [b for b in run["benches"] if b["returncode"] != 0]
    if failed:
        lines.append("")
        lines.append(
            "Failed in that run: "
            + "; ".join(f"`{b['command']}` (exit status {b['returncode']})" for b in failed)
            + "."
        )
    return lines


def render(results_dir=DEFAULT_RESULTS, results=None):
    """The Markdown report for the JSONs in ``results_dir`` (or the given ``results``)."""
    if results is None:
        directory = os.path.join(REPOSITORY, results_dir)  # unchanged if results_dir is absolute
        results = load_results(directory, [bench.name for bench in BENCHES] + ["run_all"])
    run = results.get("run_all")
    quick = bool(run and run.get("quick"))
    display_dir = run["results_dir"] if run and run.get("results_dir") else results_dir
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m bench.run_all` (all benchmarks, then this report; `--quick` "
        "for a smoke run) and re-rendered from the JSONs by `python -m bench.report`: every "
        "figure below is printed or computed by the scripts. Do not edit by hand.",
        "",
        gpu_statement(results),
        "",
    ]
    lines += run_summary(run)
    for bench in BENCHES:
        lines += ["", f"## {bench.title}", ""]
        data = results.get(bench.name)
        if data is None:
            command = shlex.join(bench.command(display_dir, quick=quick))
            failure = ""
            if run:
                record = next((b for b in run["benches"] if b["name"] == bench.name), None)
                if record and record["returncode"] != 0:
                    failure = f" (it exited with status {record['returncode']} in the last run)"
            lines.append(f"not measured: `{command}`{failure}")
            continue
        body, says = RENDERERS[bench.name](data, results)
        lines += machine_lines(bench.name, data) + [""] + body
        lines += ["", f"**What the numbers say.** {says}"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default=DEFAULT_RESULTS, help="where the JSONs are")
    parser.add_argument("--out", default=DEFAULT_OUT, help="the Markdown file to write")
    args = parser.parse_args(argv)
    text = render(args.results_dir)
    out = args.out if os.path.isabs(args.out) else os.path.join(REPOSITORY, args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as file:
        file.write(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
