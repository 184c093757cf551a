import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from dynamonet_tf.layers import GroupedConv3D, grouped_conv3d
from dynamonet_tf.models import build_backbone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # PYTHONPATH of the snippets
GROUPS = 4
CHANNELS = 8


def _layers(implementation, filters=8, **options):
    """A keras Conv3D(groups) and a GroupedConv3D sharing one kernel, both built."""
    options = dict(kernel_size=3, groups=GROUPS, use_bias=False, **options)
    plain = keras.layers.Conv3D(filters, **options)
    ours = GroupedConv3D(filters, implementation=implementation, **options)
    plain.build((None, 5, 7, 6, CHANNELS))
    ours.build((None, 5, 7, 6, CHANNELS))
    kernel = np.random.default_rng(0).normal(size=plain.kernel.shape).astype(np.float32)
    plain.kernel.assign(kernel)
    ours.kernel.assign(kernel)
    return plain, ours


def _output_and_gradients(layer, inputs):
    inputs = tf.convert_to_tensor(inputs)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = layer(inputs)
        # A non-linear loss, so that the gradient reaching the convolution varies per position.
        loss = tf.reduce_sum(tf.sin(outputs) * outputs)
    input_gradient, kernel_gradient = tape.gradient(loss, [inputs, layer.kernel])
    return outputs.numpy(), input_gradient.numpy(), kernel_gradient.numpy()


CASES = [
    # How resnet3d uses it: stride 1 "same"; stride 2 "valid" after explicit symmetric padding.
    dict(strides=1, padding="same"),
    dict(strides=2, padding="valid"),
    # And the rest of Conv3D's options, for a general layer.
    dict(strides=2, padding="same"),
    dict(strides=(1, 2, 2), padding="same"),
    dict(strides=1, padding="valid"),
    dict(strides=1, padding="same", dilation_rate=2),
]


@pytest.mark.parametrize("implementation", ["split", "conv2d", "auto", "native"])
@pytest.mark.parametrize(
    "case", CASES, ids=lambda case: "-".join(f"{k}={v}" for k, v in case.items())
)
def test_equals_keras_grouped_conv3d_forward_and_gradients(implementation, case):
    plain, ours = _layers(implementation, **case)
    inputs = np.random.default_rng(1).normal(size=(2, 5, 7, 6, CHANNELS)).astype(np.float32)
    expected = _output_and_gradients(plain, inputs)
    actual = _output_and_gradients(ours, inputs)
    for name, want, got in zip(("output", "input gradient", "kernel gradient"), expected, actual):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(
            got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=name
        )


def test_auto_choice_follows_device_and_onednn(monkeypatch):
    monkeypatch.setattr(grouped_conv3d, "onednn_enabled", lambda: True)
    layer = GroupedConv3D(64, 3, groups=32, padding="same", implementation="auto")
    layer.build((None, 2, 7, 7, 64))
    layer._gpu = False
    assert layer.resolved_implementation((None, 2, 7, 7, 64)) == "conv2d"
    assert layer.resolved_implementation((None, 8, None, None, 64)) == "conv2d"
    assert layer.resolved_implementation((None, None, 7, 7, 64)) == "split"  # frames unknown
    # Without oneDNN TensorFlow has no CPU gradient for grouped 2D convolutions.
    monkeypatch.setattr(grouped_conv3d, "onednn_enabled", lambda: False)
    assert layer.resolved_implementation((None, 2, 7, 7, 64)) == "split"
    # On a GPU cuDNN runs grouped convolutions natively.
    layer._gpu = True
    assert layer.resolved_implementation((None, 2, 7, 7, 64)) == "native"
    ungrouped = GroupedConv3D(64, 3, groups=1, implementation="split")
    assert ungrouped.resolved_implementation((None, 2, 7, 7, 64)) == "native"


def test_unknown_implementation_is_named():
    with pytest.raises(
        ValueError, match="implementation must be one of auto, native, split, conv2d"
    ):
        GroupedConv3D(8, 3, groups=2, implementation="fast")
    with pytest.raises(ValueError, match="grouped_conv_implementation must be one of"):
        build_backbone("resnext50", width_multiplier=0.25, grouped_conv_implementation="fast")


