"""Size, forward FLOPs and training-step time of each backbone.

    python bench/backbones.py [--backbones resnet18,resnext101] [--frames 16 --size 112]
                              [--batch 1 --steps 3] [--skip-timing] [--json PATH]

Parameters and FLOPs are the backbone's alone (clips to last feature map). The timed step is
one SGD step of backbone + global average pool + Dense(400) with sparse categorical
cross-entropy on random clips, in a ``tf.function``: the median over ``--steps`` steps after
one warm-up step. Achieved GFLOP/s assume a training step costs 3x the forward FLOPs (forward,
and two products of the same size for the gradients of activations and of weights).
"""

import argparse
import gc
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from dynamonet_tf.models import BACKBONES, build_backbone  # noqa: E402
from dynamonet_tf.models.flops import forward_flops, trainable_parameter_count  # noqa: E402
from machine import add_utilisation_arguments, backbone_names, describe, machine  # noqa: E402

NUM_CLASSES = 400


def classifier(backbone):
    features = keras.layers.GlobalAveragePooling3D()(backbone.output)
    logits = keras.layers.Dense(NUM_CLASSES)(features)
    return keras.Model(backbone.input, logits)


def time_training_steps(model, batch, steps):
    """Seconds of each of ``steps`` SGD steps on random clips, after one warm-up step."""
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
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        train_step(clips, labels).numpy()  # waits for asynchronous devices (GPUs) to finish
        times.append(time.perf_counter() - start)
    return times


def measure(name, args):
    backbone = build_backbone(name, input_shape=(args.frames, args.size, args.size, 3))
    result = {
        "backbone": name,
        "trainable_parameters": trainable_parameter_count(backbone),
        "forward_gflops_per_clip": forward_flops(backbone) / 1e9,
    }
    if not args.skip_timing:
        model = classifier(backbone)
        step_flops = 3 * forward_flops(model, batch_size=args.batch)
        times = time_training_steps(model, args.batch, args.steps)
        step_seconds = statistics.median(times)
        achieved = step_flops / step_seconds / 1e9
        result.update(
            step_seconds=step_seconds,
            step_seconds_all=times,
            achieved_gflops_per_second=achieved,
            utilisation=achieved / args.peak_gflops,
        )
    return result


def print_table(results, args):
    timed = not args.skip_timing
    header = "| backbone | trainable params (M) | forward GFLOPs per clip |"
    rule = "|---|---:|---:|"
    if timed:
        header += " step s | achieved GFLOP/s | utilisation |"
        rule += "---:|---:|---:|"
    print(f"\n{args.frames}x{args.size}x{args.size}x3 clips", end="")
    if timed:
        print(
            f", batch {args.batch}, median of {args.steps} SGD steps, "
            f"utilisation against {args.peak_gflops:g} GFLOP/s",
            end="",
        )
    print(f"\n\n{header}\n{rule}")
    for result in results:
        row = (
            f"| {result['backbone']} | {result['trainable_parameters'] / 1e6:.2f} "
            f"| {result['forward_gflops_per_clip']:.2f} |"
        )
        if timed:
            row += (
                f" {result['step_seconds']:.2f} | {result['achieved_gflops_per_second']:.1f} "
                f"| {100 * result['utilisation']:.0f}% |"
            )
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
    parser.add_argument("--skip-timing", action="store_true", help="parameters and FLOPs only")
    add_utilisation_arguments(parser)
    args = parser.parse_args()
    names = backbone_names(parser, args.backbones)

    info = machine()
    print(describe(info))
    results = []
    for name in names:
        results.append(measure(name, args))
        # Each backbone's graph, variables and traced step would otherwise stay alive.
        keras.backend.clear_session()
        gc.collect()
    print_table(results, args)

    if args.json:
        with open(args.json, "w") as file:
            json.dump({"machine": info, "config": vars(args), "results": results}, file, indent=2)


if __name__ == "__main__":
    main()
