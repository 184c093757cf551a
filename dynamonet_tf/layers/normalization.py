"""Normalisation: of raw frames for the backbone, and the BatchNorm every block uses."""

from collections.abc import Sequence

import keras
from keras import ops

# PyTorch's BatchNorm defaults, as in the reference implementation: its momentum 0.1 is the
# weight of the new batch, Keras's momentum the weight of the running value.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5


def batch_norm(name: str, synchronized: bool = False) -> keras.layers.BatchNormalization:
    """The BatchNorm of every backbone block and head; ``synchronized`` takes statistics
    over the global batch of all replicas instead of each replica's share."""
    return keras.layers.BatchNormalization(
        momentum=BATCH_NORM_MOMENTUM,
        epsilon=BATCH_NORM_EPSILON,
        synchronized=synchronized,
        name=name,
    )


@keras.saving.register_keras_serializable(package="dynamonet_tf")
class FrameNormalization(keras.layers.Layer):
    """``(frames - mean) / std`` per channel for ``(batch, time, height, width, channels)``.

    Frames must have exactly ``len(mean)`` channels: without this check a single-channel
    clip would broadcast against the three statistics and pass through the model silently.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(
                f"mean and std need one entry per channel; got mean={mean!r}, std={std!r}."
            )
        if min(self.std) <= 0:
            raise ValueError(f"std entries must be positive; got {std!r}.")
        self.input_spec = keras.InputSpec(ndim=5, axes={-1: len(self.mean)})

    def call(self, frames):
        mean = ops.convert_to_tensor(self.mean, self.compute_dtype)
        std = ops.convert_to_tensor(self.std, self.compute_dtype)
        return (ops.cast(frames, self.compute_dtype) - mean) / std

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(mean=list(self.mean), std=list(self.std))
        return config
