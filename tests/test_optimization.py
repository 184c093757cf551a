import math

import keras
import numpy as np
import pytest

from dynamonet_tf.config import load_config
from dynamonet_tf.training.optimization import DynamoNetSchedule, make_optimizer


def test_warmup_then_cosine():
    schedule = DynamoNetSchedule(0.4, total_steps=100, warmup_steps=10, cosine=True)
    rates = np.array([float(schedule(step)) for step in range(100)])
    expected = [
        0.4 * min(1, (s + 1) / 10) * 0.5 * (1 + math.cos(math.pi * s / 100)) for s in range(100)
    ]
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=1e-7)


def test_plateau_scale_multiplies_the_rate():
    schedule = DynamoNetSchedule(0.1, total_steps=10)
    schedule.plateau_scale.assign(0.1)
    assert float(schedule(3)) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "overrides, kind, rate",
    [
        (["train.batch_size=16"], keras.optimizers.SGD, 0.1 * 16 / 64),
        (
            [
                "train.batch_size=16",
                "optimizer.name=adam",
                "optimizer.base_learning_rate=0.001",
                "optimizer.base_batch_size=8",
            ],
            keras.optimizers.Adam,
            0.002,
        ),
        (
            ["train.batch_size=8", "train.mixed_precision=mixed_float16"],
            keras.optimizers.LossScaleOptimizer,
            0.1 * 8 / 64,
        ),
    ],
)
def test_optimizer_follows_the_config(overrides, kind, rate):
    optimizer, schedule = make_optimizer(load_config(None, overrides))
    assert isinstance(optimizer, kind)
    assert float(schedule(0)) == pytest.approx(rate)
    if kind is keras.optimizers.SGD:
        assert optimizer.nesterov and optimizer.momentum == 0.9
