"""Times DynamicFilter forward+backward for each implementation and kind of filter.

    python -m bench.dynamic_filter [--batch 8 --frames 16 --size 112 --kernel 5 --repeats 5]

Each timed call runs the layer and the gradients of a loss with respect to both the frames
and the filters inside one ``tf.function``, after a warm-up call that traces it. The default
shape is the paper's: 8 clips of 16 RGB frames at 112x112, 5x5 filters.
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from bench.machine import describe, machine, record_end  # noqa: E402
from dynamonet_tf.layers import DynamicFilter  # noqa: E402

CASES = (
    ("depthwise (global)", dict(implementation="depthwise")),
    ("extract_patches (global)", dict(implementation="extract_patches")),
    ("conv_patches (global)", dict(implementation="conv_patches")),
    ("extract_patches (per-pixel)", dict(implementation="extract_patches", per_pixel=True)),
    ("conv_patches (per-pixel)", dict(implementation="conv_patches", per_pixel=True)),
)


def time_forward_backward(layer, frames, filters, repeats):
    """Milliseconds of each of ``repeats`` forward+backward calls, after one warm-up."""

    @tf.function
    def step(frames, filters):
        with tf.GradientTape() as tape:
            tape.watch([frames, filters])
            loss = tf.reduce_mean(tf.square(layer(frames, filters)))
        return tape.gradient(loss, [frames, filters])

    step(frames, filters)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for gradient in step(frames, filters):
            gradient.numpy()  # waits for asynchronous devices (GPUs) to finish
        times.append(1000 * (time.perf_counter() - start))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args()

    info = machine()
    print(describe(info))
    shape = (args.batch, args.frames, args.size, args.size)
    frames = tf.random.uniform(shape + (3,))
    taps = args.kernel * args.kernel
    results = []
    for label, options in CASES:
        filter_shape = shape if options.get("per_pixel") else shape[:2]
        filters = tf.reshape(
            tf.nn.softmax(tf.random.normal(filter_shape + (taps,))),
            filter_shape + (args.kernel, args.kernel),
        )
        layer = DynamicFilter(args.kernel, **options)
        times = time_forward_backward(layer, frames, filters, args.repeats)
        results.append(
            {"implementation": label, "median_ms": statistics.median(times), "ms": times}
        )

    record_end(info)
    fastest = min(result["median_ms"] for result in results)
    print(
        f"\nDynamicFilter forward+backward, B={args.batch}, T={args.frames}, "
        f"{args.size}x{args.size}x3, k={args.kernel}, median of {args.repeats}\n"
    )
    print("| implementation | median ms | ratio to fastest |")
    print("|---|---:|---:|")
    for result in results:
        ratio = result["median_ms"] / fastest
        print(f"| {result['implementation']} | {result['median_ms']:.1f} | {ratio:.2f} |")

    if args.json:
        with open(args.json, "w") as file:
            json.dump({"machine": info, "config": vars(args), "results": results}, file, indent=2)


if __name__ == "__main__":
    main()
