"""The spatio-temporal channel correlation (STC) block of STC-ResNet/ResNeXt.

STC (Diba et al., ECCV 2018) rescales the channels of a 3D feature map with gates computed
from two global summaries of it. No public code of the original exists; this is our reading
of the paper (docs/DESIGN.md §3.2 records it):

- channel branch: average over time, height and width -> ``C``; FC ``C -> C/r``, ReLU;
  FC ``C/r -> C``; sigmoid.
- temporal-channel branch: average over height and width -> ``T x C``, flattened;
  FC ``T*C -> T*C/r``, ReLU; FC ``T*C/r -> C``; sigmoid.
- output: the input scaled per channel by the mean of the two gates.
"""

import keras
from keras import ops


def stc_parameter_count(time: int, channels: int, reduction: int = 16) -> int:
    """Trainable parameters of one STC block (all four FC layers have biases)."""
    channel_hidden = max(1, channels // reduction)
    temporal_hidden = max(1, time * channels // reduction)
    channel_branch = (
        channels * channel_hidden + channel_hidden + channel_hidden * channels + channels
    )
    temporal_branch = (
        time * channels * temporal_hidden + temporal_hidden + temporal_hidden * channels + channels
    )
    return channel_branch + temporal_branch


@keras.saving.register_keras_serializable(package="dynamonet_tf")
class SpatioTemporalChannelCorrelation(keras.layers.Layer):
    """Gates the channels of ``(batch, time, height, width, channels)`` features.

    Time and channels must be known when the layer is built (the temporal branch's first
    FC layer has ``time * channels`` inputs). Hidden widths are ``max(1, n // reduction)``.
    """

    def __init__(self, reduction: int = 16, **kwargs):
        super().__init__(**kwargs)
        if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"STC reduction must be a positive integer; got {reduction!r}.")
        self.reduction = reduction

    def build(self, input_shape):
        if len(input_shape) != 5:
            raise ValueError(
                "STC expects features of shape (batch, time, height, width, channels); "
                f"got {tuple(input_shape)}."
            )
        time, channels = input_shape[1], input_shape[-1]
        if time is None or channels is None:
            raise ValueError(
                f"STC needs a known number of frames and channels; got shape {tuple(input_shape)}."
            )
        dense = dict(dtype=self.dtype_policy)
        self.channel_squeeze = keras.layers.Dense(
            max(1, channels // self.reduction), activation="relu", name="channel_squeeze", **dense
        )
        self.channel_excite = keras.layers.Dense(channels, name="channel_excite", **dense)
        self.temporal_squeeze = keras.layers.Dense(
            max(1, time * channels // self.reduction),
            activation="relu",
            name="temporal_squeeze",
            **dense,
        )
        self.temporal_excite = keras.layers.Dense(channels, name="temporal_excite", **dense)
        self.channel_squeeze.build((None, channels))
        self.channel_excite.build((None, self.channel_squeeze.units))
        self.temporal_squeeze.build((None, time * channels))
        self.temporal_excite.build((None, self.temporal_squeeze.units))
        self._time, self._channels = time, channels

    def gates(self, features):
        """The two gates, each ``(batch, channels)`` in (0, 1): channel, temporal-channel."""
        channel_summary = ops.mean(features, axis=(1, 2, 3))
        temporal_summary = ops.reshape(
            ops.mean(features, axis=(2, 3)), (-1, self._time * self._channels)
        )
        channel_gate = ops.sigmoid(self.channel_excite(self.channel_squeeze(channel_summary)))
        temporal_gate = ops.sigmoid(self.temporal_excite(self.temporal_squeeze(temporal_summary)))
        return channel_gate, temporal_gate

    def call(self, features):
        channel_gate, temporal_gate = self.gates(features)
        gate = 0.5 * (channel_gate + temporal_gate)
        return features * gate[:, None, None, None, :]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(reduction=self.reduction)
        return config
