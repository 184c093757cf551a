"""bench/report.py renders the benchmark JSONs faithfully; bench/run_all.py drives the scripts.

The fixtures are small synthetic JSONs shaped like those the bench scripts write (the
benchmarks themselves take minutes, so only the renderer and the orchestration run here:
``python -m bench.run_all --quick`` takes over a minute).
"""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from bench import machine as bench_machine
from bench import report, run_all
from dynamonet_tf.markdown import markdown_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BENCH = os.path.join(ROOT, "bench")


def machine(command, gpus=(), start=(1.25, 1.5, 2.0), end=(1.75, 1.5, 2.0)):
    return {
        "cpu": "Test CPU 9000",
        "cores": 2,
        "gpus": list(gpus),
        "tensorflow": "2.20.0",
        "keras": "3.15.1",
        "date": "2026-01-02T03:04:05+00:00",
        "command": command,
        "load_average_at_start": list(start),
        "load_average_at_end": list(end),
    }


def fixtures():
    """One synthetic JSON per bench, keyed by bench name."""
    return {
        "dynamic_filter": {
            "machine": machine("python bench/dynamic_filter.py --json x.json"),
            "config": {"batch": 8, "frames": 16, "size": 112, "kernel": 5, "repeats": 5},
            "results": [
                {"implementation": "depthwise (global)", "median_ms": 50.0, "ms": [50.0]},
                {"implementation": "extract_patches (global)", "median_ms": 1000.0, "ms": [1000.0]},
                {
                    "implementation": "extract_patches (per-pixel)",
                    "median_ms": 900.0,
                    "ms": [900.0],
                },
                {"implementation": "conv_patches (per-pixel)", "median_ms": 300.0, "ms": [300.0]},
            ],
        },
        "grouped_conv": {
            "machine": machine("python bench/grouped_conv.py --torch-python t --json x.json"),
            "config": {"batch": 1, "dtype": "float32", "rounds": 2, "repeats": 7},
            "pytorch": {"seconds": [0.01, 0.001], "torch": "2.13.0+cpu", "threads": 2},
            "results": [
                {
                    "stage": "layer1",
                    "input": [8, 28, 28, 128],
                    "stride": 1,
                    "layers": 3,
                    "auto_picks": "conv2d",
                    "median_ms": {"native": 700.0, "auto": 12.5, "pytorch": 10.0},
                },
                {
                    "stage": "layer4 first",
                    "input": [2, 7, 7, 1024],
                    "stride": 2,
                    "layers": 1,
                    "auto_picks": "conv2d",
                    "median_ms": {"native": 120.0, "auto": 4.0, "pytorch": 1.0},
                },
            ],
        },
        "backbones": {
            "machine": machine("python bench/backbones.py --json x.json"),
            "config": {
                "frames": 16,
                "size": 112,
                "batch": 1,
                "steps": 3,
                "rounds": 2,
                "skip_timing": False,
                "peak_gflops": 220.0,
                "torch_problem": None,
                "torch_version": "2.13.0+cpu, 2 threads",
            },  # fmt: skip
            "results": [
                {
                    "backbone": "resnext101",
                    "trainable_parameters": 47521216,
                    "forward_gflops_per_clip": 19.133792256,
                    "grouped_conv_implementation": "auto",
                    "step_seconds_all": [0.6, 0.62],
                    "step_seconds": 0.61,
                    "achieved_gflops_per_second": 94.1,
                    "utilisation": 0.4277,
                    "pytorch_step_seconds": 0.5,
                    "pytorch_step_seconds_all": [0.5, 0.5],
                    "pytorch_trainable_parameters": 47521216,
                    "ratio_to_pytorch": 1.22,
                },
                {
                    "backbone": "resnext101",
                    "trainable_parameters": 47521216,
                    "forward_gflops_per_clip": 19.133792256,
                    "grouped_conv_implementation": "native",
                    "step_seconds_all": [6.1, 6.0],
                    "step_seconds": 6.1,
                    "achieved_gflops_per_second": 9.41,
                    "utilisation": 0.04277,
                    "pytorch_step_seconds": 0.5,
                    "pytorch_step_seconds_all": [0.5, 0.5],
                    "pytorch_trainable_parameters": 47521216,
                    "ratio_to_pytorch": 12.2,
                },
            ],
        },
        "training": {
            "machine": machine("python bench/training.py --json x.json"),
            "config": {"frames": 16, "size": 112, "batch": 2, "steps": 5, "peak_gflops": 220.0},
            "results": [
                {
                    "backbone": "resnet18",
                    "model": "classifier",
                    "forward_gflops_per_clip": 16.0,
                    "step_seconds": 0.5,
                    "clips_per_second": 4.0,
                    "achieved_gflops_per_second": 192.0,
                    "utilisation": 0.8727,
                },
                {
                    "backbone": "resnet18",
                    "model": "joint",
                    "forward_gflops_per_clip": 16.2,
                    "step_seconds": 0.6,
                    "clips_per_second": 3.3333,
                    "achieved_gflops_per_second": 162.0,
                    "utilisation": 0.7364,
                },
            ],  # fmt: skip
            "frame_prediction_overhead": {"resnet18": 0.2},
        },
        "pipeline": {
            "machine": machine("python bench/pipeline.py --json x.json"),
            "config": {
                "videos": 32,
                "video_frames": 64,
                "height": 128,
                "width": 171,
                "frames": 16,
                "size": 112,
                "batch": 8,
                "shards": 4,
                "mean_jpeg_bytes": 10240.0,
            },  # fmt: skip
            "results": [
                {
                    "pipeline": "train (deterministic=False)",
                    "batch": 8,
                    "clips": 400,
                    "seconds": 20.0,
                    "clips_per_second": 20.0,
                    "decoded_frames_per_second": 340.0,
                    "ms_per_batch": 400.0,
                },
                {
                    "pipeline": "train (deterministic=True)",
                    "batch": 8,
                    "clips": 400,
                    "seconds": 40.0,
                    "clips_per_second": 2.5,
                    "decoded_frames_per_second": 42.5,
                    "ms_per_batch": 3200.0,
                },
            ],  # fmt: skip
        },
        "model_garden": {
            "machine": machine("python bench/model_garden.py --json x.json"),
            "config": {"frames": 16, "size": 112, "rounds": 3, "steps": 2, "peak_gflops": 220.0},
            "models": {
                "ours": {
                    "backbone_trainable_parameters": 46198976,
                    "forward_gflops_per_clip": 20.0,
                    "graph_forward_gflops_per_clip": 20.0,
                    "output_shape": [1, 4, 4, 2048],
                    "builder": "ours-builder",
                },
                "model_garden": {
                    "backbone_trainable_parameters": 32223424,
                    "forward_gflops_per_clip": 16.0,
                    "graph_forward_gflops_per_clip": 16.0,
                    "output_shape": [1, 4, 4, 2048],
                    "builder": "theirs-builder",
                    "options": {"model_id": 50},
                },
            },
            "differences": ["a factorised bottleneck"],
            "results": [
                {
                    "model": "ours",
                    "batch": 1,
                    "step_seconds": 1.5,
                    "clips_per_second": 0.6667,
                    "achieved_gflops_per_second": 40.0,
                    "utilisation": 0.1818,
                    "ratio_to_model_garden": 1.25,
                },
                {
                    "model": "model_garden",
                    "batch": 1,
                    "step_seconds": 1.2,
                    "clips_per_second": 0.8333,
                    "achieved_gflops_per_second": 40.0,
                    "utilisation": 0.1818,
                },
            ],  # fmt: skip
        },
    }


