"""DynamoNet's losses: frame-prediction Huber and the joint objective (paper eq. 2, 3).

:func:`objective_weights` is the one statement of the objective, α·L_FP + β·L_CE for a joint
model, L_FP alone when pretraining, β·L_CE for the plain classifier; the trainer
(:func:`per_example_objective`) and ``model.compile`` (:func:`compile_arguments`) both use it.

How the elementwise Huber of one clip becomes one number (``loss.fp_reduction``):

- ``frame_sum``: summed over each predicted frame's pixels and channels (the frame norms
  ||x̂_{t+1} - x_{t+1}|| of eq. 2), averaged over the T predicted frames. The paper's.
- ``pixel_mean``: averaged over every pixel, channel and frame. At 112 x 112 x 3 this is the
  frame sum / 37632, which makes alpha * L_FP ~1e-5 of the joint objective: the
  frame-prediction term then no longer shapes the model (README, decisions).
"""

import keras
from keras import ops

from dynamonet_tf.config import LossConfig
from dynamonet_tf.names import FP_REDUCTIONS, LOGITS, PREDICTED_FRAMES

# The per-example terms as the trainer logs them: raw, and as weighted in the objective.
TERM_NAMES = {PREDICTED_FRAMES: "frame_prediction_loss", LOGITS: "classification_loss"}


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
        delta=LossConfig.huber_delta,
        fp_reduction=LossConfig.fp_reduction,
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


def objective_terms(loss_config, kind, reduction="sum_over_batch_size"):
    """``{output: loss}`` of the terms a ``kind`` of model is trained on: L_FP on
    ``predicted_frames`` (not for a classifier) and L_CE on ``logits`` (not for pretrain)."""
    weights = objective_weights(loss_config, kind)
    terms = {}
    if PREDICTED_FRAMES in weights:
        terms[PREDICTED_FRAMES] = frame_prediction_loss(loss_config, reduction=reduction)
    if LOGITS in weights:
        terms[LOGITS] = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction=reduction
        )
    return terms


def objective_weights(loss_config, kind):
    """``{output: weight}`` of the objective (paper eq. 3): ``{predicted_frames: α, logits:
    β}`` for a joint model, ``{predicted_frames: 1}`` for pretraining (frame prediction
    alone, so α would only rescale the learning rate), ``{logits: β}`` for the classifier."""
    if kind == "pretrain":
        return {PREDICTED_FRAMES: 1.0}
    if kind == "classifier":
        return {LOGITS: loss_config.beta}
    if kind == "joint":
        return {PREDICTED_FRAMES: loss_config.alpha, LOGITS: loss_config.beta}
    raise ValueError(f"Unknown model kind {kind!r}; valid: pretrain, joint, classifier.")


def per_example_objective(loss_config, kind, outputs, targets):
    """The objective per example, and its terms, for a custom training loop.

    Args:
        outputs, targets: dicts keyed by output name (``targets[logits]`` int labels
            ``(batch,)``, ``targets[predicted_frames]`` ``(batch, time, h, w, 3)``).

    Returns:
        ``(total, parts)``: ``total`` float32 ``(batch,)``; ``parts`` maps
        ``frame_prediction_loss`` / ``classification_loss`` to each term ``(batch,)`` and,
        for the classifying kinds, ``weighted_<term>`` to the term times its weight.
    """
    weights = objective_weights(loss_config, kind)
    parts, total = {}, None
    for output, loss in objective_terms(loss_config, kind, reduction=None).items():
        value = loss(targets[output], ops.cast(outputs[output], "float32"))
        parts[TERM_NAMES[output]] = value
        if kind != "pretrain":
            # Logged apart, so that the balance between the two terms can be seen.
            value = weights[output] * value
            parts[f"weighted_{TERM_NAMES[output]}"] = value
        total = value if total is None else total + value
    return total, parts


def compile_arguments(loss_config, kind):
    """``model.compile`` keyword arguments (``loss``, ``loss_weights``) for the objective of
    a ``kind`` of model under ``loss_config``."""
    return {
        "loss": objective_terms(loss_config, kind),
        "loss_weights": {
            output: float(weight) for output, weight in objective_weights(loss_config, kind).items()
        },
    }


def pretrain_loss(**loss_options):
    """``model.compile`` keyword arguments for a pretrain model: L_FP only. ``loss_options``:
    fields of :class:`~dynamonet_tf.config.LossConfig` (``huber_delta``, ``fp_reduction``)."""
    return compile_arguments(LossConfig(**loss_options), "pretrain")


def classification_loss(**loss_options):
    """``model.compile`` keyword arguments for the plain classifier: β·L_CE."""
    return compile_arguments(LossConfig(**loss_options), "classifier")


def joint_loss(alpha=None, beta=None, **loss_options):
    """``model.compile`` keyword arguments for α·L_FP + β·L_CE (paper eq. 3).

    ``model.compile(optimizer, **joint_loss())`` on a joint model; the targets are
    ``{"logits": labels, "predicted_frames": next_frames}``. Unset options take the
    defaults of :class:`~dynamonet_tf.config.LossConfig`.
    """
    for label, weight in (("alpha", alpha), ("beta", beta)):
        if weight is not None and not weight >= 0:
            raise ValueError(f"Joint loss weight {label} must be non-negative; got {weight!r}.")
        if weight is not None:
            loss_options[label] = weight
    return compile_arguments(LossConfig(**loss_options), "joint")
