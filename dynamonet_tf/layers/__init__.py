"""Keras 3 layers of DynamoNet."""

from dynamonet_tf.layers.dynamic_filter import DynamicFilter
from dynamonet_tf.layers.grouped_conv3d import GroupedConv3D
from dynamonet_tf.layers.initializers import (
    HE_CONV_INITIALIZER,
    HE_DENSE_INITIALIZER,
    CentreTapBias,
)
from dynamonet_tf.layers.normalization import FrameNormalization, batch_norm
from dynamonet_tf.layers.shortcut import ZeroPadShortcut
from dynamonet_tf.layers.stc import SpatioTemporalChannelCorrelation, stc_parameter_count

__all__ = [
    "CentreTapBias",
    "DynamicFilter",
    "FrameNormalization",
    "GroupedConv3D",
    "HE_CONV_INITIALIZER",
    "HE_DENSE_INITIALIZER",
    "SpatioTemporalChannelCorrelation",
    "ZeroPadShortcut",
    "batch_norm",
    "stc_parameter_count",
]
