"""3D ResNet, ResNeXt and their STC variants: the backbones of DynamoNet.

The architectures follow Hara et al., "Can spatiotemporal 3D CNNs retrace the history of 2D
CNNs and ImageNet?" (CVPR 2018), layer for layer, so that parameter counts and output
alignment equal theirs:

- conv1: 64 filters, kernel (conv1_t_size, 7, 7), stride (conv1_t_stride, 2, 2), padding
  (conv1_t_size // 2, 3, 3); BN; ReLU; max-pool 3x3x3, stride 2, padding 1.
- four stages; stages 2-4 stride 2 in time and space (on the 3x3x3 convolution).
- ResNet-10/18/34: basic blocks (two 3x3x3 convolutions), widths 64/128/256/512.
- ResNet-50/101/152: bottlenecks (1x1x1, 3x3x3, 1x1x1; expansion 4), widths 64/128/256/512.
- ResNeXt-50/101/152: bottlenecks with expansion 2, widths 128/256/512/1024, inner width
  ``cardinality * width / 32`` and a grouped 3x3x3 convolution with ``cardinality`` groups.
- Shortcut A: subsample + zero channels; shortcut B: 1x1x1 convolution + BN.
- Convolutions have no bias; BN uses PyTorch's defaults (:func:`~dynamonet_tf.layers.batch_norm`).

ResNeXt's grouped 3x3x3 convolutions are :class:`GroupedConv3D` layers: a ``Conv3D`` with
the same kernel variable (checkpoints and weight transfers are interchangeable with a plain
``Conv3D``'s) that, on a CPU, avoids the XLA path Keras 3 takes for grouped 3D convolutions on
TensorFlow (ten times slower than PyTorch there). ``grouped_conv_implementation`` chooses how
they compute; the default ``"auto"`` keeps Keras's native (cuDNN) convolution when a GPU is
visible at build time and picks the faster CPU implementation otherwise.

Strided layers pad explicitly and symmetrically, as PyTorch does, rather than with
TensorFlow's "same" (which pads more after than before): the outputs then line up with the
reference implementation's pixel for pixel. STC variants insert a
:class:`SpatioTemporalChannelCorrelation` block on the residual branch of every block,
before the addition.
"""

from typing import Optional

import keras

from dynamonet_tf.config import ModelConfig
from dynamonet_tf.layers import (
    HE_CONV_INITIALIZER,
    GroupedConv3D,
    SpatioTemporalChannelCorrelation,
    ZeroPadShortcut,
    batch_norm,
)
from dynamonet_tf.layers.grouped_conv3d import IMPLEMENTATIONS as GROUPED_CONV_IMPLEMENTATIONS
from dynamonet_tf.names import RESNET_DEPTHS, BackboneSpec

