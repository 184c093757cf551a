"""Our 3D ResNet-50 against the TF Model Garden's ResNet3D-50: size, FLOPs and training step.

    python -m bench.model_garden [--frames 16 --size 112] [--batches 1,2]
                                 [--rounds 3 --steps 2] [--json PATH]

Ours is ``dynamonet_tf.models.build_backbone("resnet50")`` (Keras 3): Hara et al.'s 3D
ResNet-50. Theirs is ``official.vision.modeling.backbones.ResNet3D`` from tf-models-official
(tf_keras, i.e. Keras 2), built in the same process with the options closest to Hara's
ResNet-50 that its API allows (``MODEL_GARDEN_OPTIONS``):

- depth 50 (3, 4, 6, 3 bottlenecks of widths 64/128/256/512, expansion 4);
- stem: 64 filters of 7x7x7, stride (1, 2, 2) (Hara's conv1), then a 3x3x3 max-pool of
  stride 2 in time and space (Hara's max-pool);
- temporal stride 2 in stages 3-5 (``temporal_strides=[1, 2, 2, 2]``) and temporal kernel 3
  in every block, so that a 16x112x112 clip ends as a 1x4x4x2048 map, as ours.

What its API cannot match (``DIFFERENCES``, printed and saved): the Model Garden bottleneck
is factorised, a (3, 1, 1) temporal convolution in place of Hara's 1x1x1 reduction and a
(1, 3, 3) spatial convolution in place of Hara's 3x3x3 one, so it has fewer parameters and
FLOPs; the time stride is on the temporal convolution (Hara: on the 3x3x3 one); convolutions
pad "same" (Hara, and ours: symmetric explicit padding on strided layers); BatchNorm momentum
and epsilon differ (0.99/1e-3 against our 0.9/1e-5, PyTorch's), which costs nothing.

Each model gets the same head and step: global average pool, Dense(400), the mean sparse
softmax cross-entropy of the logits (the same TensorFlow op for both), one plain SGD step
(learning rate 0.01; each side's own Keras optimizer) in a ``tf.function``, on the same random
clips and labels. Per batch size, after one warm-up step each, ``--rounds`` rounds each time
``--steps`` steps of one model then of the other, the order alternating between rounds, so
that both see the same moments of a shared machine; the step time is the median over all
rounds, and the ratio (ours / Model Garden's) is taken in this one run.

FLOPs follow dynamonet_tf/models/flops.py's convention (2 x multiply-accumulates of the
convolutions and Dense layers; nothing else counted): ours with
``dynamonet_tf.models.flops.forward_flops``; theirs, being tf_keras layers that function does
not know, by the same rule applied to the Conv3D/Conv2D/MatMul operations of the traced
forward graph (the ``graph_forward_flops`` function below), which is also applied to ours as a
check that the two counts agree. Achieved GFLOP/s assume a step costs 3x the forward FLOPs, as
in bench/backbones.py.
"""

import argparse
import gc
import json
import math
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
from official.vision.modeling.backbones import ResNet3D  # noqa: E402

from bench.machine import (  # noqa: E402
    add_utilisation_arguments,
    describe,
    machine,
    record_end,
)
from dynamonet_tf.models import build_backbone  # noqa: E402
from dynamonet_tf.models.flops import forward_flops, trainable_parameter_count  # noqa: E402

NUM_CLASSES = 400
MODELS = ("ours", "model_garden")
MODEL_GARDEN_OPTIONS = dict(
    model_id=50,
    temporal_strides=[1, 2, 2, 2],
    temporal_kernel_sizes=[(3,) * 3, (3,) * 4, (3,) * 6, (3,) * 3],
    stem_type="v0",
    stem_conv_temporal_kernel_size=7,
    stem_conv_temporal_stride=1,
    stem_pool_temporal_stride=2,
)
DIFFERENCES = [
    "Model Garden bottleneck: (3,1,1) temporal conv + (1,3,3) spatial conv + 1x1x1; "
    "Hara/ours: 1x1x1 + 3x3x3 + 1x1x1 (the Model Garden block is factorised: fewer "
    "parameters and FLOPs)",
    "temporal stride of stages 3-5 on the Model Garden's first (temporal) conv, ours on the "
    "3x3x3 conv; spatial stride on the (1,3,3) conv in both",
    "Model Garden pads 'same' (more after than before on strided layers); ours pads "
    "symmetrically like PyTorch",
    "BatchNorm momentum/epsilon 0.99/1e-3 (Model Garden) against 0.9/1e-5 (ours, PyTorch's)",
    "each side's own SGD optimizer: tf_keras's (Model Garden) and Keras 3's (ours)",
]


