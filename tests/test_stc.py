import math

import numpy as np
import pytest

from dynamonet_tf.layers import SpatioTemporalChannelCorrelation, stc_parameter_count
from dynamonet_tf.models import build_backbone


def test_parameter_formula_by_hand():
    # T=2, C=32, r=16: channel FCs 32->2->32, temporal FCs 64->4->32, all with biases.
    assert stc_parameter_count(2, 32, 16) == (32 * 2 + 2 + 2 * 32 + 32) + (64 * 4 + 4 + 4 * 32 + 32)


def test_gates_shapes_and_block_output():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3, 4, 5, 6, 32)).astype(np.float32)
    block = SpatioTemporalChannelCorrelation(reduction=8)
    out = np.asarray(block(features))
    channel_gate, temporal_gate = (np.asarray(g) for g in block.gates(features))
    assert channel_gate.shape == temporal_gate.shape == (3, 32)
    assert ((channel_gate > 0) & (channel_gate < 1)).all()
    assert block.channel_squeeze.kernel.shape == (32, 4)
    assert block.temporal_squeeze.kernel.shape == (4 * 32, 16)
    assert block.temporal_excite.kernel.shape == (16, 32)
    assert sum(int(np.prod(w.shape)) for w in block.trainable_weights) == stc_parameter_count(
        4, 32, 8
    )

    def dense(layer, x, relu):
        y = x @ np.asarray(layer.kernel) + np.asarray(layer.bias)
        return np.maximum(y, 0) if relu else y

    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    expected_channel = sigmoid(
        dense(
            block.channel_excite,
            dense(block.channel_squeeze, features.mean((1, 2, 3)), True),
            False,
        )
    )
    expected_temporal = sigmoid(
        dense(
            block.temporal_excite,
            dense(block.temporal_squeeze, features.mean((2, 3)).reshape(3, -1), True),
            False,
        )
    )
    np.testing.assert_allclose(channel_gate, expected_channel, rtol=1e-5)
    np.testing.assert_allclose(temporal_gate, expected_temporal, rtol=1e-5)
    gate = 0.5 * (expected_channel + expected_temporal)
    np.testing.assert_allclose(out, features * gate[:, None, None, None, :], rtol=1e-5, atol=1e-6)


def test_unknown_time_is_refused():
    import keras

    with pytest.raises(ValueError, match="known number of frames"):
        SpatioTemporalChannelCorrelation()(keras.Input((None, 4, 4, 8)))


def stage_shapes(frames):
    """(time, channels) entering the STC blocks of each ResNeXt stage at stride 2 per stage."""
    shapes, time = [], math.ceil(frames / 2)  # after the max-pool
    for stage, channels in enumerate((256, 512, 1024, 2048)):
        if stage:
            time = math.ceil(time / 2)
        shapes.append((time, channels))
    return shapes


@pytest.mark.slow
@pytest.mark.parametrize("frames", [16, 32, 64])
def test_stc_resnext101_builds_and_adds_exactly_its_blocks(frames):
    model = build_backbone("stc_resnext101", input_shape=(frames, 112, 112, 3))
    assert model.output_shape == (None, math.ceil(frames / 16), 4, 4, 2048)
    blocks = [
        layer for layer in model.layers if isinstance(layer, SpatioTemporalChannelCorrelation)
    ]
    assert len(blocks) == 3 + 4 + 23 + 3
    expected_extra = sum(
        count * stc_parameter_count(time, channels)
        for count, (time, channels) in zip((3, 4, 23, 3), stage_shapes(frames))
    )
    plain = 47_521_216  # resnext101, see test_backbones.HARA_TRAINABLE_PARAMETERS
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable - plain == expected_extra
