import keras
import numpy as np
import pytest
import tensorflow as tf

from dynamonet_tf import losses


def numpy_huber(targets, predictions, delta):
    error = np.abs(predictions.astype(np.float64) - targets)
    elementwise = np.where(error <= delta, 0.5 * error**2, delta * error - 0.5 * delta**2)
    return elementwise.reshape(len(error), -1).mean(axis=1)


def test_frame_prediction_loss_is_huber_with_delta_001():
    rng = np.random.default_rng(0)
    targets = rng.random((3, 2, 4, 5, 3)).astype(np.float32)
    # Errors on both sides of delta = 0.01.
    predictions = (targets + rng.normal(scale=0.02, size=targets.shape)).astype(np.float32)
    loss = losses.FramePredictionLoss(fp_reduction="pixel_mean")  # frame_sum: test_joint_objective
    per_clip = numpy_huber(targets, predictions, 0.01)
    assert 0.1 < np.mean(np.abs(predictions - targets) <= 0.01) < 0.9
    np.testing.assert_allclose(loss(targets, predictions), per_clip.mean(), rtol=1e-5)
    weights = np.array([1.0, 0.0, 2.0], np.float32)
    np.testing.assert_allclose(
        loss(targets, predictions, sample_weight=weights), (per_clip * weights).sum() / 3, rtol=1e-5
    )


def test_frame_prediction_loss_computes_in_float32():
    targets = np.full((1, 1, 2, 2, 3), 0.5, np.float32)
    predictions = tf.cast(targets + 0.004, tf.float16)
    value = losses.FramePredictionLoss(fp_reduction="pixel_mean")(targets, predictions)
    assert value.dtype == tf.float32
    np.testing.assert_allclose(value, 0.5 * (float(np.float16(0.504)) - 0.5) ** 2, rtol=1e-4)


def test_frame_prediction_loss_config_round_trip():
    loss = losses.FramePredictionLoss(delta=0.05, fp_reduction="pixel_mean")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, losses.FramePredictionLoss) and restored.delta == 0.05
    assert restored.fp_reduction == "pixel_mean"


def test_joint_loss_weights():
    config = losses.joint_loss()
    assert config["loss_weights"] == {"predicted_frames": 0.1, "logits": 1.0}
    assert config["loss"]["predicted_frames"].delta == 0.01


@pytest.mark.parametrize(
    "kwargs, message", [(dict(alpha=-1), "alpha"), (dict(beta=float("nan")), "beta")]
)
def test_bad_joint_weights_are_named(kwargs, message):
    with pytest.raises(ValueError, match=f"Joint loss weight {message}"):
        losses.joint_loss(**kwargs)


def test_bad_delta_is_named():
    with pytest.raises(ValueError, match="Huber delta must be positive"):
        losses.FramePredictionLoss(delta=0)
