"""Renders docs/BENCHMARKS.md from the JSONs the benchmark scripts wrote.

    python -m bench.report [--results-dir bench/results] [--out docs/BENCHMARKS.md]

Every figure in the report is read from, or computed from, a JSON in ``--results-dir``
(bench/run_all.py runs the scripts that write them, then this): nothing is typed by hand.
Beside each table it prints the machine, the library versions, the date and the load averages
that the JSON recorded, and the exact command that wrote it; a missing JSON gives
"not measured: <command>". Only the standard library is used (no TensorFlow), so rendering
takes well under a second.
"""

import argparse
import json
import os
import shlex
import statistics
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RESULTS = os.path.join("bench", "results")
DEFAULT_OUT = os.path.join("docs", "BENCHMARKS.md")
QUICK_RESULTS = os.path.join("bench", "results", "quick")
TORCH_PYTHON = "/tmp/torchenv/bin/python"
RUN_ALL_JSON = "run_all.json"
# Above this, a component is said to cost more than a small share of the training step.
LARGE_SHARE = 0.15
# Step times of one variant whose slowest is more than this times the fastest are flagged.
NOISY_SPREAD = 1.25


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
            "--backbones", "resnet18,resnext101,stc_resnext101",
            "--grouped-conv-implementations", "auto,native", "--steps", "3", "--rounds", "2",
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
            "--videos", "4", "--video-frames", "12", "--height", "40", "--width", "53",
            "--frames", "4", "--size", "32", "--batch", "2", "--warmup", "1", "--steps", "3",
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


def load_results(results_dir):
    """``{bench name: its JSON or None}``, plus ``"run_all"`` (run_all.py's record or None)."""
    loaded = {}
    for name in [bench.name for bench in BENCHES] + ["run_all"]:
        path = os.path.join(results_dir, f"{name}.json")
        try:
            with open(path) as file:
                loaded[name] = json.load(file)
        except FileNotFoundError:
            loaded[name] = None
    return loaded


# --- formatting --------------------------------------------------------------------------


def loads(values):
    return " / ".join(f"{value:.2f}" for value in values)


def percent(fraction, sign=False):
    return f"{100 * fraction:+.1f}%" if sign else f"{100 * fraction:.1f}%"


