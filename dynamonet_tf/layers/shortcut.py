"""The parameter-free residual shortcut ("type A") of 3D ResNets."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dynamonet_tf")
class ZeroPadShortcut(keras.layers.Layer):
    """Subsamples ``(batch, time, height, width, channels)`` and zero-pads the channels.

    Hara et al.'s shortcut A: a stride-``s`` subsampling (their ``avg_pool3d`` with kernel 1)
    keeps positions ``0, s, 2s, ...`` on each axis, then zeros are appended as new channels
    up to ``channels``. Unlike their implementation the gradient flows through the kept
    channels (theirs detaches them with ``.data``), as the residual design intends.
    """

    def __init__(self, channels: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.strides = int(strides)

    def call(self, inputs):
        s = self.strides
        subsampled = inputs[:, ::s, ::s, ::s, :]
        missing = self.channels - inputs.shape[-1]
        if missing < 0:
            raise ValueError(
                f"ZeroPadShortcut cannot reduce {inputs.shape[-1]} channels to {self.channels}."
            )
        return ops.pad(subsampled, [[0, 0], [0, 0], [0, 0], [0, 0], [0, missing]])

    def compute_output_shape(self, input_shape):
        def reduced(size):
            return None if size is None else -(-size // self.strides)

        batch, time, height, width, _ = input_shape
        return (batch, reduced(time), reduced(height), reduced(width), self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, strides=self.strides)
        return config
