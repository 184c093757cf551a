"""Training throughput of the plain classifier against the full DynamoNet, per backbone.

    python -m bench.training [--backbones resnet18,resnext101] [--frames 16 --size 112]
                             [--batch 2 --steps 3] [--num-classes 400] [--json PATH]

For each backbone, times a training step of ``build_dynamonet("classifier")`` (backbone +
action head) and of ``build_dynamonet("joint")`` (the same plus the frame-prediction branch
and the DMR), so that the branch's cost shows as the ratio of the two step times, measured
side by side in one run, one step of each in turn. Each timed step is one SGD step (the
trainer's Nesterov momentum) in a ``tf.function`` on the trainer's losses, without weight
decay: sparse categorical cross-entropy on the logits, plus for the joint model alpha x the
frame-prediction Huber loss of the predicted against the next frames (alpha, beta and delta:
the config's defaults). Data are random: frames and next frames uniform in [0, 1], random
labels. Step time is the median over ``--steps`` steps after one warm-up step; the two
models' steps alternate. Achieved GFLOP/s assume a training step costs 3x the forward FLOPs,
as in bench/backbones.py.
"""

import argparse
import gc
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.machine import (  # noqa: E402
    add_utilisation_arguments,
    backbone_names,
    describe,
    machine,
    record_end,
)
from dynamonet_tf.config import LossConfig, OptimizerConfig  # noqa: E402
from dynamonet_tf.losses import frame_prediction_loss as make_frame_prediction_loss  # noqa: E402
from dynamonet_tf.models import build_dynamonet  # noqa: E402
from dynamonet_tf.models.flops import forward_flops  # noqa: E402
from dynamonet_tf.names import LOGITS, PREDICTED_FRAMES  # noqa: E402

KINDS = ("classifier", "joint")


def make_training_step(model, batch, num_classes):
    """A no-argument callable running one SGD step on fixed random clips (traced on first call)."""
    loss_config, optimizer_config = LossConfig(), OptimizerConfig()
    # The learning rate does not change the cost of a step.
    optimizer = keras.optimizers.SGD(
        learning_rate=0.01, momentum=optimizer_config.momentum, nesterov=optimizer_config.nesterov
    )
    optimizer.build(model.trainable_variables)
    frame_prediction_loss = make_frame_prediction_loss(loss_config, reduction=None)

    @tf.function
    def train_step(frames, next_frames, labels):
        with tf.GradientTape() as tape:
            outputs = model(frames, training=True)
            per_example = loss_config.beta * keras.losses.sparse_categorical_crossentropy(
                labels, outputs[LOGITS], from_logits=True
            )
            if PREDICTED_FRAMES in outputs:
                per_example += loss_config.alpha * frame_prediction_loss(
                    next_frames, outputs[PREDICTED_FRAMES]
                )
            loss = tf.reduce_mean(per_example)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    shape = (batch,) + tuple(model.input.shape[1:])
    frames = tf.random.uniform(shape)
    next_frames = tf.random.uniform(shape)
    labels = tf.random.uniform((batch,), maxval=num_classes, dtype=tf.int32)
    # .numpy() waits for asynchronous devices (GPUs) to finish.
    return lambda: train_step(frames, next_frames, labels).numpy()


def measure_backbone(backbone, args):
    """Both models of ``backbone``: their steps alternate, so that the machine's drift over
    the run (other load, clock changes) falls on both alike."""
    models = {
        kind: build_dynamonet(
            kind,
            backbone=backbone,
            input_shape=(args.frames, args.size, args.size, 3),
            num_classes=args.num_classes,
        )
        for kind in KINDS
    }
    steps = {
        kind: make_training_step(model, args.batch, args.num_classes)
        for kind, model in models.items()
    }
    for step in steps.values():
        step()  # warm-up: tracing and first-call allocations
    times = {kind: [] for kind in KINDS}
    for index in range(args.steps):
        # Alternate which model goes first, so neither always follows the other.
        for kind in KINDS if index % 2 == 0 else reversed(KINDS):
            start = time.perf_counter()
            steps[kind]()
            times[kind].append(time.perf_counter() - start)
    results = []
    for kind, model in models.items():
        flops_per_clip = forward_flops(model)
        step_seconds = statistics.median(times[kind])
        achieved = 3 * flops_per_clip * args.batch / step_seconds / 1e9
        results.append(
            {
                "backbone": backbone,
                "model": kind,
                "forward_gflops_per_clip": flops_per_clip / 1e9,
                "step_seconds": step_seconds,
                "step_seconds_all": times[kind],
                "clips_per_second": args.batch / step_seconds,
                "achieved_gflops_per_second": achieved,
                "utilisation": achieved / args.peak_gflops,
            }
        )
    return results


def overheads(results):
    """Per backbone, joint step time / classifier step time - 1: the branch's cost."""
    step_seconds = {(r["backbone"], r["model"]): r["step_seconds"] for r in results}
    return {
        backbone: step_seconds[backbone, "joint"] / step_seconds[backbone, "classifier"] - 1
        for backbone in dict.fromkeys(r["backbone"] for r in results)
    }


def print_table(results, overhead, args):
    print(
        f"\n{args.frames}x{args.size}x{args.size}x3 clips, batch {args.batch}, median of "
        f"{args.steps} SGD steps, utilisation against {args.peak_gflops:g} GFLOP/s\n"
    )
    print(
        "| backbone | model | forward GFLOPs per clip | step s | clips/s "
        "| achieved GFLOP/s | utilisation |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for result in results:
        print(
            f"| {result['backbone']} | {result['model']} "
            f"| {result['forward_gflops_per_clip']:.2f} | {result['step_seconds']:.2f} "
            f"| {result['clips_per_second']:.2f} | {result['achieved_gflops_per_second']:.1f} "
            f"| {100 * result['utilisation']:.0f}% |"
        )
    print()
    for backbone, ratio in overhead.items():
        print(f"{backbone}: the frame-prediction branch adds {100 * ratio:+.1f}% to the step time")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backbones",
        default="resnet18,resnext101",
        help="comma-separated backbone names (default: resnet18,resnext101)",
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=2)
    # Few steps: a ResNeXt-101 step takes ~5-6 s on the 2-core development CPU.
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--num-classes", type=int, default=400)
    add_utilisation_arguments(parser)
    args = parser.parse_args()
    names = backbone_names(parser, args.backbones)

    info = machine()
    print(describe(info))
    results = []
    for name in names:
        results.extend(measure_backbone(name, args))
        # The models' graphs, variables and traced steps would otherwise stay alive.
        keras.backend.clear_session()
        gc.collect()
    record_end(info)
    overhead = overheads(results)
    print_table(results, overhead, args)

    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                {
                    "machine": info,
                    "config": vars(args),
                    "results": results,
                    "frame_prediction_overhead": overhead,
                },
                file,
                indent=2,
            )


if __name__ == "__main__":
    main()
