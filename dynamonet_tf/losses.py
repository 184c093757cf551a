"""DynamoNet's losses: frame-prediction Huber and the joint objective (paper eq. 2, 3)."""

import keras
from keras import ops

from dynamonet_tf.models.dynamonet import LOGITS, PREDICTED_FRAMES

# How the elementwise Huber of one clip becomes one number (``loss.fp_reduction``):
# frame_sum: summed over each predicted frame's pixels and channels (the frame norms
#     ||x̂_{t+1} - x_{t+1}|| of eq. 2), averaged over the T predicted frames. The paper's.
# pixel_mean: averaged over every pixel, channel and frame. At 112 x 112 x 3 this is the
#     frame sum / 37632, which makes alpha * L_FP ~1e-5 of the joint objective: the
#     frame-prediction term then no longer shapes the model (see README, decisions).
FP_REDUCTIONS = ("frame_sum", "pixel_mean")


@keras.saving.register_keras_serializable(package="dynamonet_tf")
class FramePredictionLoss(keras.losses.Loss):
    """Huber loss between predicted and target frames in [0, 1] (paper eq. 2, δ = 0.01).

    Elementwise ``0.5 e^2`` where ``|e| <= δ`` and ``δ (|e| - 0.5 δ)`` elsewhere. Per clip,
    with ``fp_reduction="frame_sum"`` (the paper's), summed over each frame's
    ``(height, width, channels)`` and averaged over the frames; with ``"pixel_mean"``,
    averaged over every axis but the batch. Keras then averages over the batch (and
    replicas). Targets and predictions are ``(batch, time, height, width, channels)``.
    Computed in float32 whatever the dtype policy.
    """

    def __init__(
        self,
        delta=0.01,
        fp_reduction="frame_sum",
        name="frame_prediction_huber",
        reduction="sum_over_batch_size",
    ):
        super().__init__(name=name, reduction=reduction, dtype="float32")
        if not delta > 0:
            raise ValueError(f"Huber delta must be positive; got {delta!r}.")
        if fp_reduction not in FP_REDUCTIONS:
            raise ValueError(
                f"fp_reduction must be one of {', '.join(FP_REDUCTIONS)}; got {fp_reduction!r}."
            )
        self.delta = float(delta)
        self.fp_reduction = fp_reduction

    def call(self, y_true, y_pred):
        error = ops.abs(ops.cast(y_pred, "float32") - ops.cast(y_true, "float32"))
        quadratic = ops.minimum(error, self.delta)
        elementwise = 0.5 * quadratic * quadratic + self.delta * (error - quadratic)
        shape = ops.shape(elementwise)
        per_frame = ops.reshape(elementwise, (shape[0], shape[1], -1))
        if self.fp_reduction == "frame_sum":
            return ops.mean(ops.sum(per_frame, axis=-1), axis=-1)
        return ops.mean(ops.reshape(per_frame, (shape[0], -1)), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(delta=self.delta, fp_reduction=self.fp_reduction)
        config.pop("dtype", None)
        return config


def frame_prediction_loss(loss_config, reduction="sum_over_batch_size"):
    """The :class:`FramePredictionLoss` of a config's ``loss`` section: the one L_FP that
    training, validation, reports and experiments compute. ``reduction=None`` gives the
    per-clip values."""
    return FramePredictionLoss(
        loss_config.huber_delta, fp_reduction=loss_config.fp_reduction, reduction=reduction
    )


def pretrain_loss(delta=0.01, fp_reduction="frame_sum"):
    """``model.compile`` keyword arguments for a pretrain model: L_FP only."""
    return {"loss": {PREDICTED_FRAMES: FramePredictionLoss(delta, fp_reduction)}}


def classification_loss():
    """``model.compile`` keyword arguments for the plain classifier: L_CE only."""
    return {"loss": {LOGITS: keras.losses.SparseCategoricalCrossentropy(from_logits=True)}}


def joint_loss(alpha=0.1, beta=1.0, delta=0.01, fp_reduction="frame_sum"):
    """``model.compile`` keyword arguments for α·L_FP + β·L_CE (paper eq. 3).

    ``model.compile(optimizer, **joint_loss())`` on a joint model; the targets are
    ``{"logits": labels, "predicted_frames": next_frames}``.
    """
    for label, weight in (("alpha", alpha), ("beta", beta)):
        if not weight >= 0:
            raise ValueError(f"Joint loss weight {label} must be non-negative; got {weight!r}.")
    return {
        "loss": {
            PREDICTED_FRAMES: FramePredictionLoss(delta, fp_reduction),
            LOGITS: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        },
        "loss_weights": {PREDICTED_FRAMES: float(alpha), LOGITS: float(beta)},
    }
