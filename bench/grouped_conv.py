"""Forward + backward time of one grouped 3x3x3 convolution at each ResNeXt-101 stage shape.

    python -m bench.grouped_conv [--implementations native,split,conv2d,auto] [--repeats 7]
                                 [--rounds 2] [--batch 1] [--dtype float32]
                                 [--torch-python /tmp/torchenv/bin/python] [--json PATH]

The shapes are those of ResNeXt-101's grouped convolutions (cardinality 32) on 16x112x112
clips: per stage the first, strided (stride 2, explicitly padded, "valid") block, and the
stride-1 ("same") blocks. Each implementation of :class:`dynamonet_tf.layers.GroupedConv3D`
is timed on the same kernel and inputs in a ``tf.function`` (output, then the gradients of a
sum of squares for the input and the kernel): the median of ``--repeats`` calls after a
warm-up, each round interleaving the implementations, the median taken over all rounds.
``native`` is Keras's own grouped ``Conv3D`` (XLA on a TensorFlow CPU): the "before".
With ``--torch-python`` the same shapes are timed with PyTorch's grouped ``nn.Conv3d``
(bench/reference/hara_torch.py, in its own environment) in the same run.
"""

import argparse
import json
import os
import statistics
import subprocess
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.machine import describe, machine, record_end  # noqa: E402
from dynamonet_tf.layers import GroupedConv3D  # noqa: E402
from dynamonet_tf.layers.grouped_conv3d import IMPLEMENTATIONS  # noqa: E402

HARA_TORCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "hara_torch.py")
GROUPS = 32
# (stage, input time, height, width, channels, stride, layers of this shape in ResNeXt-101)
SHAPES = [
    ("layer1", 8, 28, 28, 128, 1, 3),
    ("layer2 first", 8, 28, 28, 256, 2, 1),
    ("layer2", 4, 14, 14, 256, 1, 3),
    ("layer3 first", 4, 14, 14, 512, 2, 1),
    ("layer3", 2, 7, 7, 512, 1, 22),
    ("layer4 first", 2, 7, 7, 1024, 2, 1),
    ("layer4", 1, 4, 4, 1024, 1, 2),
]


def make_layer(implementation, channels, stride, dtype):
    """The layer as resnet3d builds it: stride 1 "same"; stride 2 on padded inputs, "valid"."""
    layer = GroupedConv3D(
        channels,
        3,
        strides=stride,
        padding="same" if stride == 1 else "valid",
        groups=GROUPS,
        use_bias=False,
        implementation=implementation,
        dtype=dtype,
    )
    return layer


def timer(layer, inputs, pad):
    @tf.function
    def step(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            x = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [1, 1], [0, 0]]) if pad else inputs
            outputs = layer(x)
            loss = tf.reduce_sum(tf.square(tf.cast(outputs, tf.float32)))
        input_gradient, kernel_gradient = tape.gradient(loss, [inputs, layer.kernel])
        return tf.reduce_sum(input_gradient) + tf.reduce_sum(kernel_gradient)

    step(inputs).numpy()

    def run(repeats):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step(inputs).numpy()
            times.append(time.perf_counter() - start)
        return times

    return run


