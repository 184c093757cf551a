"""The backbone registry: ``build_backbone(name, **options)``."""

import functools

from dynamonet_tf.models.resnet3d import build_resnet3d


def _registry():
    backbones = {}
    for stc in (False, True):
        prefix = "stc_" if stc else ""
        for depth in (10, 18, 34, 50, 101, 152):
            backbones[f"{prefix}resnet{depth}"] = functools.partial(
                build_resnet3d, depth, resnext=False, stc=stc
            )
        for depth in (50, 101, 152):
            backbones[f"{prefix}resnext{depth}"] = functools.partial(
                build_resnet3d, depth, resnext=True, stc=stc
            )
    return backbones


BACKBONES = _registry()


def build_backbone(name, /, **options):
    """Builds the backbone ``name`` (see ``BACKBONES``) from clips to its last feature map.

    ``options`` are those of :func:`dynamonet_tf.models.resnet3d.build_resnet3d`
    (``input_shape``, ``shortcut_type``, ``conv1_t_size``, ``conv1_t_stride``,
    ``no_max_pool``, ``width_multiplier``, ``cardinality``, ``stc_reduction``), and ``name``
    for the Keras model (the backbone name by default).
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; valid backbones: {', '.join(BACKBONES)}.")
    return BACKBONES[name](name=options.pop("name", name), **options)
