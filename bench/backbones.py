"""Size, forward FLOPs and training-step time of each backbone, beside PyTorch's.

    python -m bench.backbones [--backbones resnet18,resnext101] [--frames 16 --size 112]
                              [--batch 1 --steps 3 --rounds 1] [--skip-timing]
                              [--grouped-conv-implementations auto,native]
                              [--torch-python /tmp/torchenv/bin/python] [--json PATH]

Parameters and FLOPs are the backbone's alone (clips to last feature map). The timed step is
one SGD step of backbone + global average pool + Dense(400) with sparse categorical
cross-entropy on random clips, in a ``tf.function``: the median over ``--rounds`` x
``--steps`` steps after one warm-up step; the variants of a backbone (implementations, and
PyTorch's) take their steps in turn, one step each. Achieved GFLOP/s assume a training step costs 3x
the forward FLOPs (forward, and two products of the same size for the gradients of
activations and of weights).

ResNeXt backbones are timed once per ``--grouped-conv-implementations`` entry (how their
grouped convolutions compute, dynamonet_tf/layers/grouped_conv3d.py): ``auto`` is the
default build; ``native`` is Keras's own grouped ``Conv3D``, the speed before GroupedConv3D.

With ``--torch-python`` (the python of an environment with torch, e.g. made by
``python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0 numpy``) the
same step of the same architecture in PyTorch (bench/reference/hara_torch.py, run as a
subprocess) is timed in the same run, its steps alternating with ours, and the table gives
the ratio of our step time to PyTorch's. Without it the table says PyTorch was not measured.
Results: ``--json bench/results/backbones.json`` (bench/results/ is not tracked).
"""

import argparse
import gc
import json
import os
import statistics
import subprocess
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.machine import (  # noqa: E402
    add_utilisation_arguments,
    backbone_names,
    describe,
    machine,
)
from dynamonet_tf.layers.grouped_conv3d import IMPLEMENTATIONS  # noqa: E402
from dynamonet_tf.models import build_backbone  # noqa: E402
from dynamonet_tf.models.flops import forward_flops, trainable_parameter_count  # noqa: E402
from dynamonet_tf.names import BACKBONES  # noqa: E402

NUM_CLASSES = 400
HARA_TORCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "hara_torch.py")


def classifier(backbone):
    features = keras.layers.GlobalAveragePooling3D()(backbone.output)
    logits = keras.layers.Dense(NUM_CLASSES)(features)
    return keras.Model(backbone.input, logits)


