import keras
import numpy as np
import pytest

from dynamonet_tf import losses
from dynamonet_tf.data.clips import split_clip
from dynamonet_tf.layers import DynamicFilter
from dynamonet_tf.models import build_dynamonet, transfer_weights

TINY = dict(
    backbone="resnet10",
    input_shape=(8, 32, 32, 3),
    head_filters=8,
    ar_units=16,
    dmr_units=12,
    width_multiplier=0.125,
)
FP_LAYERS = {"fp_conv1", "fp_bn1", "fp_conv2", "fp_bn2", "fp_filter_fc"}
ACTION_LAYERS = {"ar_conv1", "ar_bn1", "ar_conv2", "ar_bn2", "ar_fc", "dmr", "logits"}


def layer_names(model):
    return {layer.name for layer in model.layers}


def clips(batch, frames=9, size=32, seed=0):
    return np.random.default_rng(seed).random((batch, frames, size, size, 3)).astype(np.float32)


def test_pretrain_model_predicts_16_frames_from_a_17_frame_clip():
    model = build_dynamonet(
        "pretrain", backbone="resnet10", input_shape=(16, 64, 64, 3), width_multiplier=0.125
    )
    frames, targets = split_clip(clips(2, frames=17, size=64))
    outputs = model(frames)
    assert set(outputs) == {"predicted_frames", "filters"}
    assert outputs["predicted_frames"].shape == targets.shape == (2, 16, 64, 64, 3)
    assert outputs["filters"].shape == (2, 16, 5, 5)
    np.testing.assert_allclose(np.sum(outputs["filters"], axis=(2, 3)), 1.0, rtol=1e-5)
    # Filter t applied to input frame t is predicted frame t + 1.
    np.testing.assert_allclose(
        outputs["predicted_frames"],
        DynamicFilter(5)(frames, outputs["filters"]),
        rtol=1e-6,
        atol=1e-6,
    )
    # Convex combinations of [0, 1] pixels (and zero padding) stay in [0, 1].
    assert (
        0.0
        <= float(np.min(outputs["predicted_frames"]))
        <= float(np.max(outputs["predicted_frames"]))
        <= 1.0
    )


def test_pretrain_model_has_no_classifier_variables():
    model = build_dynamonet("pretrain", **TINY)
    assert not layer_names(model) & ACTION_LAYERS
    assert FP_LAYERS <= layer_names(model)
    assert not any(v.path.startswith(("logits", "ar_", "dmr")) for v in model.weights)


def test_joint_model_outputs_are_named_with_their_shapes():
    model = build_dynamonet("joint", num_classes=7, **TINY)
    outputs = model(clips(3)[:, :8])
    assert {name: tuple(out.shape) for name, out in outputs.items()} == {
        "logits": (3, 7),
        "predicted_frames": (3, 8, 32, 32, 3),
        "filters": (3, 8, 5, 5),
        "dmr": (3, 12),
    }
    # The classifier sees concat(AR, DMR).
    assert model.get_layer("logits").kernel.shape == (16 + 12, 7)
    assert model.get_layer("dmr").kernel.shape == (8 * 5 * 5, 12)


def test_classifier_baseline_has_no_frame_prediction():
    model = build_dynamonet("classifier", num_classes=4, **TINY)
    assert set(model.output) == {"logits"}
    assert not layer_names(model) & (FP_LAYERS | {"dmr", "predicted_frames"})
    assert model.get_layer("logits").kernel.shape == (16, 4)


def test_initial_filters_favour_the_centre_tap():
    model = build_dynamonet("pretrain", initial_centre_weight=0.9, **TINY)
    model.get_layer("fp_filter_fc").kernel.assign(
        np.zeros(model.get_layer("fp_filter_fc").kernel.shape)
    )
    filters = np.asarray(model(clips(1)[:, :8])["filters"])
    np.testing.assert_allclose(filters[..., 2, 2], 0.9, rtol=1e-5)
    np.testing.assert_allclose(filters.sum(axis=(2, 3)) - filters[..., 2, 2], 0.1, rtol=1e-4)


