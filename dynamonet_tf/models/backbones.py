"""The backbones by name: ``build_backbone(model_config, input_shape=...)``."""

from typing import Optional, Union

import keras

from dynamonet_tf.config import DataConfig, ModelConfig, with_options
from dynamonet_tf.models.resnet3d import build_resnet3d
from dynamonet_tf.names import BACKBONES


def build_backbone(
    config: Union[ModelConfig, str] = None,
    /,
    *,
    input_shape: Optional[tuple] = None,
    grouped_conv_implementation: str = "auto",
    name: Optional[str] = None,
    **options,
) -> keras.Model:
    """Builds the backbone ``config.backbone`` from clips to its last feature map.

    Args:
        config: a :class:`~dynamonet_tf.config.ModelConfig`, whose backbone options are used
            (see :func:`~dynamonet_tf.models.resnet3d.build_resnet3d`), or a backbone name
            (one of :data:`dynamonet_tf.names.BACKBONES`), short for
            ``ModelConfig(backbone=name)``; None: ``ModelConfig()``.
        input_shape: ``(time, height, width, channels)``; default, the clip shape of
            ``DataConfig()``.
        grouped_conv_implementation: how ResNeXt's grouped convolutions compute (speed only).
        name: the Keras model's name (the backbone name by default).
        options: fields of ``ModelConfig`` replacing those of ``config``
            (``width_multiplier=0.25``, ``shortcut_type="B"``, ...).

    Raises:
        ValueError: an unknown backbone or option (a ``ConfigError`` naming the key).
    """
    config = model_config(config, **options)
    return build_resnet3d(
        BACKBONES[config.backbone],
        config,
        input_shape=tuple(input_shape or DataConfig().clip_shape),
        grouped_conv_implementation=grouped_conv_implementation,
        name=name or config.backbone,
    )


def model_config(config=None, **options) -> ModelConfig:
    """``config`` (a ``ModelConfig``, a backbone name or None for the defaults) with the
    ``ModelConfig`` fields in ``options`` replaced; an unknown field raises ConfigError."""
    if isinstance(config, str):
        options = {"backbone": config, **options}
        config = None
    return with_options(config or ModelConfig(), **options)
