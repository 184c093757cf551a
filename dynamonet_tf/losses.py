"""DynamoNet's losses: frame-prediction Huber and the joint objective (paper eq. 2, 3)."""

import keras
from keras import ops

from dynamonet_tf.models.dynamonet import LOGITS, PREDICTED_FRAMES


@keras.saving.register_keras_serializable(package="dynamonet_tf")
class FramePredictionLoss(keras.losses.Loss):
    """Huber loss between predicted and target frames in [0, 1] (paper eq. 2, δ = 0.01).

    Elementwise ``0.5 e^2`` where ``|e| <= δ`` and ``δ (|e| - 0.5 δ)`` elsewhere, averaged over
    every axis but the batch; Keras then averages over the batch (and replicas). Computed
    in float32 whatever the dtype policy.
    """

    def __init__(self, delta=0.01, name="frame_prediction_huber", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction, dtype="float32")
        if not delta > 0:
            raise ValueError(f"Huber delta must be positive; got {delta!r}.")
        self.delta = float(delta)

    def call(self, y_true, y_pred):
        error = ops.abs(ops.cast(y_pred, "float32") - ops.cast(y_true, "float32"))
        quadratic = ops.minimum(error, self.delta)
        elementwise = 0.5 * quadratic * quadratic + self.delta * (error - quadratic)
        return ops.mean(ops.reshape(elementwise, (ops.shape(elementwise)[0], -1)), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(delta=self.delta)
        config.pop("dtype", None)
        return config


def pretrain_loss(delta=0.01):
    """``model.compile`` keyword arguments for a pretrain model: L_FP only."""
    return {"loss": {PREDICTED_FRAMES: FramePredictionLoss(delta)}}


def classification_loss():
    """``model.compile`` keyword arguments for the plain classifier: L_CE only."""
    return {"loss": {LOGITS: keras.losses.SparseCategoricalCrossentropy(from_logits=True)}}


def joint_loss(alpha=0.1, beta=1.0, delta=0.01):
    """``model.compile`` keyword arguments for α·L_FP + β·L_CE (paper eq. 3).

    ``model.compile(optimizer, **joint_loss())`` on a joint model; the targets are
    ``{"logits": labels, "predicted_frames": next_frames}``.
    """
    for label, weight in (("alpha", alpha), ("beta", beta)):
        if not weight >= 0:
            raise ValueError(f"Joint loss weight {label} must be non-negative; got {weight!r}.")
    return {
        "loss": {
            PREDICTED_FRAMES: FramePredictionLoss(delta),
            LOGITS: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        },
        "loss_weights": {PREDICTED_FRAMES: float(alpha), LOGITS: float(beta)},
    }