def test_pretrain_weights_move_into_joint_model():
    pretrain = build_dynamonet("pretrain", **TINY)
    joint = build_dynamonet("joint", num_classes=5, **TINY)
    report = transfer_weights(pretrain, joint)
    assert set(report.new) == ACTION_LAYERS
    assert not report.mismatched and not report.unused
    assert FP_LAYERS <= set(report.loaded)
    assert "backbone/conv1" in report.loaded and "backbone/layer4_block0_bn2" in report.loaded
    for name in ("fp_filter_fc", "fp_bn1"):
        for a, b in zip(
            pretrain.get_layer(name).get_weights(), joint.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(
        pretrain.get_layer("backbone").get_weights(), joint.get_layer("backbone").get_weights()
    ):
        np.testing.assert_array_equal(a, b)
    # Same weights, same predictions.
    frames = clips(2)[:, :8]
    np.testing.assert_allclose(
        pretrain(frames)["predicted_frames"],
        joint(frames)["predicted_frames"],
        rtol=1e-5,
        atol=1e-6,
    )


def test_transfer_reports_mismatched_classifier_and_unused_layers():
    kinetics = build_dynamonet("joint", num_classes=5, **TINY)
    baseline = build_dynamonet("classifier", num_classes=3, **TINY)
    before = baseline.get_layer("logits").get_weights()
    report = transfer_weights(kinetics, baseline)
    assert report.mismatched == ["logits"]
    assert set(report.unused) == FP_LAYERS | {"dmr"}
    assert report.new == []
    for a, b in zip(before, baseline.get_layer("logits").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert "mismatched: logits" in str(report)


def test_joint_loss_trains_and_is_the_weighted_sum():
    model = build_dynamonet("joint", num_classes=3, **TINY)
    model.compile(keras.optimizers.SGD(0.01), **losses.joint_loss(alpha=0.25, beta=2.0))
    frames, targets = split_clip(clips(4))
    labels = np.array([0, 1, 2, 1])
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(frames, {"logits": labels, "predicted_frames": targets}, epochs=1, verbose=0)
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, model.trainable_weights))
    result = model.evaluate(
        frames, {"logits": labels, "predicted_frames": targets}, verbose=0, return_dict=True
    )
    np.testing.assert_allclose(
        result["loss"],
        0.25 * result["predicted_frames_loss"] + 2.0 * result["logits_loss"],
        rtol=1e-5,
    )
    outputs = model(frames, training=False)
    expected_fp = losses.FramePredictionLoss()(targets, outputs["predicted_frames"])
    np.testing.assert_allclose(result["predicted_frames_loss"], expected_fp, rtol=1e-5)


@pytest.mark.parametrize("kind", ["pretrain", "joint", "classifier"])
def test_keras_file_round_trip(kind, tmp_path):
    options = dict(TINY, backbone="stc_resnet10", width_multiplier=0.25)
    model = build_dynamonet(kind, num_classes=None if kind == "pretrain" else 4, **options)
    path = tmp_path / f"{kind}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    frames = clips(2)[:, :8]
    expected, actual = model(frames), restored(frames)
    assert set(expected) == set(actual)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_filters_and_predictions_float32(policy):
    keras.mixed_precision.set_global_policy(policy)
    model = build_dynamonet("joint", num_classes=3, **TINY)
    for name in ("predicted_frames", "filters", "logits"):
        assert model.output[name].dtype == "float32", name
    assert model.get_layer("backbone").get_layer("conv1").compute_dtype == policy.split("_")[1]
    assert model.get_layer("dmr").compute_dtype == policy.split("_")[1]
    if policy == "mixed_bfloat16":
        # TensorFlow's CPU kernels cover bfloat16 but not float16 3D pooling: mixed_float16
        # is for GPUs, where the same graph runs.
        outputs = model(clips(1)[:, :8])
        assert {name: out.dtype for name, out in outputs.items()} == {
            "predicted_frames": "float32",
            "filters": "float32",
            "logits": "float32",
            "dmr": "bfloat16",
        }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(kind="finetune"),
            "Unknown DynamoNet kind 'finetune'; valid kinds: pretrain, joint, classifier",
        ),
        (dict(kind="joint"), "needs num_classes"),
        (dict(kind="classifier", num_classes=1), "needs num_classes"),
        (dict(kind="pretrain", num_classes=5), "has no classifier"),
        (
            dict(kind="pretrain", input_shape=(8, 32, 32, 1)),
            "has 1 channels but the normalisation statistics have 3",
        ),
        (dict(kind="pretrain", input_shape=(32, 32, 3)), r"\(time, height, width, channels\)"),
        (
            dict(kind="pretrain", backbone="resnet11"),
            "Unknown backbone 'resnet11'; valid backbones: resnet10",
        ),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    options = dict(TINY)
    options.update(kwargs)
    with pytest.raises(ValueError, match=message):
        build_dynamonet(options.pop("kind"), **options)