def write(directory, data):
    for name, content in data.items():
        with open(os.path.join(directory, f"{name}.json"), "w") as file:
            json.dump(content, file)


def section(text, title):
    """The part of the report under ``## title`` (up to the next section)."""
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_tables_show_the_numbers_of_the_jsons(tmp_path):
    write(tmp_path, fixtures())
    text = report.render(str(tmp_path))

    assert "**No GPU was measured.**" in text
    assert "not measured" not in text
    dynamic = section(text, "DynamicFilter")
    assert "| depthwise (global) | 50.0 | 1.00 |" in dynamic
    assert "| extract_patches (global) | 1000.0 | 20.00 |" in dynamic
    assert "takes 20.0x as long" in dynamic
    # 50 ms / 8 clips against the joint step's 0.6 s / 2 clips.
    assert f"{100 * (50 / 8) / 300:.1f}% of the fastest joint training step" in dynamic
    assert (
        "conv_patches): 300.0 ms against 900.0 ms with extract_patches, 3.0x faster, and 6.0x"
        in dynamic
    )

    grouped = section(text, "Grouped")
    layer1_gflops = 3 * 2 * 8 * 28 * 28 * 128 * 27 * 4 / 1e9
    assert (
        f"| layer1 | 8x28x28x128 | 1 | 3 | 700.0 | 12.5 | 10.0 | {layer1_gflops / 0.0125:.1f} |"
        in grouped
    )
    # The strided layer's output is 1x4x4 (padded by 1, stride 2).
    layer4_gflops = 3 * 2 * 1 * 4 * 4 * 1024 * 27 * 32 / 1e9
    assert f"| {layer4_gflops / 0.004:.1f} | {layer4_gflops / 0.001:.1f} | conv2d |" in grouped
    assert "| all 4 layers (x layers) |  |  | 4 | 2220 | 42 | 31 |" in grouped
    assert f"({2220 / 41.5:.1f}x faster)" in grouped
    assert f"auto is {41.5 / 31:.2f}x PyTorch's time" in grouped
    assert "layer4 first (4.0x)" in grouped and "layer1 (" not in grouped.split("Stages where")[1]

    backbones = section(text, "Backbones")
    assert "| resnext101 | 47.52 | 19.13 | auto | 0.61 | 94.1 | 43% | 0.50 | 1.22x |" in backbones
    assert "| resnext101 | 47.52 | 19.13 | native | 6.10 | 9.4 | 4% | 0.50 | 12.20x |" in backbones
    assert "median of 6 SGD steps" in backbones
    assert f"would take 6.10 s ({6.1 / 0.61:.1f}x)" in backbones

    training = section(text, "DynamoNet training step")
    assert "| resnet18 | classifier | 16.00 | 0.50 | 4.00 | 192.0 | 87% |" in training
    assert "| resnet18 | joint | 16.20 | 0.60 | 3.33 | 162.0 | 74% |" in training
    assert "adds +20.0% to the classifier's step" in training
    assert (
        f"it is {100 / 6:.1f}% of the joint step for "
        f"{100 * (1 - 16 / 16.2):.1f}% of its forward FLOPs" in training
    )
    assert "more than 15.0% of the step" in training

    pipeline = section(text, "Input pipelines")
    assert "| train (deterministic=False) | 8 | 20.0 | 340 | 400 |" in pipeline
    assert "| resnet18 joint | 3.33 | 2.5 | 0.8x |" in pipeline
    assert "| resnet18 classifier | 4.00 | 2.5 | 0.6x |" in pipeline
    assert "slower than these steps: resnet18 classifier, resnet18 joint" in pipeline

    garden = section(text, "3D ResNet-50")
    assert "| 46.20 | 20.00 | 1x4x4x2048 |" in garden and "| 32.22 | 16.00 | 1x4x4x2048 |" in garden
    assert "| 1.500 | 0.67 | 40.0 | 18% | 1.25x |" in garden
    assert (
        f"{46198976 / 32223424:.2f}x the Model Garden's parameters and 1.25x its forward FLOPs"
        in garden
    )
    assert "1.25x the Model Garden's time" in garden and "1.00x its time per FLOP" in garden
    assert "- a factorised bottleneck" in garden


