"""forward_flops and trainable_parameter_count against hand-counted models."""

import keras
import pytest

from dynamonet_tf.layers import DynamicFilter, SpatioTemporalChannelCorrelation
from dynamonet_tf.models import build_backbone
from dynamonet_tf.models.flops import forward_flops, trainable_parameter_count


def _conv3d_model(groups, strides, padding):
    clips = keras.Input((4, 10, 10, 6))
    x = keras.layers.Conv3D(8, 3, strides=strides, padding=padding, groups=groups)(clips)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling3D()(x)
    return keras.Model(clips, keras.layers.Dense(5)(x))


@pytest.mark.parametrize(
    "groups, strides, padding, conv_output_positions",
    [
        (1, 1, "valid", 2 * 8 * 8),
        (2, 1, "valid", 2 * 8 * 8),
        (1, (1, 2, 2), "valid", 2 * 4 * 4),
        (2, 2, "same", 2 * 5 * 5),
    ],
)
def test_conv3d_and_dense(groups, strides, padding, conv_output_positions):
    model = _conv3d_model(groups, strides, padding)
    conv_macs = conv_output_positions * 8 * (3 * 3 * 3) * (6 // groups)
    dense_macs = 8 * 5
    assert forward_flops(model) == 2 * (conv_macs + dense_macs)
    assert forward_flops(model, batch_size=3) == 3 * 2 * (conv_macs + dense_macs)


def test_dense_counts_every_row_of_leading_axes():
    inputs = keras.Input((3, 7))
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    assert forward_flops(model) == 2 * 3 * 7 * 4


@pytest.mark.parametrize("implementation", ["depthwise", "extract_patches"])
def test_dynamic_filter_global(implementation):
    frames = keras.Input((3, 8, 8, 2))
    filters = keras.Input((3, 5, 5))
    outputs = DynamicFilter(5, implementation=implementation)(frames, filters)
    model = keras.Model([frames, filters], outputs)
    assert forward_flops(model, batch_size=4) == 4 * 2 * (3 * 8 * 8 * 2) * 25


def test_dynamic_filter_per_pixel():
    frames = keras.Input((3, 8, 8, 2))
    filters = keras.Input((3, 8, 8, 3, 3))
    model = keras.Model([frames, filters], DynamicFilter(3, per_pixel=True)(frames, filters))
    assert forward_flops(model) == 2 * (3 * 8 * 8 * 2) * 9


def test_stc_counts_its_dense_layers():
    features = keras.Input((2, 4, 4, 32))
    model = keras.Model(features, SpatioTemporalChannelCorrelation(16)(features))
    channel_branch = 32 * 2 + 2 * 32
    temporal_branch = (2 * 32) * 4 + 4 * 32
    assert forward_flops(model) == 2 * (channel_branch + temporal_branch)


def test_nested_models_are_counted():
    inner_inputs = keras.Input((2, 6, 6, 3))
    inner = keras.Model(inner_inputs, keras.layers.Conv3D(4, 1)(inner_inputs), name="inner")
    clips = keras.Input((2, 6, 6, 3))
    outer = keras.Model(clips, keras.layers.Dense(5)(inner(clips)))
    conv_macs = (2 * 6 * 6 * 4) * 1 * 3
    dense_macs = (2 * 6 * 6) * 4 * 5
    assert forward_flops(outer) == 2 * (conv_macs + dense_macs)


def test_unknown_shape_names_the_layer():
    clips = keras.Input((4, None, None, 3))
    model = keras.Model(clips, keras.layers.Conv3D(8, 3, name="spatially_unknown")(clips))
    with pytest.raises(ValueError, match="spatially_unknown"):
        forward_flops(model)


@pytest.mark.parametrize("batch_size", [0, -1, 1.0, True])
def test_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        forward_flops(_conv3d_model(1, 1, "valid"), batch_size=batch_size)


def test_resnet18_at_16x112():
    """Hara's ResNet-18 (shortcut A: no downsampling convolutions), counted by hand."""

    def conv_macs(time, size, out_channels, kernel_volume, in_channels):
        return time * size * size * out_channels * kernel_volume * in_channels

    # conv1: 7x7x7, stride (1, 2, 2), padding 3: 16x112x112x3 -> 16x56x56x64.
    conv1 = conv_macs(16, 56, 64, 7 * 7 * 7, 3)
    # The max-pool halves every axis: stage 1 runs at 8x28x28; stages 2-4 halve again.
    stage1 = 4 * conv_macs(8, 28, 64, 27, 64)
    stage2 = conv_macs(4, 14, 128, 27, 64) + 3 * conv_macs(4, 14, 128, 27, 128)
    stage3 = conv_macs(2, 7, 256, 27, 128) + 3 * conv_macs(2, 7, 256, 27, 256)
    stage4 = conv_macs(1, 4, 512, 27, 256) + 3 * conv_macs(1, 4, 512, 27, 512)

    backbone = build_backbone("resnet18", input_shape=(16, 112, 112, 3))
    stem = keras.Model(backbone.input, backbone.get_layer("conv1").output)
    assert forward_flops(stem) == 2 * conv1
    assert forward_flops(backbone) == 2 * (conv1 + stage1 + stage2 + stage3 + stage4)


def test_trainable_parameter_count():
    model = _conv3d_model(2, 1, "valid")
    conv = 3 * 3 * 3 * (6 // 2) * 8 + 8
    batch_norm = 2 * 8  # gamma and beta; the moving statistics are not trainable
    dense = 8 * 5 + 5
    assert trainable_parameter_count(model) == conv + batch_norm + dense