def test_get_config_round_trip():
    layer = GroupedConv3D(
        16, (3, 3, 3), strides=(1, 2, 2), groups=4, use_bias=False, implementation="conv2d"
    )
    config = layer.get_config()
    assert config["implementation"] == "conv2d" and config["groups"] == 4
    clone = GroupedConv3D.from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(revived, GroupedConv3D) and revived.get_config() == config


def test_saved_keras_model_reloads(tmp_path):
    inputs = keras.Input((3, 6, 6, 8))
    model = keras.Model(
        inputs, GroupedConv3D(8, 3, groups=4, padding="same", implementation="split")(inputs)
    )
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert isinstance(reloaded.layers[-1], GroupedConv3D)
    clips = np.random.default_rng(2).normal(size=(1, 3, 6, 6, 8)).astype(np.float32)
    np.testing.assert_allclose(reloaded(clips), model(clips), rtol=1e-5, atol=1e-5)


TINY_RESNEXT = dict(input_shape=(8, 32, 32, 3), width_multiplier=0.25, cardinality=8)


def test_resnext_uses_grouped_conv3d_with_plain_conv3d_kernels():
    ours = build_backbone("resnext50", **TINY_RESNEXT)
    plain = build_backbone("resnext50", grouped_conv_implementation="native", **TINY_RESNEXT)
    grouped = [layer for layer in ours.layers if isinstance(layer, GroupedConv3D)]
    assert len(grouped) == 16  # one per bottleneck: 3 + 4 + 6 + 3
    assert {layer.implementation for layer in grouped} == {"auto"}
    assert [(w.path, w.shape) for w in ours.weights] == [(w.path, w.shape) for w in plain.weights]


def _plain_conv3d_resnext():
    """ResNeXt with keras.layers.Conv3D grouped layers, as built before GroupedConv3D."""
    from dynamonet_tf.models import resnet3d

    def plain(*args, implementation=None, **kwargs):
        return keras.layers.Conv3D(*args, **kwargs)

    resnet3d.GroupedConv3D, saved = plain, resnet3d.GroupedConv3D
    try:
        model = build_backbone("resnext50", **TINY_RESNEXT)
    finally:
        resnet3d.GroupedConv3D = saved
    assert not [layer for layer in model.layers if isinstance(layer, GroupedConv3D)]
    assert model.get_layer("layer1_block0_conv2").groups == 8
    return model