def test_machine_date_load_and_command_beside_every_table(tmp_path):
    data = fixtures()
    write(tmp_path, data)
    text = report.render(str(tmp_path))
    for title in (
        "DynamicFilter",
        "Grouped",
        "Backbones",
        "DynamoNet training",
        "Input",
        "3D ResNet-50",
    ):
        part = section(text, title)
        assert "Test CPU 9000, 2 cores, no GPU; TensorFlow 2.20.0, Keras 3.15.1" in part
        assert "2026-01-02T03:04:05+00:00" in part
        assert "1.25 / 1.50 / 2.00 at start, 1.75 / 1.50 / 2.00 at end" in part
    assert "- Command: `python bench/training.py --json x.json`" in section(
        text, "DynamoNet training"
    )
    assert "PyTorch 2.13.0+cpu, 2 threads, same run, steps alternating" in section(
        text, "Backbones"
    )
    assert "PyTorch 2.13.0+cpu, 2 threads, same run" in section(text, "Grouped")
    assert "PyTorch: not part of this bench" in section(text, "Input")


def test_a_missing_json_is_not_measured_with_its_command(tmp_path):
    data = fixtures()
    del data["model_garden"], data["backbones"]
    write(tmp_path, data)
    text = report.render(str(tmp_path))
    assert (
        f"not measured: `python -m bench.model_garden --batches 1,2 --rounds 3 --steps 2 "
        f"--json {tmp_path}/model_garden.json`" in section(text, "3D ResNet-50")
    )
    backbones = section(text, "Backbones")
    assert backbones.count("not measured: `python -m bench.backbones ") == 1
    assert "--torch-python /tmp/torchenv/bin/python" in backbones
    assert "| resnet18 | joint |" in text  # the others still render