BLOCKS_PER_STAGE = {
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
RESNET_WIDTHS = (64, 128, 256, 512)
RESNEXT_WIDTHS = (128, 256, 512, 1024)
STEM_WIDTH = 64
assert tuple(BLOCKS_PER_STAGE) == RESNET_DEPTHS, "every backbone name needs its stages"


def _conv(x, filters, kernel_size, strides, name, groups=1, implementation="auto"):
    """Conv3D without bias; zero padding ``kernel // 2`` on both sides of every axis.

    Grouped convolutions are :class:`GroupedConv3D` layers computed by ``implementation``.
    """
    half = tuple(k // 2 for k in kernel_size)
    if strides == 1 or not any(half):
        # At stride 1 "same" pads odd kernels symmetrically; 1x1x1 kernels need no padding.
        padding = "same"
    else:
        x = keras.layers.ZeroPadding3D(half, name=f"{name}_pad")(x)
        padding = "valid"
    options = dict(
        strides=strides,
        padding=padding,
        groups=groups,
        use_bias=False,
        kernel_initializer=HE_CONV_INITIALIZER,
        name=name,
    )
    if groups > 1:
        return GroupedConv3D(filters, kernel_size, implementation=implementation, **options)(x)
    return keras.layers.Conv3D(filters, kernel_size, **options)(x)


def _shortcut(x, channels, strides, shortcut_type, name, synchronized):
    if strides == 1 and x.shape[-1] == channels:
        return x
    if shortcut_type == "A":
        return ZeroPadShortcut(channels, strides, name=f"{name}_downsample")(x)
    x = _conv(x, channels, (1, 1, 1), strides, name=f"{name}_downsample_conv")
    return batch_norm(f"{name}_downsample_bn", synchronized)(x)


def _basic_block(x, width, strides, shortcut_type, stc_reduction, name, synchronized, **_):
    shortcut = _shortcut(x, width, strides, shortcut_type, name, synchronized)
    y = _conv(x, width, (3, 3, 3), strides, name=f"{name}_conv1")
    y = batch_norm(f"{name}_bn1", synchronized)(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(y, width, (3, 3, 3), 1, name=f"{name}_conv2")
    y = batch_norm(f"{name}_bn2", synchronized)(y)
    return _merge(shortcut, y, stc_reduction, name)


def _bottleneck_block(
    x,
    width,
    strides,
    shortcut_type,
    stc_reduction,
    name,
    synchronized,
    expansion,
    inner_width,
    groups,
    grouped_conv_implementation,
):
    shortcut = _shortcut(x, width * expansion, strides, shortcut_type, name, synchronized)
    y = _conv(x, inner_width, (1, 1, 1), 1, name=f"{name}_conv1")
    y = batch_norm(f"{name}_bn1", synchronized)(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(
        y,
        inner_width,
        (3, 3, 3),
        strides,
        name=f"{name}_conv2",
        groups=groups,
        implementation=grouped_conv_implementation,
    )
    y = batch_norm(f"{name}_bn2", synchronized)(y)
    y = keras.layers.ReLU(name=f"{name}_relu2")(y)
    y = _conv(y, width * expansion, (1, 1, 1), 1, name=f"{name}_conv3")
    y = batch_norm(f"{name}_bn3", synchronized)(y)
    return _merge(shortcut, y, stc_reduction, name)


def _merge(shortcut, residual, stc_reduction, name):
    if stc_reduction:
        residual = SpatioTemporalChannelCorrelation(stc_reduction, name=f"{name}_stc")(residual)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, residual])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _check_input_shape(input_shape):
    if len(input_shape) != 4:
        raise ValueError(
            "Backbone input_shape must be (time, height, width, channels), without the "
            f"batch axis; got {tuple(input_shape)}."
        )
    time, height, width, channels = input_shape
    if not isinstance(time, int) or time < 1:
        raise ValueError(f"Backbone input_shape needs a positive number of frames; got {time!r}.")
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"Backbone input_shape needs a positive channel count; got {channels!r}.")
    for axis_name, size in (("height", height), ("width", width)):
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(
                f"Backbone input_shape {axis_name} must be a positive integer or None; "
                f"got {size!r}."
            )


def build_resnet3d(
    spec: BackboneSpec,
    config: ModelConfig,
    *,
    input_shape: tuple,
    grouped_conv_implementation: str = "auto",
    name: Optional[str] = None,
) -> keras.Model:
    """Builds a 3D ResNet/ResNeXt (optionally with STC blocks) as a functional model.

    Args:
        spec: depth (10, 18, 34, 50, 101 or 152; ResNeXt: 50, 101 or 152), ResNeXt
            bottlenecks (grouped convolution, expansion 2) or not, STC blocks or not.
        config: the model section; its backbone options are read: ``shortcut_type`` ("A"
            or "B"; ``None`` gives Hara et al.'s choice, A for basic-block ResNets 10/18/34
            and B for bottleneck ones), ``conv1_t_size`` and ``conv1_t_stride`` (temporal
            kernel size and stride of conv1), ``no_max_pool`` (skip the max-pool after
            conv1), ``width_multiplier`` (scales conv1 and every stage width: tiny models
            for CPUs), ``cardinality`` (ResNeXt groups), ``stc_reduction`` (the STC blocks'
            ratio ``r``) and ``sync_batch_norm`` (BatchNorm statistics over the global batch
            of all replicas of a ``tf.distribute`` strategy rather than each replica's share).
        input_shape: ``(time, height, width, channels)`` of the clips; time must be known.
        grouped_conv_implementation: how ResNeXt's grouped convolutions compute:
            ``"auto"`` (default), ``"native"`` (Keras's ``Conv3D``: cuDNN on GPUs, XLA on
            CPUs, slow there), ``"split"`` or ``"conv2d"``; see
            :mod:`dynamonet_tf.layers.grouped_conv3d`. Speed only: weights and results are
            the same.

    Returns:
        A ``keras.Model`` from clips ``(batch, time, height, width, channels)`` to the last
        feature map ``(batch, time', height', width', features)``; for 16x112x112 clips,
        ``time' = 1`` and ``height' = width' = 4``.
    """
    depth, resnext, stc = spec
    shortcut_type, width_multiplier = config.shortcut_type, config.width_multiplier
    conv1_t_size, conv1_t_stride = config.conv1_t_size, config.conv1_t_stride
    cardinality, stc_reduction = config.cardinality, config.stc_reduction
    synchronized_batch_norm, no_max_pool = config.sync_batch_norm, config.no_max_pool
    if depth not in BLOCKS_PER_STAGE:
        raise ValueError(f"Unknown ResNet depth {depth!r}; valid: {sorted(BLOCKS_PER_STAGE)}.")
    bottleneck = resnext or depth >= 50
    if resnext and not bottleneck:
        raise ValueError(f"ResNeXt needs a bottleneck depth (50, 101, 152); got {depth}.")
    if shortcut_type is None:
        shortcut_type = "B" if bottleneck else "A"
    if shortcut_type not in ("A", "B"):
        raise ValueError(f"shortcut_type must be 'A' or 'B'; got {shortcut_type!r}.")
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be positive; got {width_multiplier!r}.")
    for option, value in (("conv1_t_size", conv1_t_size), ("conv1_t_stride", conv1_t_stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{option} must be a positive integer; got {value!r}.")
    _check_input_shape(input_shape)
    if grouped_conv_implementation not in GROUPED_CONV_IMPLEMENTATIONS:
        raise ValueError(
            "grouped_conv_implementation must be one of "
            f"{', '.join(GROUPED_CONV_IMPLEMENTATIONS)}; got {grouped_conv_implementation!r}."
        )

    base_widths = RESNEXT_WIDTHS if resnext else RESNET_WIDTHS
    widths = [max(1, int(w * width_multiplier)) for w in base_widths]
    stem_width = max(1, int(STEM_WIDTH * width_multiplier))

    clips = keras.Input(shape=tuple(input_shape), name="clips")
    x = keras.layers.ZeroPadding3D((conv1_t_size // 2, 3, 3), name="conv1_pad")(clips)
    x = keras.layers.Conv3D(
        stem_width,
        (conv1_t_size, 7, 7),
        strides=(conv1_t_stride, 2, 2),
        use_bias=False,
        kernel_initializer=HE_CONV_INITIALIZER,
        name="conv1",
    )(x)
    x = batch_norm("bn1", synchronized_batch_norm)(x)
    x = keras.layers.ReLU(name="relu1")(x)
    if not no_max_pool:
        # Zero padding equals PyTorch's -inf padding here: the inputs follow a ReLU.
        x = keras.layers.ZeroPadding3D(1, name="maxpool_pad")(x)
        x = keras.layers.MaxPooling3D(3, strides=2, name="maxpool")(x)

    for stage, (width, blocks) in enumerate(zip(widths, BLOCKS_PER_STAGE[depth]), start=1):
        for index in range(blocks):
            strides = 2 if stage > 1 and index == 0 else 1
            block_options = dict(
                width=width,
                strides=strides,
                shortcut_type=shortcut_type,
                stc_reduction=stc_reduction if stc else 0,
                name=f"layer{stage}_block{index}",
                synchronized=synchronized_batch_norm,
            )
            if bottleneck:
                expansion = 2 if resnext else 4
                groups = cardinality if resnext else 1
                inner_width = cardinality * (width // 32) if resnext else width
                if inner_width < 1:
                    raise ValueError(
                        f"ResNeXt stage width {width} (width_multiplier={width_multiplier}) "
                        f"leaves less than one channel per group for cardinality={cardinality}; "
                        "use a larger width_multiplier or a smaller cardinality."
                    )
                x = _bottleneck_block(
                    x,
                    expansion=expansion,
                    inner_width=inner_width,
                    groups=groups,
                    grouped_conv_implementation=grouped_conv_implementation,
                    **block_options,
                )
            else:
                x = _basic_block(x, **block_options)

    if name is None:
        name = f"{'stc_' if stc else ''}{'resnext' if resnext else 'resnet'}{depth}"
    return keras.Model(clips, x, name=name)