def training_step_timer(model, batch):
    """After one warm-up step, a function giving the seconds of each of ``steps`` SGD steps."""
    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    optimizer.build(model.trainable_variables)
    loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(clips, labels):
        with tf.GradientTape() as tape:
            loss = loss_function(labels, model(clips, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    clips = tf.random.uniform((batch,) + tuple(model.input.shape[1:]))
    labels = tf.random.uniform((batch,), maxval=NUM_CLASSES, dtype=tf.int32)
    train_step(clips, labels)

    def run(steps):
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            train_step(clips, labels).numpy()  # waits for asynchronous devices (GPUs) to finish
            times.append(time.perf_counter() - start)
        return times

    return run


def time_training_steps(model, batch, steps):
    """Seconds of each of ``steps`` SGD steps on random clips, after one warm-up step."""
    return training_step_timer(model, batch)(steps)


def torch_problem(torch_python):
    """Why PyTorch cannot be timed with ``torch_python``, or None when it can."""
    if not torch_python:
        return "not measured: no --torch-python given"
    if not os.path.exists(torch_python):
        return f"not measured: {torch_python} does not exist"
    check = subprocess.run([torch_python, "-c", "import torch"], capture_output=True, text=True)
    if check.returncode != 0:
        return f"not measured: {torch_python} cannot import torch"
    return None


class TorchSteps:
    """PyTorch's training step of backbone ``name``, built and warmed up in a subprocess that
    times steps on request, so that they can alternate with ours."""

    def __init__(self, name, args):
        command = [
            args.torch_python, HARA_TORCH, "step", name, "--serve",
            "--frames", str(args.frames), "--size", str(args.size), "--batch", str(args.batch),
        ]  # fmt: skip
        self.name = name
        self.errors = tempfile.TemporaryFile("w+")  # a pipe nobody reads could fill and block
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, text=True
        )
        self.info = self._answer()

    def _answer(self):
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.errors.seek(0)
            error = self.errors.read().strip()[-500:]
            raise RuntimeError(f"PyTorch step failed for {self.name}: {error}")
        return json.loads(line)

    def __call__(self, steps):
        self.process.stdin.write(f"{steps}\n")
        self.process.stdin.flush()
        return self._answer()["step_seconds_all"]

    def close(self):
        self.process.stdin.close()
        self.process.wait()
        self.process.stdout.close()
        self.errors.close()


def implementations_for(name, args):
    """The grouped-convolution implementations to time ``name`` with (ResNeXts only)."""
    return args.implementations if "resnext" in name else [None]


def measure(name, args):
    """One result per implementation of the grouped convolutions, PyTorch's step alongside."""
    shape = (args.frames, args.size, args.size, 3)
    backbone = build_backbone(name, input_shape=shape)
    common = {
        "backbone": name,
        "trainable_parameters": trainable_parameter_count(backbone),
        "forward_gflops_per_clip": forward_flops(backbone) / 1e9,
    }
    if args.skip_timing:
        return [common]
    del backbone
    runs, results = {}, []
    for implementation in implementations_for(name, args):
        options = {} if implementation is None else {"grouped_conv_implementation": implementation}
        model = classifier(build_backbone(name, input_shape=shape, **options))
        step_flops = 3 * forward_flops(model, batch_size=args.batch)
        runs[implementation] = training_step_timer(model, args.batch)
        results.append(
            dict(common, grouped_conv_implementation=implementation, step_seconds_all=[])
        )
    torch_times, torch_info = [], None
    torch_run = None if args.torch_problem else TorchSteps(name, args)
    try:
        # One step of each in turn, so that all see the same moments of a shared machine.
        for _ in range(args.rounds * args.steps):
            for implementation, result in zip(runs, results):
                result["step_seconds_all"] += runs[implementation](1)
            if torch_run:
                torch_times += torch_run(1)
    finally:
        if torch_run:
            torch_info = torch_run.info
            torch_run.close()
    if torch_info and torch_info["trainable_parameters"] != common["trainable_parameters"]:
        print(
            f"Warning: PyTorch's {name} has {torch_info['trainable_parameters']:,} trainable "
            f"parameters, ours {common['trainable_parameters']:,}: not the same architecture."
        )
    for result in results:
        step_seconds = statistics.median(result["step_seconds_all"])
        achieved = step_flops / step_seconds / 1e9
        result.update(
            step_seconds=step_seconds,
            achieved_gflops_per_second=achieved,
            utilisation=achieved / args.peak_gflops,
        )
        if torch_times:
            torch_seconds = statistics.median(torch_times)
            result.update(
                pytorch_step_seconds=torch_seconds,
                pytorch_step_seconds_all=torch_times,
                pytorch_trainable_parameters=torch_info["trainable_parameters"],
                ratio_to_pytorch=step_seconds / torch_seconds,
            )
    return results


def print_table(results, args):
    timed = not args.skip_timing
    compared = timed and args.torch_problem is None
    header = "| backbone | trainable params (M) | forward GFLOPs per clip |"
    rule = "|---|---:|---:|"
    if timed:
        header += " grouped conv | step s | achieved GFLOP/s | utilisation |"
        rule += "---|---:|---:|---:|"
    if compared:
        header += " PyTorch step s | ours / PyTorch |"
        rule += "---:|---:|"
    print(f"\n{args.frames}x{args.size}x{args.size}x3 clips", end="")
    if timed:
        print(
            f", batch {args.batch}, median of {args.rounds * args.steps} SGD steps, "
            f"utilisation against {args.peak_gflops:g} GFLOP/s",
            end="",
        )
    print()
    if timed:
        if compared:
            print(f"PyTorch {args.torch_version}: same run, steps alternating with ours")
        else:
            print(f"PyTorch: {args.torch_problem}")
    print(f"\n{header}\n{rule}")
    for result in results:
        row = (
            f"| {result['backbone']} | {result['trainable_parameters'] / 1e6:.2f} "
            f"| {result['forward_gflops_per_clip']:.2f} |"
        )
        if timed:
            row += (
                f" {result['grouped_conv_implementation'] or '-'} "
                f"| {result['step_seconds']:.2f} | {result['achieved_gflops_per_second']:.1f} "
                f"| {100 * result['utilisation']:.0f}% |"
            )
        if compared:
            row += f" {result['pytorch_step_seconds']:.2f} | {result['ratio_to_pytorch']:.2f}x |"
        print(row)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backbones",
        default=",".join(BACKBONES),
        help="comma-separated backbone names (default: all)",
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--rounds", type=int, default=1, help="time rounds x steps steps of each variant"
    )
    parser.add_argument("--skip-timing", action="store_true", help="parameters and FLOPs only")
    parser.add_argument(
        "--grouped-conv-implementations",
        default="auto",
        help="comma-separated GroupedConv3D implementations to time ResNeXts with "
        f"({', '.join(IMPLEMENTATIONS)}; 'native' is Keras's grouped Conv3D; default: auto)",
    )
    parser.add_argument(
        "--torch-python",
        metavar="PATH",
        help="python of an environment with torch: also time bench/reference/hara_torch.py",
    )
    add_utilisation_arguments(parser)
    args = parser.parse_args()
    names = backbone_names(parser, args.backbones)
    args.implementations = args.grouped_conv_implementations.split(",")
    unknown = [name for name in args.implementations if name not in IMPLEMENTATIONS]
    if unknown:
        parser.error(
            f"unknown grouped conv implementations {', '.join(unknown)}; "
            f"valid: {', '.join(IMPLEMENTATIONS)}"
        )
    args.torch_problem = None if args.skip_timing else torch_problem(args.torch_python)
    args.torch_version = None
    if args.torch_problem is None and not args.skip_timing:
        version = subprocess.run(
            [
                args.torch_python,
                "-c",
                "import torch; print(torch.__version__, torch.get_num_threads())",
            ],
            capture_output=True,
            text=True,
        ).stdout.split()
        args.torch_version = f"{version[0]}, {version[1]} threads"

    info = machine()
    print(describe(info), flush=True)
    if not args.skip_timing:
        print(f"PyTorch reference: {args.torch_problem or args.torch_version}", flush=True)
        # Other processes on a shared machine distort timings, PyTorch's most (its OpenMP
        # threads wait actively for each other): the load averages tell readers how much.
        info["load_average_at_start"] = os.getloadavg()
        print("Load average at start: {:.1f} {:.1f} {:.1f}".format(*info["load_average_at_start"]))
    results = []
    for name in names:
        results.extend(measure(name, args))
        for result in (
            results[-len(implementations_for(name, args)) :] if not args.skip_timing else []
        ):
            line = (
                f"{name} [{result['grouped_conv_implementation'] or '-'}]: "
                f"{result['step_seconds']:.2f} s"
            )
            if "pytorch_step_seconds" in result:
                line += (
                    f", PyTorch {result['pytorch_step_seconds']:.2f} s "
                    f"({result['ratio_to_pytorch']:.2f}x)"
                )
            print(line, flush=True)
        # Each backbone's graph, variables and traced step would otherwise stay alive.
        keras.backend.clear_session()
        gc.collect()
    if not args.skip_timing:
        info["load_average_at_end"] = os.getloadavg()
        print("Load average at end: {:.1f} {:.1f} {:.1f}".format(*info["load_average_at_end"]))
    print_table(results, args)

    if args.json:
        with open(args.json, "w") as file:
            json.dump({"machine": info, "config": vars(args), "results": results}, file, indent=2)


if __name__ == "__main__":
    main()