def test_every_json_missing_still_renders(tmp_path):
    text = report.render(str(tmp_path))
    assert text.count("not measured: `python -m bench.") == len(report.BENCHES)
    assert "No run_all.json" in text


def test_a_gpu_run_is_named(tmp_path):
    data = fixtures()
    data["training"]["machine"]["gpus"] = ["NVIDIA H100 80GB HBM3"]
    write(tmp_path, data)
    text = report.render(str(tmp_path))
    assert "No GPU was measured" not in text
    assert "GPU runs in this report: training (NVIDIA H100 80GB HBM3)" in text
    assert "2 cores, GPU: NVIDIA H100 80GB HBM3;" in section(text, "DynamoNet training")


def test_old_jsons_without_date_or_command_say_so(tmp_path):
    data = fixtures()
    for name in ("dynamic_filter",):
        for key in ("date", "command", "load_average_at_start", "load_average_at_end"):
            del data[name]["machine"][key]
    write(tmp_path, data)
    part = section(report.render(str(tmp_path)), "DynamicFilter")
    assert "- Date: not recorded in the JSON; load averages: not recorded in the JSON" in part
    assert "- Command: not recorded in the JSON" in part


def test_main_writes_the_report(tmp_path):
    write(tmp_path, fixtures())
    out = tmp_path / "docs" / "BENCHMARKS.md"
    report.main(["--results-dir", str(tmp_path), "--out", str(out)])
    assert out.read_text() == report.render(str(tmp_path))


def test_commands_of_the_report_and_quick_settings():
    backbones = report.BENCH_BY_NAME["backbones"]
    assert backbones.command("bench/results") == [
        "python", "-m", "bench.backbones", "--backbones", "resnet18,resnext101,stc_resnext101",
        "--grouped-conv-implementations", "auto,native", "--steps", "3", "--rounds", "2",
        "--torch-python", "/tmp/torchenv/bin/python", "--json", "bench/results/backbones.json",
    ]  # fmt: skip
    quick = backbones.command("q", quick=True, torch_python=None)
    assert "--torch-python" not in quick and quick[-2:] == ["--json", "q/backbones.json"]
    assert "--quick" not in " ".join(quick)
    training = report.BENCH_BY_NAME["training"].command("bench/results", torch_python="/x")
    assert "--torch-python" not in training  # training.py does not take it
    assert {bench.name for bench in report.BENCHES} == set(report.RENDERERS)
    for bench in report.BENCHES:
        assert os.path.exists(os.path.join(BENCH, f"{bench.name}.py"))


def test_a_bench_run_as_a_module_records_the_command_that_runs_it_again(monkeypatch):
    """``python -m bench.training`` is recorded as such: ``python bench/training.py`` would fail
    to import ``bench.machine``."""
    main = types.SimpleNamespace(__spec__=types.SimpleNamespace(name="bench.training"))
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", [os.path.join(BENCH, "training.py"), "--steps", "1"])
    assert bench_machine.command_line() == "python -m bench.training --steps 1"