def ours(shape):
    backbone = build_backbone("resnet50", input_shape=shape)
    features = keras.layers.GlobalAveragePooling3D()(backbone.output)
    return backbone, keras.Model(backbone.input, keras.layers.Dense(NUM_CLASSES)(features))


def model_garden(shape):
    backbone = ResNet3D(
        input_specs=tf_keras.layers.InputSpec(shape=[None, *shape]), **MODEL_GARDEN_OPTIONS
    )
    clips = tf_keras.Input(shape=shape)
    features = tf_keras.layers.GlobalAveragePooling3D()(backbone(clips)["5"])
    return backbone, tf_keras.Model(clips, tf_keras.layers.Dense(NUM_CLASSES)(features))


def graph_forward_flops(model, shape):
    """Forward FLOPs per clip of ``model`` by flops.py's rule, read off the traced graph:
    2 x output elements x kernel volume x input channels per group for each Conv3D/Conv2D,
    2 x m x k x n for each MatMul; other operations count zero."""
    forward = tf.function(lambda clips: model(clips, training=False))
    graph = forward.get_concrete_function(tf.TensorSpec((1, *shape), tf.float32)).graph
    total = 0
    for operation in graph.get_operations():
        if operation.type in ("Conv3D", "Conv2D"):
            kernel = operation.inputs[1].shape.as_list()  # spatial dims..., in/groups, out
            outputs = operation.outputs[0].shape.as_list()
            total += 2 * math.prod(outputs) * math.prod(kernel[:-1])
        elif operation.type == "MatMul":
            a = operation.inputs[0].shape.as_list()
            m, k = a[::-1] if operation.get_attr("transpose_a") else a
            n = operation.outputs[0].shape.as_list()[1]
            total += 2 * m * k * n
        elif "Call" in operation.type or operation.type in ("While", "If"):
            raise RuntimeError(f"cannot count FLOPs inside {operation.type} {operation.name}")
    return total


def step_timer(model, apply_gradients, batch, shape):
    """After one warm-up SGD step, a function giving the seconds of each of ``steps`` steps."""

    @tf.function
    def train_step(clips, labels):
        with tf.GradientTape() as tape:
            logits = model(clips, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            )
        gradients = tape.gradient(loss, model.trainable_variables)
        apply_gradients(gradients, model.trainable_variables)
        return loss

    clips = tf.random.stateless_uniform((batch, *shape), seed=(0, batch))
    labels = tf.random.stateless_uniform(
        (batch,), seed=(1, batch), maxval=NUM_CLASSES, dtype=tf.int32
    )
    train_step(clips, labels).numpy()

    def run(steps):
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            train_step(clips, labels).numpy()  # waits for asynchronous devices (GPUs)
            times.append(time.perf_counter() - start)
        return times

    return run


