"""The optimiser and its learning-rate schedule (paper §4.3; docs/DESIGN.md §3.4)."""

import math

import keras
import tensorflow as tf

from dynamonet_tf.config import learning_rate


@keras.saving.register_keras_serializable(package="dynamonet_tf")
class DynamoNetSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``initial * warmup(step) * cosine(step) * plateau_scale``.

    Linear warmup over ``warmup_steps``; with ``cosine``, a cosine decay over ``total_steps``
    from the initial rate down to ``min_rate`` (PyTorch's ``CosineAnnealingLR`` with
    ``eta_min``; never above the initial rate); ``plateau_scale`` is a variable the trainer
    multiplies by the plateau factor when the validation loss stops improving (the paper's ÷10
    schedule), floored so that the rate stays at or above ``min_rate``. The variable is
    checkpointed with the model.
    """

    def __init__(self, initial, total_steps, warmup_steps=0, cosine=False, min_rate=0.0):
        self.initial = float(initial)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.cosine = bool(cosine)
        self.min_rate = float(min_rate)
        self.plateau_scale = tf.Variable(
            1.0, trainable=False, dtype=tf.float32, name="plateau_scale"
        )

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rate = self.initial * self.plateau_scale
        if self.cosine:
            progress = tf.clip_by_value(step / max(1, self.total_steps), 0.0, 1.0)
            floor = tf.minimum(self.min_rate, rate)
            rate = floor + (rate - floor) * 0.5 * (1.0 + tf.cos(math.pi * progress))
        if self.warmup_steps:
            rate *= tf.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return rate

    def get_config(self):
        return {
            "initial": self.initial,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "cosine": self.cosine,
            "min_rate": self.min_rate,
        }


def make_optimizer(config):
    """The optimiser of ``config`` with its :class:`DynamoNetSchedule`.

    Weight decay is not the optimiser's (Keras decouples it from the gradient); the trainer
    adds ``weight_decay / 2 * |w|^2`` of the weights :func:`decayed_weights` picks to the
    loss, as PyTorch's SGD does, so the decay goes through the momentum like in the paper's
    implementation.
    """
    optimizer_config = config.optimizer
    steps_per_epoch = config.train.steps_per_epoch
    schedule = DynamoNetSchedule(
        learning_rate(config),
        total_steps=config.train.epochs * steps_per_epoch,
        warmup_steps=round(optimizer_config.warmup_epochs * steps_per_epoch),
        cosine=optimizer_config.schedule == "cosine",
        min_rate=optimizer_config.min_learning_rate,
    )
    if optimizer_config.name == "adam":
        optimizer = keras.optimizers.Adam(schedule)
    else:
        optimizer = keras.optimizers.SGD(
            schedule, momentum=optimizer_config.momentum, nesterov=optimizer_config.nesterov
        )
    if config.train.mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer, schedule


def decayed_weights(model, scope):
    """The trainable weights that weight decay pulls towards 0.

    ``"all"``: every trainable weight, as PyTorch's SGD ``weight_decay`` decays every
    parameter it is given (the paper's framework; BatchNorm's gamma and beta and the
    biases included). ``"kernels"``: convolution and dense kernels only, the common
    practice of excluding normalisation and bias parameters.
    """
    if scope == "all":
        return list(model.trainable_weights)
    if scope == "kernels":
        return [w for w in model.trainable_weights if w.path.endswith("kernel")]
    raise ValueError(f"weight decay scope must be 'all' or 'kernels'; got {scope!r}.")