def torch_seconds(torch_python, batch, repeats):
    """PyTorch's median seconds per shape, or the reason there are none."""
    if batch != 1:
        return None, "the PyTorch timing of bench/reference/hara_torch.py uses batch 1"
    if not torch_python:
        return None, "not measured: no --torch-python given"
    if not os.path.exists(torch_python):
        return None, f"not measured: {torch_python} does not exist"
    shapes = [[t, h, w, c, s, GROUPS] for _, t, h, w, c, s, _ in SHAPES]
    result = subprocess.run(
        [torch_python, HARA_TORCH, "conv", json.dumps(shapes), "--repeats", str(repeats)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return None, f"not measured: {torch_python} failed: {result.stderr.strip()[-300:]}"
    return json.loads(result.stdout.strip().splitlines()[-1]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--implementations", default="native,split,conv2d,auto")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument(
        "--dtype", default="float32", help="a Keras dtype policy, e.g. mixed_bfloat16"
    )
    parser.add_argument(
        "--torch-python", metavar="PATH", help="python of an environment with torch"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args()
    implementations = args.implementations.split(",")
    unknown = [name for name in implementations if name not in IMPLEMENTATIONS]
    if unknown:
        parser.error(
            f"unknown implementations {', '.join(unknown)}; valid: {', '.join(IMPLEMENTATIONS)}"
        )

    info = machine()
    print(describe(info), flush=True)
    rng = np.random.default_rng(0)
    results = []
    for stage, frames, height, width, channels, stride, count in SHAPES:
        inputs = tf.constant(
            rng.normal(size=(args.batch, frames, height, width, channels)), tf.float32
        )
        kernel = rng.normal(scale=0.05, size=(3, 3, 3, channels // GROUPS, channels)).astype(
            np.float32
        )
        runs = {}
        for implementation in implementations:
            layer = make_layer(implementation, channels, stride, args.dtype)
            layer.build(
                (
                    None,
                    frames + 2 * (stride > 1),
                    height + 2 * (stride > 1),
                    width + 2 * (stride > 1),
                    channels,
                )
            )
            layer.kernel.assign(kernel)
            runs[implementation] = (timer(layer, inputs, pad=stride > 1), layer)
        times = {name: [] for name in implementations}
        for round_index in range(args.rounds):
            order = implementations if round_index % 2 == 0 else implementations[::-1]
            for name in order:
                times[name] += runs[name][0](args.repeats)
        shape = (frames + 2 * (stride > 1), height + 2 * (stride > 1), width + 2 * (stride > 1))
        auto = (
            runs["auto"][1].resolved_implementation((None,) + shape + (channels,))
            if "auto" in runs
            else None
        )
        result = dict(
            stage=stage,
            input=[frames, height, width, channels],
            stride=stride,
            layers=count,
            auto_picks=auto,
            median_ms={name: 1e3 * statistics.median(t) for name, t in times.items()},
        )
        results.append(result)
        print(
            f"{stage}: " + ", ".join(f"{n} {v:.1f} ms" for n, v in result["median_ms"].items()),
            flush=True,
        )
        keras.backend.clear_session()

    torch_result, torch_note = torch_seconds(
        args.torch_python, args.batch, args.repeats * args.rounds
    )
    record_end(info)
    if torch_result:
        for result, seconds in zip(results, torch_result["seconds"]):
            result["median_ms"]["pytorch"] = 1e3 * seconds
    columns = implementations + (["pytorch"] if torch_result else [])

    print(
        f"\nbatch {args.batch}, {args.dtype}, groups {GROUPS}, forward + backward, median ms "
        f"({args.rounds} rounds x {args.repeats} calls)"
    )
    if torch_result:
        print(f"PyTorch {torch_result['torch']} ({torch_result['threads']} threads), same run")
    else:
        print(f"PyTorch: {torch_note}")
    print(
        "\n| stage | input TxHxWxC | stride | layers | " + " | ".join(columns) + " | auto picks |"
    )
    print("|---|---|---:|---:|" + "---:|" * len(columns) + "---|")
    totals = {name: 0.0 for name in columns}
    for result in results:
        for name in columns:
            totals[name] += result["layers"] * result["median_ms"][name]
        print(
            f"| {result['stage']} | {'x'.join(map(str, result['input']))} | {result['stride']} "
            f"| {result['layers']} | "
            + " | ".join(f"{result['median_ms'][name]:.1f}" for name in columns)
            + f" | {result['auto_picks'] or ''} |"
        )
    print(
        "| all 33 layers (x layers) | | | 33 | "
        + " | ".join(f"{totals[name]:.0f}" for name in columns)
        + " | |"
    )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                {
                    "machine": info,
                    "config": vars(args),
                    "pytorch": torch_result or torch_note,
                    "results": results,
                    "totals_ms": totals,
                },
                file,
                indent=2,
            )


if __name__ == "__main__":
    main()
