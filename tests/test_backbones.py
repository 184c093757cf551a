import math

import keras
import numpy as np
import pytest

from dynamonet_tf.layers import GroupedConv3D
from dynamonet_tf.models import build_backbone
from dynamonet_tf.names import BACKBONES

TINY = dict(width_multiplier=0.125)


def trainable_parameters(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# Trainable parameters of Hara et al.'s 3D networks (CVPR 2018 code: conv1 with 64 filters,
# 7x7x7), backbone without the classifier. Source: bench/reference/hara_torch.py, our PyTorch
# build of their architecture, run with torch 2.13.0 CPU:
#   /tmp/torchenv/bin/python bench/reference/hara_torch.py
# (with the 400-class FC of their Kinetics models these become 33.2M and 48.3M for
# ResNet-18 and ResNeXt-101, the figures usually quoted for them).
HARA_TRAINABLE_PARAMETERS = {
    ("resnet18", "A"): 33_030_080,
    ("resnet50", "B"): 46_198_976,
    ("resnet101", "B"): 85_245_120,
    ("resnext101", "B"): 47_521_216,
}


@pytest.mark.parametrize("name, shortcut", list(HARA_TRAINABLE_PARAMETERS))
def test_trainable_parameters_equal_hara_reference(name, shortcut):
    model = build_backbone(name, shortcut_type=shortcut)
    assert trainable_parameters(model) == HARA_TRAINABLE_PARAMETERS[(name, shortcut)]


def test_default_shortcuts_follow_hara():
    assert (
        trainable_parameters(build_backbone("resnet18"))
        == HARA_TRAINABLE_PARAMETERS[("resnet18", "A")]
    )
    shortcut_a = build_backbone("resnet50", shortcut_type="A", **TINY)
    shortcut_b = build_backbone("resnet50", **TINY)
    assert not [layer for layer in shortcut_a.layers if "downsample_conv" in layer.name]
    assert len([layer for layer in shortcut_b.layers if "downsample_conv" in layer.name]) == 4


@pytest.mark.parametrize("frames", [8, 16, 32, 64])
def test_feature_map_shape_for_paper_clip_lengths(frames):
    model = build_backbone("resnet10", input_shape=(frames, 64, 96, 3), **TINY)
    # Time: /2 by the max-pool and by each of stages 2-4, rounding up as PyTorch does.
    time = frames
    for _ in range(4):
        time = math.ceil(time / 2)
    assert model.output_shape == (None, time, 2, 3, 64)
    features = model(np.zeros((2, frames, 64, 96, 3), np.float32))
    assert features.shape == (2, time, 2, 3, 64)


def test_112_pixel_clips_give_4x4_features():
    model = build_backbone("resnext50", input_shape=(16, 112, 112, 3), width_multiplier=0.25)
    assert model.output_shape == (None, 1, 4, 4, 512)


def test_stem_options_change_shapes_and_parameters():
    base = build_backbone("resnet18", input_shape=(16, 64, 64, 3), **TINY)
    strided = build_backbone(
        "resnet18", input_shape=(16, 64, 64, 3), conv1_t_stride=2, no_max_pool=True, **TINY
    )
    assert base.get_layer("layer1_block0_conv1").input.shape == (None, 8, 16, 16, 8)
    assert strided.get_layer("layer1_block0_conv1").input.shape == (None, 8, 32, 32, 8)
    short = build_backbone("resnet18", conv1_t_size=3, **TINY)
    assert short.get_layer("conv1").kernel.shape == (3, 7, 7, 3, 8)


def test_width_multiplier_scales_every_stage():
    model = build_backbone("resnet34", width_multiplier=0.25)
    assert model.get_layer("conv1").filters == 16
    assert [model.get_layer(f"layer{s}_block0_conv1").filters for s in (1, 2, 3, 4)] == [
        16,
        32,
        64,
        128,
    ]


def test_resnext_uses_grouped_bottleneck():
    model = build_backbone("resnext101", **dict(width_multiplier=0.25))
    conv = model.get_layer("layer1_block0_conv2")
    assert isinstance(conv, GroupedConv3D) and conv.implementation == "auto"
    assert conv.groups == 32
    # Inner width = cardinality * width / 32 = 32 * 32 / 32; grouped kernel sees 1 channel.
    assert conv.kernel.shape == (3, 3, 3, 1, 32)
    assert model.get_layer("layer1_block0_conv3").filters == 64  # expansion 2


def test_strided_convolutions_pad_symmetrically_like_pytorch():
    """conv1 (7x7x7, stride (1, 2, 2), padding 3) centred one-hot reads input (t, 2y, 2x).

    TensorFlow's "same" padding would read (t, 2y + 1, 2x + 1) here: this pins the alignment
    to Hara et al.'s, which pretrained PyTorch weights rely on.
    """
    model = build_backbone("resnet10", input_shape=(8, 32, 32, 3), **TINY)
    conv1 = model.get_layer("conv1")
    kernel = np.zeros(conv1.kernel.shape, np.float32)
    kernel[3, 3, 3, 0, 0] = 1.0
    conv1.kernel.assign(kernel)
    stem = keras.Model(model.input, conv1.output)
    clips = np.random.default_rng(0).random((1, 8, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(stem(clips)[..., 0], clips[:, :, ::2, ::2, 0])


def test_shortcut_a_subsamples_and_zero_pads():
    model = build_backbone("resnet18", input_shape=(8, 64, 64, 3), **TINY)
    shortcut = model.get_layer("layer2_block0_downsample")
    x = np.random.default_rng(1).random((2, 4, 16, 16, 8)).astype(np.float32)
    out = np.asarray(shortcut(x))
    assert out.shape == (2, 2, 8, 8, 16)
    np.testing.assert_array_equal(out[..., :8], x[:, ::2, ::2, ::2])
    assert not out[..., 8:].any()


def test_registry_names():
    assert set(BACKBONES) == {
        f"{stc}{family}{depth}"
        for stc in ("", "stc_")
        for family, depths in (("resnet", (10, 18, 34, 50, 101, 152)), ("resnext", (50, 101, 152)))
        for depth in depths
    }


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown backbone 'resnet19'.*resnet18.*stc_resnext101"):
        build_backbone("resnet19")


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(input_shape=(16, 112, 112)), r"\(time, height, width, channels\)"),
        (dict(input_shape=(None, 112, 112, 3)), "positive number of frames"),
        (dict(input_shape=(16, 112, 112, 0)), "positive channel count"),
        (dict(shortcut_type="C"), "model.shortcut_type must be one of 'A', 'B'"),
        (dict(conv1_t_stride=0), "model.conv1_t_stride must be >= 1"),
        (dict(width_multiplier=0), "width_multiplier must be positive"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        build_backbone("resnet18", **options)


def test_resnext_too_narrow_for_its_groups_is_refused():
    with pytest.raises(ValueError, match="less than one channel per group"):
        build_backbone("resnext50", width_multiplier=0.125)


def test_wrong_rank_at_call_is_named():
    model = build_backbone("resnet10", input_shape=(8, 32, 32, 3), **TINY)
    with pytest.raises(
        ValueError,
        match=(
            r"Expected shape \(None, 8, 32, 32, 3\), "
            r"but input has incompatible shape \(1, 8, 32, 32\)"
        ),
    ):
        model(np.zeros((1, 8, 32, 32), np.float32))