def timers(classifiers, batch, shape):
    keras_sgd = keras.optimizers.SGD(learning_rate=0.01)
    keras_sgd.build(classifiers["ours"].trainable_variables)
    tf_keras_sgd = tf_keras.optimizers.SGD(learning_rate=0.01)
    return {
        "ours": step_timer(classifiers["ours"], keras_sgd.apply, batch, shape),
        "model_garden": step_timer(
            classifiers["model_garden"],
            lambda gradients, variables: tf_keras_sgd.apply_gradients(zip(gradients, variables)),
            batch,
            shape,
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batches", default="1,2", help="comma-separated batch sizes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="steps of each model per round")
    add_utilisation_arguments(parser)
    args = parser.parse_args()
    batches = [int(batch) for batch in args.batches.split(",")]
    shape = (args.frames, args.size, args.size, 3)

    info = machine()
    print(describe(info), flush=True)
    print(f"tf-models-official ResNet3D on tf_keras {tf_keras.__version__}", flush=True)
    backbones, classifiers = {}, {}
    backbones["ours"], classifiers["ours"] = ours(shape)
    backbones["model_garden"], classifiers["model_garden"] = model_garden(shape)
    models = {}
    for name in MODELS:
        graph_flops = graph_forward_flops(backbones[name], shape)
        models[name] = {
            "backbone_trainable_parameters": int(trainable_parameter_count(backbones[name])),
            "classifier_trainable_parameters": int(trainable_parameter_count(classifiers[name])),
            "forward_gflops_per_clip": (
                forward_flops(backbones[name]) if name == "ours" else graph_flops
            )
            / 1e9,
            "graph_forward_gflops_per_clip": graph_flops / 1e9,
            "classifier_graph_forward_gflops_per_clip": graph_forward_flops(
                classifiers[name], shape
            )
            / 1e9,
            "output_shape": (
                [int(d) for d in backbones[name].output_shape["5"][1:]]
                if name == "model_garden"
                else [int(d) for d in backbones[name].output.shape[1:]]
            ),
        }
    models["ours"]["builder"] = 'dynamonet_tf.models.build_backbone("resnet50") (Keras 3)'
    models["model_garden"]["builder"] = (
        "official.vision.modeling.backbones.ResNet3D (tf-models-official, tf_keras "
        f"{tf_keras.__version__})"
    )
    models["model_garden"]["options"] = MODEL_GARDEN_OPTIONS
    print("Differences the Model Garden's API leaves:\n- " + "\n- ".join(DIFFERENCES))

    results = []
    for batch in batches:
        run = timers(classifiers, batch, shape)
        times = {name: [] for name in MODELS}
        for round_index in range(args.rounds):
            order = MODELS if round_index % 2 == 0 else MODELS[::-1]
            for name in order:
                times[name] += run[name](args.steps)
        seconds = {name: statistics.median(times[name]) for name in MODELS}
        for name in MODELS:
            step_gflops = 3 * models[name]["classifier_graph_forward_gflops_per_clip"] * batch
            achieved = step_gflops / seconds[name]
            row = {
                "model": name,
                "batch": batch,
                "step_seconds": seconds[name],
                "step_seconds_all": times[name],
                "clips_per_second": batch / seconds[name],
                "step_gflops": step_gflops,
                "achieved_gflops_per_second": achieved,
                "utilisation": achieved / args.peak_gflops,
            }
            if name == "ours":
                row["ratio_to_model_garden"] = seconds["ours"] / seconds["model_garden"]
            results.append(row)
        print(
            f"batch {batch}: ours {seconds['ours']:.3f} s, Model Garden "
            f"{seconds['model_garden']:.3f} s, ours / Model Garden "
            f"{seconds['ours'] / seconds['model_garden']:.2f}",
            flush=True,
        )
        del run
        gc.collect()
    record_end(info)

    print(
        f"\n{args.frames}x{args.size}x{args.size}x3 clips, median of {args.rounds} x "
        f"{args.steps} SGD steps per model, rounds alternating, utilisation against "
        f"{args.peak_gflops:g} GFLOP/s\n"
    )
    print("| model | backbone params (M) | forward GFLOPs per clip |")
    print("|---|---:|---:|")
    for name in MODELS:
        print(
            f"| {name} | {models[name]['backbone_trainable_parameters'] / 1e6:.2f} "
            f"| {models[name]['forward_gflops_per_clip']:.2f} |"
        )
    print(
        "\n| batch | model | step s | clips/s | achieved GFLOP/s | utilisation "
        "| ours / Model Garden |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for row in results:
        ratio = f"{row['ratio_to_model_garden']:.2f}x" if "ratio_to_model_garden" in row else ""
        print(
            f"| {row['batch']} | {row['model']} | {row['step_seconds']:.3f} "
            f"| {row['clips_per_second']:.2f} | {row['achieved_gflops_per_second']:.1f} "
            f"| {100 * row['utilisation']:.0f}% | {ratio} |"
        )

    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                {
                    "machine": info,
                    "config": dict(vars(args), batches=batches),
                    "models": models,
                    "differences": DIFFERENCES,
                    "results": results,
                },
                file,
                indent=2,
            )


if __name__ == "__main__":
    main()