def test_grayscale_frames_are_refused_not_broadcast():
    model = build_dynamonet("pretrain", **TINY)
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        model(np.zeros((1, 8, 32, 32, 1), np.float32))


def pixel_filters(model, frames):
    """The per-pixel filters a ``per_pixel_filters`` model applies, ``(b, t, h, w, k, k)``."""
    return np.asarray(keras.Model(model.input, model.get_layer("fp_pixel_filters").output)(frames))


def test_per_pixel_filters_are_interpolated_from_a_grid_and_applied_per_pixel():
    model = build_dynamonet("joint", num_classes=3, per_pixel_filters=True, filter_grid=4, **TINY)
    frames = clips(2)[:, :8]
    outputs = model(frames)
    assert model.get_layer("fp_filter_fc").kernel.shape == (8, 8 * 4 * 4 * 25)
    field = pixel_filters(model, frames)
    assert field.shape == (2, 8, 32, 32, 5, 5)
    np.testing.assert_allclose(field.sum(axis=(-2, -1)), 1.0, rtol=1e-5)
    assert np.ptp(field[:, :, :, :, 2, 2], axis=(2, 3)).min() > 0  # filters vary over the frame
    np.testing.assert_allclose(
        outputs["predicted_frames"],
        DynamicFilter(5, per_pixel=True)(frames, field),
        rtol=1e-6,
        atol=1e-6,
    )
    # The filters output (and the DMR's input) is each frame's mean filter over the grid.
    assert outputs["filters"].shape == (2, 8, 5, 5) and model.get_layer("dmr").kernel.shape == (
        8 * 5 * 5,
        12,
    )
    np.testing.assert_allclose(np.sum(outputs["filters"], axis=(2, 3)), 1.0, rtol=1e-5)


def test_per_pixel_filters_on_a_one_cell_grid_are_the_global_filters():
    model = build_dynamonet("pretrain", per_pixel_filters=True, filter_grid=1, **TINY)
    frames = clips(1)[:, :8]
    outputs = model(frames)
    np.testing.assert_allclose(
        outputs["predicted_frames"],
        DynamicFilter(5)(frames, outputs["filters"]),
        rtol=1e-5,
        atol=1e-6,
    )


def test_per_pixel_model_round_trips_through_a_keras_file(tmp_path):
    model = build_dynamonet("pretrain", per_pixel_filters=True, filter_grid=2, **TINY)
    model.save(tmp_path / "per_pixel.keras")
    restored = keras.saving.load_model(tmp_path / "per_pixel.keras")
    frames = clips(1)[:, :8]
    for name, expected in model(frames).items():
        np.testing.assert_allclose(restored(frames)[name], expected, rtol=1e-5, atol=1e-6)


def test_the_config_keys_reach_the_model():
    from dynamonet_tf.config import load_config
    from dynamonet_tf.runs import build_model

    config = load_config(
        overrides=[
            "model.backbone=resnet10",
            "model.width_multiplier=0.125",
            "model.head_filters=8",
            "data.num_frames=8",
            "data.crop_size=32",
            "data.short_side=32",
            "model.per_pixel_filters=true",
            "model.filter_grid=2",
        ]
    )
    model = build_model(config)
    assert model.get_layer("fp_pixel_filters").output.shape == (None, 8, 32, 32, 5, 5)
    assert model.get_layer("fp_filter_fc").kernel.shape == (8, 8 * 2 * 2 * 25)
    assert model.get_layer("predicted_frames").per_pixel
