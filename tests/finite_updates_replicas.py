"""One mixed-float16 step of a tiny Dense model mirrored over 2 logical CPUs, per case (a
script: logical devices must be configured before TensorFlow starts).

    python tests/finite_updates_replicas.py

Cases: the update by ``optimizer.apply`` ("naive") or by ``finite_updates.apply_gradients``
("combined"), with a ``LossScaleOptimizer(SGD)`` or a plain ``SGD`` ("plain"), on a global
batch whose second replica's rows overflow float16 ("overflow") or not ("finite"). Prints
one JSON line: per case the weights after the step (as strings: "inf" and "nan" survive),
the loss scale and the optimizer's iterations. dynamonet_tf comes from the installed package
(pip install -e .) or, under pytest, from the PYTHONPATH tests/conftest.py sets.
"""

import json

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from dynamonet_tf.training.finite_updates import apply_gradients  # noqa: E402

keras.mixed_precision.set_global_policy("mixed_float16")
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2

# Global batch of 4: replica 0 gets rows 0-1, replica 1 rows 2-3. 6e4 + 6e4 overflows
# float16 (max 65504) in the Dense output: only replica 1's loss and gradients are inf.
BATCHES = {
    "overflow": np.array([[0.01, 0.02], [0.03, 0.04], [6e4, 6e4], [6e4, 6e4]], np.float32),
    "finite": np.array([[0.01, 0.02], [0.03, 0.04], [0.05, 0.06], [0.07, 0.08]], np.float32),
}


def run(update, optimizer_kind, batch):
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones")]
        )
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        if optimizer_kind == "loss_scaled":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(BATCHES[batch]).batch(4)
    )

    def replica_step(inputs):
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(
                tf.cast(model(inputs), tf.float32)[:, 0] ** 2, global_batch_size=4
            )
            scaled = optimizer.scale_loss(loss) if optimizer_kind == "loss_scaled" else loss
        gradients = tape.gradient(scaled, model.trainable_variables)
        if update == "naive":
            optimizer.apply(gradients, model.trainable_variables)
        else:
            apply_gradients(optimizer, gradients, model.trainable_variables)

    @tf.function
    def step(inputs):
        strategy.run(replica_step, args=(inputs,))

    step(next(iter(dataset)))
    return {
        "weights": [str(value) for w in model.trainable_variables for value in w.numpy().ravel()],
        "scale": (
            float(optimizer.dynamic_scale.numpy()) if optimizer_kind == "loss_scaled" else None
        ),
        "iterations": int(optimizer.iterations.numpy()),
    }


results = {
    f"{update}/{kind}/{batch}": run(update, kind, batch)
    for update in ("naive", "combined")
    for kind in ("loss_scaled", "plain")
    for batch in ("overflow", "finite")
}
print(json.dumps(results))
