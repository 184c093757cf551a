"""Backbones and DynamoNet models (the names of their outputs: :mod:`dynamonet_tf.names`)."""

from dynamonet_tf.models.backbones import build_backbone, model_config
from dynamonet_tf.models.dynamonet import (
    WeightTransferReport,
    build_dynamonet,
    transfer_weights,
)
from dynamonet_tf.models.flops import forward_flops, trainable_parameter_count
from dynamonet_tf.models.hara import (
    HaraCheckpointError,
    hara_architecture,
    is_torch_checkpoint,
    load_hara_checkpoint,
    read_hara_state_dict,
)
from dynamonet_tf.models.resnet3d import build_resnet3d

__all__ = [
    "HaraCheckpointError",
    "WeightTransferReport",
    "build_backbone",
    "build_dynamonet",
    "build_resnet3d",
    "model_config",
    "forward_flops",
    "hara_architecture",
    "is_torch_checkpoint",
    "load_hara_checkpoint",
    "read_hara_state_dict",
    "trainable_parameter_count",
    "transfer_weights",
]