class FakeBench:
    """A "bench" that writes a given JSON (or fails) in a plain python subprocess."""

    def __init__(self, name, data, returncode=0):
        self.name, self.title, self.data, self.returncode = name, name, data, returncode

    def command(self, results_dir, quick=False, torch_python=None):
        path = os.path.join(results_dir, f"{self.name}.json")
        code = (
            f"import json, sys; json.dump({self.data!r}, open(sys.argv[1], 'w'))"
            if self.returncode == 0
            else f"import sys; sys.exit({self.returncode})"
        )
        return ["python", "-c", code, path]


def test_run_all_runs_each_bench_then_renders(tmp_path, monkeypatch):
    data = fixtures()
    benches = (
        FakeBench("dynamic_filter", data["dynamic_filter"]),
        FakeBench("training", data["training"], returncode=3),
    )
    monkeypatch.setattr(report, "BENCHES", benches)
    monkeypatch.setattr(report, "BENCH_BY_NAME", {bench.name: bench for bench in benches})
    stale = tmp_path / "training.json"
    stale.write_text(json.dumps(data["training"]))  # left by an earlier run: must not show
    out = tmp_path / "B.md"

    status = run_all.main(["--results-dir", str(tmp_path), "--out", str(out), "--torch-python", ""])

    assert status == 1
    assert not stale.exists()
    record = json.loads((tmp_path / "run_all.json").read_text())
    assert [(b["name"], b["returncode"]) for b in record["benches"]] == [
        ("dynamic_filter", 0),
        ("training", 3),
    ]
    assert len(record["load_average_at_start"]) == 3 and len(record["load_average_at_end"]) == 3
    assert record["torch_version"] is None and record["quick"] is False
    text = out.read_text()
    assert "| depthwise (global) | 50.0 | 1.00 |" in text
    assert "(it exited with status 3 in the last run)" in section(text, "training")
    assert "Failed in that run:" in text
    assert f"python -m bench.run_all --results-dir {tmp_path}" in text


def test_unsteady_steps_are_flagged(tmp_path):
    data = fixtures()
    data["backbones"]["results"][0]["step_seconds_all"] = [0.5, 0.61, 0.8]
    data["backbones"]["results"][0]["pytorch_step_seconds_all"] = [0.5, 0.5, 1.5]
    data["training"]["results"][1]["step_seconds_all"] = [0.6, 0.59, 0.61]  # steady
    data["model_garden"]["results"][1]["step_seconds_all"] = [1.0, 1.2, 1.3]
    write(tmp_path, data)
    text = report.render(str(tmp_path))
    backbones = section(text, "Backbones")
    assert "our steps ranged from 0.50 to 0.80 s" in backbones
    assert "PyTorch's slowest step took 3.0x its fastest" in backbones
    assert "ranged" not in section(text, "DynamoNet training")
    garden = section(text, "3D ResNet-50")
    assert "the Model Garden's steps ranged from 1.00 to 1.30 s" in garden
    assert "our steps ranged" not in garden


def test_the_committed_report_is_the_rendering_of_the_committed_jsons():
    """docs/BENCHMARKS.md holds no figure typed by hand: it is bench/results/ rendered."""
    root = Path(__file__).resolve().parent.parent
    assert (root / "docs" / "BENCHMARKS.md").read_text() == report.render(
        str(root / "bench" / "results")
    )


# The report renders without TensorFlow: every module it is made of, each bench's renderer
# (bench/<name>_report.py, beside the script that imports TensorFlow) among them.
REPORT_MODULES = [f"bench.{bench.name}_report" for bench in report.BENCHES] + [
    "bench.report_common",
    "bench.report",
    "dynamonet_tf.markdown",
]


@pytest.mark.parametrize("module", REPORT_MODULES)
def test_the_report_modules_do_not_import_tensorflow(module):
    """In a fresh interpreter: this test process has TensorFlow loaded already."""
    code = (
        f"import {module}, sys; "
        "loaded = [name for name in ('tensorflow', 'keras') if name in sys.modules]; "
        "assert not loaded, loaded"
    )
    check = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_markdown_table_aligns_each_column_as_asked():
    assert markdown_table(["name", "ms"], [["a", 1.5], ["b", 20]], "lr") == (
        "| name | ms |\n|---|---:|\n| a | 1.5 |\n| b | 20 |"
    )
    assert markdown_table(["x", "y"], []) == "| x | y |\n|---|---|"
    with pytest.raises(ValueError):
        markdown_table(["x", "y"], [], "l")