@pytest.mark.slow
def test_weights_and_checkpoints_of_plain_conv3d_models_load(tmp_path):
    plain = _plain_conv3d_resnext()
    clips = (
        np.random.default_rng(3).normal(size=(2,) + TINY_RESNEXT["input_shape"]).astype(np.float32)
    )
    expected = plain(clips, training=False).numpy()
    plain.save_weights(tmp_path / "plain.weights.h5")
    tf.train.Checkpoint(model=plain).write(str(tmp_path / "ckpt"))

    keras.utils.set_random_seed(7)  # different initial weights
    from_h5 = build_backbone("resnext50", **TINY_RESNEXT)
    assert not np.allclose(from_h5(clips, training=False), expected, atol=1e-3)
    from_h5.load_weights(tmp_path / "plain.weights.h5")
    np.testing.assert_allclose(from_h5(clips, training=False), expected, rtol=1e-4, atol=1e-4)

    from_checkpoint = build_backbone("resnext50", **TINY_RESNEXT)
    tf.train.Checkpoint(model=from_checkpoint).read(str(tmp_path / "ckpt")).assert_consumed()
    np.testing.assert_allclose(
        from_checkpoint(clips, training=False), expected, rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("implementation", ["split", "conv2d"])
def test_dynamic_batch_under_tf_function(implementation):
    plain, ours = _layers(implementation, padding="same")
    step = tf.function(ours, input_signature=[tf.TensorSpec((None, 5, 7, 6, CHANNELS))])
    for batch in (1, 3):
        inputs = (
            np.random.default_rng(batch).normal(size=(batch, 5, 7, 6, CHANNELS)).astype(np.float32)
        )
        np.testing.assert_allclose(step(inputs), plain(inputs), rtol=1e-4, atol=1e-4)


def test_spatially_unknown_inputs_under_tf_function():
    plain, ours = _layers("conv2d", padding="same")
    step = tf.function(ours, input_signature=[tf.TensorSpec((None, 5, None, None, CHANNELS))])
    inputs = np.random.default_rng(4).normal(size=(2, 5, 7, 6, CHANNELS)).astype(np.float32)
    np.testing.assert_allclose(step(inputs), plain(inputs), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("implementation", ["split", "conv2d"])
def test_mixed_bfloat16(implementation):
    plain, _ = _layers("native", padding="same")
    ours = GroupedConv3D(
        8,
        3,
        groups=GROUPS,
        padding="same",
        use_bias=False,
        implementation=implementation,
        dtype="mixed_bfloat16",
    )
    ours.build((None, 5, 7, 6, CHANNELS))
    ours.kernel.assign(plain.kernel)
    assert ours.kernel.dtype == "float32"
    inputs = np.random.default_rng(5).normal(size=(2, 5, 7, 6, CHANNELS)).astype(np.float32)
    outputs, _, kernel_gradient = _output_and_gradients(ours, inputs)
    assert ours(inputs).dtype == "bfloat16"
    expected, _, expected_gradient = _output_and_gradients(plain, inputs)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(outputs.astype(np.float32), expected, atol=0.05 * scale)
    assert kernel_gradient.dtype == np.float32 and np.isfinite(kernel_gradient).all()


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from dynamonet_tf.layers import GroupedConv3D

    def train(strategy, implementation):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            inputs = keras.Input((4, 6, 6, 8))
            x = GroupedConv3D(8, 3, groups=4, padding="same", implementation=implementation)(inputs)
            x = GroupedConv3D(8, 3, strides=2, groups=4, implementation=implementation)(x)
            model = keras.Model(inputs, keras.layers.GlobalAveragePooling3D()(x))
            optimizer = keras.optimizers.SGD(0.1)
            optimizer.build(model.trainable_variables)
        clips = np.random.default_rng(1).normal(size=(4, 4, 6, 6, 8)).astype(np.float32)
        dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices(clips).batch(4))

        @tf.function
        def step(batch):
            def replica(batch):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(model(batch) ** 2) / 4
                gradients = tape.gradient(loss, model.trainable_variables)
                optimizer.apply(gradients, model.trainable_variables)
            strategy.run(replica, args=(batch,))

        for batch in dataset:
            step(batch)
        return [w.numpy() for w in model.weights]

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    reference = train(tf.distribute.OneDeviceStrategy("/cpu:0"), "native")
    for implementation in ("split", "conv2d"):
        for got, want in zip(train(mirrored, implementation), reference):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    print("ok")
    """
)


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device_native():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


ONEDNN_OFF_SCRIPT = textwrap.dedent(
    """
    import keras
    import numpy as np
    import tensorflow as tf
    from dynamonet_tf.layers import GroupedConv3D

    layer = GroupedConv3D(8, 3, groups=4, padding="same", use_bias=False)
    plain = keras.layers.Conv3D(8, 3, groups=4, padding="same", use_bias=False)
    inputs = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 5, 5, 8)), tf.float32)
    layer.build(inputs.shape)
    plain.build(inputs.shape)
    plain.kernel.assign(layer.kernel)
    assert layer.resolved_implementation(tuple(inputs.shape)) == "split"
    gradients = []
    for conv in (layer, plain):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(conv(inputs) ** 2)
        gradients.append(tape.gradient(loss, conv.kernel).numpy())
    np.testing.assert_allclose(gradients[0], gradients[1], rtol=1e-4, atol=1e-3)
    print("ok")
    """
)


@pytest.mark.slow
def test_auto_without_onednn_splits_and_trains():
    result = subprocess.run(
        [sys.executable, "-c", ONEDNN_OFF_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "PYTHONPATH": ROOT,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_ENABLE_ONEDNN_OPTS": "0",
        },
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
