"""Backbones and DynamoNet models."""

from dynamonet_tf.models.backbones import BACKBONES, build_backbone
from dynamonet_tf.models.dynamonet import (
    DMR,
    FILTERS,
    LOGITS,
    MODEL_KINDS,
    PREDICTED_FRAMES,
    WeightTransferReport,
    build_dynamonet,
    split_clip,
    transfer_weights,
)
from dynamonet_tf.models.flops import forward_flops, trainable_parameter_count
from dynamonet_tf.models.resnet3d import build_resnet3d

__all__ = [
    "BACKBONES",
    "DMR",
    "FILTERS",
    "LOGITS",
    "MODEL_KINDS",
    "PREDICTED_FRAMES",
    "WeightTransferReport",
    "build_backbone",
    "build_dynamonet",
    "build_resnet3d",
    "forward_flops",
    "split_clip",
    "trainable_parameter_count",
    "transfer_weights",
]