def table(header, rows, align):
    """A Markdown table; ``align`` is one of "l"/"r" per column."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


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


# --- one section per bench ---------------------------------------------------------------


def render_dynamic_filter(data, results):
    config, rows = data["config"], data["results"]
    fastest = min(rows, key=lambda row: row["median_ms"])
    slowest = max(rows, key=lambda row: row["median_ms"])
    lines = [
        f"B={config['batch']}, T={config['frames']}, {config['size']}x{config['size']}x3, "
        f"k={config['kernel']}, median of {config['repeats']} calls.",
        "",
    ]
    lines += table(
        ["implementation", "median ms", "ratio to fastest"],
        [
            [
                r["implementation"],
                f"{r['median_ms']:.1f}",
                f"{r['median_ms'] / fastest['median_ms']:.2f}",
            ]
            for r in rows
        ],
        "lrr",
    )
    per_clip = fastest["median_ms"] / config["batch"]
    says = (
        f"{fastest['implementation']} is the fastest: {fastest['median_ms']:.1f} ms for "
        f"{config['batch']} clips ({per_clip:.1f} ms per clip); {slowest['implementation']} "
        f"takes {slowest['median_ms'] / fastest['median_ms']:.1f}x as long."
    )
    training = results.get("training")
    if training and (training["config"]["frames"], training["config"]["size"]) == (
        config["frames"],
        config["size"],
    ):
        joint = [r for r in training["results"] if r["model"] == "joint"]
        if joint:
            step = min(joint, key=lambda r: r["step_seconds"])
            step_per_clip = 1000 * step["step_seconds"] / training["config"]["batch"]
            says += (
                f" Per clip that is {percent(per_clip / step_per_clip)} of the fastest joint "
                f"training step measured by training.py ({step['backbone']}: "
                f"{step_per_clip:.0f} ms per clip)."
            )
    per_pixel = {r["implementation"]: r["median_ms"] for r in rows if r["implementation"].endswith("(per-pixel)")}
    before, after = per_pixel.get("extract_patches (per-pixel)"), per_pixel.get("conv_patches (per-pixel)")
    if before and after:
        says += (
            f" Per-pixel filters (the layer's default, conv_patches): {after:.1f} ms against "
            f"{before:.1f} ms with extract_patches, {before / after:.1f}x faster, and "
            f"{after / fastest['median_ms']:.1f}x the fastest global filtering."
        )
    return lines, says


def grouped_conv_gflops(result):
    """Forward + both gradients (3x the forward) of one grouped convolution, in GFLOPs."""
    frames, height, width, channels = result["input"]
    stride = result["stride"]
    out = [-(-n // stride) for n in (frames, height, width)]  # "same" / padded "valid"
    groups = 32
    return 3 * 2 * out[0] * out[1] * out[2] * channels * 27 * (channels // groups) / 1e9


def render_grouped_conv(data, results):
    config, rows = data["config"], data["results"]
    columns = list(rows[0]["median_ms"])
    lines = [
        f"Batch {config['batch']}, {config['dtype']}, 32 groups, forward + backward, median ms "
        f"of {config['rounds']} rounds x {config['repeats']} calls; GFLOP/s count 3x the "
        "forward FLOPs.",
        "",
    ]
    gflop_columns = [c for c in ("auto", "pytorch") if c in columns]
    body = []
    totals = {name: 0.0 for name in columns}
    for r in rows:
        for name in columns:
            totals[name] += r["layers"] * r["median_ms"][name]
        gflops = grouped_conv_gflops(r)
        body.append(
            [r["stage"], "x".join(map(str, r["input"])), r["stride"], r["layers"]]
            + [f"{r['median_ms'][name]:.1f}" for name in columns]
            + [f"{gflops / (r['median_ms'][name] / 1e3):.1f}" for name in gflop_columns]
            + [r.get("auto_picks") or ""]
        )
    layers = sum(r["layers"] for r in rows)
    body.append(
        [f"all {layers} layers (x layers)", "", "", layers]
        + [f"{totals[name]:.0f}" for name in columns]
        + ["" for _ in gflop_columns]
        + [""]
    )
    lines += table(
        ["stage", "input TxHxWxC", "stride", "layers"]
        + columns
        + [f"{name} GFLOP/s" for name in gflop_columns]
        + ["auto picks"],
        body,
        "llrr" + "r" * (len(columns) + len(gflop_columns)) + "l",
    )
    sentences = []
    if "native" in totals and "auto" in totals:
        sentences.append(
            f"Over all {layers} grouped convolutions, auto takes {totals['auto']:.0f} ms against "
            f"{totals['native']:.0f} ms for Keras's native grouped Conv3D "
            f"({totals['native'] / totals['auto']:.1f}x faster)."
        )
    if "pytorch" in totals and "auto" in totals:
        sentences.append(
            f"PyTorch takes {totals['pytorch']:.0f} ms: auto is {totals['auto'] / totals['pytorch']:.2f}x "
            "PyTorch's time."
        )
        slow = [
            f"{r['stage']} ({r['median_ms']['auto'] / r['median_ms']['pytorch']:.1f}x)"
            for r in rows
            if r["median_ms"]["auto"] > 1.5 * r["median_ms"]["pytorch"]
        ]
        if slow:
            sentences.append(
                "Stages where auto takes over 1.5x PyTorch's time: " + ", ".join(slow) + "."
            )
        else:
            sentences.append("No stage takes auto over 1.5x PyTorch's time.")
    if "auto" in columns:
        rates = [
            (grouped_conv_gflops(r) / (r["median_ms"]["auto"] / 1e3), r["stage"]) for r in rows
        ]
        low, high = min(rates), max(rates)
        sentences.append(
            f"auto's rate runs from {low[0]:.1f} GFLOP/s ({low[1]}) to {high[0]:.1f} GFLOP/s "
            f"({high[1]}): {low[1]} takes {high[0] / low[0]:.1f}x longer than its FLOPs "
            f"would at {high[1]}'s rate."
        )
    return lines, " ".join(sentences)


def render_backbones(data, results):
    config, rows = data["config"], data["results"]
    timed = not config.get("skip_timing")
    compared = timed and any("pytorch_step_seconds" in r for r in rows)
    heading = f"{config['frames']}x{config['size']}x{config['size']}x3 clips"
    if timed:
        heading += (
            f", batch {config['batch']}, median of {config['rounds'] * config['steps']} SGD steps "
            f"per variant (one step of each in turn), utilisation against "
            f"{config['peak_gflops']:g} GFLOP/s; GFLOP/s count 3x the forward FLOPs."
        )
    header = ["backbone", "trainable params (M)", "forward GFLOPs per clip"]
    align = "lrr"
    if timed:
        header += ["grouped conv", "step s", "achieved GFLOP/s", "utilisation"]
        align += "lrrr"
    if compared:
        header += ["PyTorch step s", "ours / PyTorch"]
        align += "rr"
    body = []
    for r in rows:
        row = [
            r["backbone"],
            f"{r['trainable_parameters'] / 1e6:.2f}",
            f"{r['forward_gflops_per_clip']:.2f}",
        ]
        if timed:
            row += [
                r.get("grouped_conv_implementation") or "-",
                f"{r['step_seconds']:.2f}",
                f"{r['achieved_gflops_per_second']:.1f}",
                f"{100 * r['utilisation']:.0f}%",
            ]
        if compared:
            if "pytorch_step_seconds" in r:
                row += [f"{r['pytorch_step_seconds']:.2f}", f"{r['ratio_to_pytorch']:.2f}x"]
            else:
                row += ["", ""]
        body.append(row)
    lines = [heading, ""] + table(header, body, align)
    if not timed:
        return lines, "Parameters and FLOPs only: no step was timed."
    sentences = []
    for name in dict.fromkeys(r["backbone"] for r in rows):
        variants = {r.get("grouped_conv_implementation"): r for r in rows if r["backbone"] == name}
        default = variants.get("auto") or variants.get(None) or next(iter(variants.values()))
        sentence = f"{name}: {default['step_seconds']:.2f} s per step"
        if "ratio_to_pytorch" in default:
            sentence += f", {default['ratio_to_pytorch']:.2f}x PyTorch's {default['pytorch_step_seconds']:.2f} s"
        sentence += f", {100 * default['utilisation']:.0f}% of the peak"
        if "native" in variants and default is not variants["native"]:
            native = variants["native"]
            sentence += (
                f"; Keras's native grouped Conv3D would take {native['step_seconds']:.2f} s "
                f"({native['step_seconds'] / default['step_seconds']:.1f}x)"
            )
        if default.get("pytorch_trainable_parameters") not in (
            None,
            default["trainable_parameters"],
        ):
            sentence += (
                f" (PyTorch's build has {default['pytorch_trainable_parameters']:,} parameters, "
                f"ours {default['trainable_parameters']:,}: not the same architecture)"
            )
        sentence += unsteady("our", default.get("step_seconds_all", []))
        noisy = spread(default.get("pytorch_step_seconds_all", []))
        if noisy > 2:
            sentence += (
                f"; PyTorch's slowest step took {noisy:.1f}x its fastest, so the machine was "
                "loaded and that ratio is unreliable"
            )
        else:
            sentence += unsteady("PyTorch's", default.get("pytorch_step_seconds_all", []))
        sentences.append(sentence + ".")
    return lines, " ".join(sentences)


def render_training(data, results):
    config, rows = data["config"], data["results"]
    lines = [
        f"{config['frames']}x{config['size']}x{config['size']}x3 clips, batch {config['batch']}, "
        f"median of {config['steps']} SGD steps (Nesterov momentum) after a warm-up step, "
        f"utilisation against {config['peak_gflops']:g} GFLOP/s; the classifier's and the joint "
        "model's steps alternate.",
        "",
    ]
    lines += table(
        [
            "backbone",
            "model",
            "forward GFLOPs per clip",
            "step s",
            "clips/s",
            "achieved GFLOP/s",
            "utilisation",
        ],
        [
            [
                r["backbone"],
                r["model"],
                f"{r['forward_gflops_per_clip']:.2f}",
                f"{r['step_seconds']:.2f}",
                f"{r['clips_per_second']:.2f}",
                f"{r['achieved_gflops_per_second']:.1f}",
                f"{100 * r['utilisation']:.0f}%",
            ]
            for r in rows
        ],
        "llrrrrr",
    )
    by_model = {(r["backbone"], r["model"]): r for r in rows}
    sentences = []
    for backbone in dict.fromkeys(r["backbone"] for r in rows):
        classifier, joint = by_model.get((backbone, "classifier")), by_model.get(
            (backbone, "joint")
        )
        if not (classifier and joint):
            continue
        added = joint["step_seconds"] / classifier["step_seconds"] - 1
        share = 1 - classifier["step_seconds"] / joint["step_seconds"]
        flops = 1 - classifier["forward_gflops_per_clip"] / joint["forward_gflops_per_clip"]
        sentence = (
            f"{backbone}: the frame-prediction branch (with the DMR) adds {percent(added, sign=True)} "
            f"to the classifier's step, i.e. it is {percent(share)} of the joint step for "
            f"{percent(flops)} of its forward FLOPs"
        )
        if share > LARGE_SHARE:
            sentence += f", more than {percent(LARGE_SHARE)} of the step: worth a look"
        elif added < 0:
            sentence += (
                " (a negative cost means the difference between the two models is below this "
                "machine's variation between timings)"
            )
        sentence += unsteady("the classifier's", classifier.get("step_seconds_all", []))
        sentence += unsteady("the joint model's", joint.get("step_seconds_all", []))
        sentences.append(sentence + ".")
    return lines, " ".join(sentences)


def render_pipeline(data, results):
    config, rows = data["config"], data["results"]
    lines = [
        f"{config['videos']} synthetic videos x {config['video_frames']} frames, "
        f"{config['height']}x{config['width']} JPEG (mean {config['mean_jpeg_bytes'] / 1024:.1f} KiB), "
        f"{config['shards']} shards; clips of {config['frames']}x{config['size']}x{config['size']}x3; "
        "the pipeline ran alone on the cores.",
        "",
    ]
    lines += table(
        ["pipeline", "batch", "clips/s", "decoded frames/s", "ms per batch"],
        [
            [
                r["pipeline"],
                r["batch"],
                f"{r['clips_per_second']:.1f}",
                f"{r['decoded_frames_per_second']:.0f}",
                f"{r['ms_per_batch']:.0f}",
            ]
            for r in rows
        ],
        "lrrrr",
    )
    train = [r for r in rows if r["pipeline"].startswith("train")]
    training = results.get("training")
    if not training or not train:
        return lines, (
            "The training step's consumption is not measured (no training.json): compare the "
            "clips/s above with batch / step time."
        )
    supply = min(train, key=lambda r: r["clips_per_second"])
    lines += [
        "",
        "Against the training steps of training.json (clips/s a step consumes = batch / step time):",
        "",
    ]
    body, short = [], []
    for step in training["results"]:
        headroom = supply["clips_per_second"] / step["clips_per_second"]
        body.append(
            [
                f"{step['backbone']} {step['model']}",
                f"{step['clips_per_second']:.2f}",
                f"{supply['clips_per_second']:.1f}",
                f"{headroom:.1f}x",
            ]
        )
        if headroom < 1:
            short.append(f"{step['backbone']} {step['model']}")
    lines += table(
        [
            "training step",
            "step consumes clips/s",
            "slower train pipeline clips/s",
            "pipeline / step",
        ],
        body,
        "lrrr",
    )
    hungriest = max(training["results"], key=lambda r: r["clips_per_second"])
    same_shape = (training["config"]["frames"], training["config"]["size"]) == (
        config["frames"],
        config["size"],
    )
    says = (
        f"The slower training pipeline ({supply['pipeline']}) delivers "
        f"{supply['clips_per_second']:.1f} clips/s; the hungriest step "
        f"({hungriest['backbone']} {hungriest['model']}) consumes "
        f"{hungriest['clips_per_second']:.2f} clips/s, so the pipeline supplies "
        f"{supply['clips_per_second'] / hungriest['clips_per_second']:.1f}x that."
    )
    if short:
        says += (
            f" The pipeline is slower than these steps: {', '.join(short)}; it would starve them."
        )
    else:
        says += (
            " It keeps up with every step measured, though in training it shares the cores "
            "with the step."
        )
    if not same_shape:
        says += " (The two benches used different clip shapes.)"
    return lines, says


def render_model_garden(data, results):
    config, models, rows = data["config"], data["models"], data["results"]
    lines = [
        f"{config['frames']}x{config['size']}x{config['size']}x3 clips; GAP + Dense(400), sparse "
        f"softmax cross-entropy, plain SGD; median of {config['rounds']} rounds x "
        f"{config['steps']} steps per model, the order alternating between rounds; GFLOP/s "
        f"count 3x the forward FLOPs, utilisation against {config['peak_gflops']:g} GFLOP/s.",
        "",
    ]
    names = {"ours": "ours (Hara's 3D ResNet-50)", "model_garden": "Model Garden ResNet3D-50"}
    lines += table(
        ["model", "built by", "backbone params (M)", "forward GFLOPs per clip", "output TxHxWxC"],
        [
            [
                names[name],
                models[name]["builder"],
                f"{models[name]['backbone_trainable_parameters'] / 1e6:.2f}",
                f"{models[name]['forward_gflops_per_clip']:.2f}",
                "x".join(map(str, models[name]["output_shape"])),
            ]
            for name in ("ours", "model_garden")
        ],
        "llrrl",
    )
    lines += [""] + table(
        [
            "batch",
            "model",
            "step s",
            "clips/s",
            "achieved GFLOP/s",
            "utilisation",
            "ours / Model Garden",
        ],
        [
            [
                r["batch"],
                names[r["model"]],
                f"{r['step_seconds']:.3f}",
                f"{r['clips_per_second']:.2f}",
                f"{r['achieved_gflops_per_second']:.1f}",
                f"{100 * r['utilisation']:.0f}%",
                f"{r['ratio_to_model_garden']:.2f}x" if "ratio_to_model_garden" in r else "",
            ]
            for r in rows
        ],
        "rlrrrrr",
    )
    options = models["model_garden"].get("options", {})
    lines += [
        "",
        "Model Garden options: `" + json.dumps(options) + "`. Differences its API leaves:",
        "",
    ]
    lines += [f"- {difference}" for difference in data.get("differences", [])]
    flops_ratio = (
        models["ours"]["forward_gflops_per_clip"]
        / models["model_garden"]["forward_gflops_per_clip"]
    )
    params_ratio = (
        models["ours"]["backbone_trainable_parameters"]
        / models["model_garden"]["backbone_trainable_parameters"]
    )
    sentences = [
        f"Ours has {params_ratio:.2f}x the Model Garden's parameters and {flops_ratio:.2f}x its "
        "forward FLOPs (its bottleneck is factorised)."
    ]
    by_batch = {}
    for r in rows:
        by_batch.setdefault(r["batch"], {})[r["model"]] = r
    for batch, pair in by_batch.items():
        if len(pair) < 2:
            continue
        ours, theirs = pair["ours"], pair["model_garden"]
        ratio = ours["step_seconds"] / theirs["step_seconds"]
        sentences.append(
            f"Batch {batch}: our step takes {ratio:.2f}x the Model Garden's time "
            f"({ours['step_seconds']:.3f} s against {theirs['step_seconds']:.3f} s), "
            f"i.e. {ratio / flops_ratio:.2f}x its time per FLOP ({ours['achieved_gflops_per_second']:.1f} "
            f"against {theirs['achieved_gflops_per_second']:.1f} GFLOP/s achieved)"
            + unsteady("our", ours.get("step_seconds_all", []))
            + unsteady("the Model Garden's", theirs.get("step_seconds_all", []))
            + "."
        )
    if "ours" in models and models["ours"].get("graph_forward_gflops_per_clip") is not None:
        same = (
            abs(
                models["ours"]["graph_forward_gflops_per_clip"]
                - models["ours"]["forward_gflops_per_clip"]
            )
            < 1e-9
        )
        sentences.append(
            "The graph count applied to ours gives the same FLOPs as dynamonet_tf.models.flops."
            if same
            else f"The graph count applied to ours gives {models['ours']['graph_forward_gflops_per_clip']:.2f} "
            f"GFLOPs against dynamonet_tf.models.flops's {models['ours']['forward_gflops_per_clip']:.2f}."
        )
    return lines, " ".join(sentences)


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
    if not run:
        return ["No run_all.json: these JSONs were written by the scripts run one by one."]
    lines = [
        f"Last `{run['command']}`: {run['date_start']} to {run['date_end']} "
        f"({run['wall_seconds'] / 60:.1f} min); load averages (1 / 5 / 15 min) "
        f"{loads(run['load_average_at_start'])} at start, {loads(run['load_average_at_end'])} at end; "
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
        results = load_results(
            os.path.join(REPOSITORY, results_dir) if not os.path.isabs(results_dir) else results_dir
        )
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
