"""Updates never put non-finite values into the weights: the overflow check covers every
replica (Keras' LossScaleOptimizer alone reads only the first one's), and the trainer never
checkpoints non-finite weights."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dynamonet_tf.training.finite_updates import all_finite, apply_gradients
from dynamonet_tf.training.trainer import Trainer, TrainingError
from tiny_run import tiny_config, write_tiny_data

INF, NAN = float("inf"), float("nan")


@pytest.fixture(scope="module")
def replica_cases():
    script = Path(__file__).with_name("finite_updates_replicas.py")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cases = json.loads(result.stdout.strip().splitlines()[-1])
    for case in cases.values():
        case["weights"] = [float(value) for value in case["weights"]]
    return cases


@pytest.mark.slow
def test_keras_alone_applies_the_second_replicas_overflow(replica_cases):
    """The bug: the first replica's gradients are finite, so the step is not skipped and
    the summed inf of the second replica reaches the weights; the scale is not lowered."""
    naive = replica_cases["naive/loss_scaled/overflow"]
    assert not np.all(np.isfinite(naive["weights"]))
    assert naive["scale"] == 2.0**15 and naive["iterations"] == 1


@pytest.mark.slow
def test_an_overflow_on_the_second_replica_skips_the_step_everywhere(replica_cases):
    combined = replica_cases["combined/loss_scaled/overflow"]
    assert combined["weights"] == [1.0, 1.0, 0.0]  # kernel of ones, zero bias: not updated
    assert combined["scale"] == 2.0**14  # the loss scale lowered, once
    assert combined["iterations"] == 0


@pytest.mark.slow
def test_a_plain_optimizer_skips_too(replica_cases):
    assert not np.all(np.isfinite(replica_cases["naive/plain/overflow"]["weights"]))
    plain = replica_cases["combined/plain/overflow"]
    assert plain["weights"] == [1.0, 1.0, 0.0] and plain["iterations"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["loss_scaled", "plain"])
def test_finite_steps_on_two_replicas_are_the_optimizers_own(replica_cases, kind):
    naive, combined = (
        replica_cases[f"naive/{kind}/finite"],
        replica_cases[f"combined/{kind}/finite"],
    )
    assert combined == naive
    assert combined["weights"] != [1.0, 1.0, 0.0] and combined["iterations"] == 1


def _optimizer(loss_scaled):
    optimizer = keras.optimizers.SGD(0.5, momentum=0.9)
    return (
        keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=4.0)
        if loss_scaled
        else optimizer
    )


def _two_steps(apply, loss_scaled, gradients, graph):
    """Weights, loss scale and iterations after two updates with ``gradients`` by ``apply``."""
    variables = [
        keras.Variable(np.ones(3, np.float32)),
        keras.Variable(np.full((2, 2), 2.0, np.float32)),
    ]
    optimizer = _optimizer(loss_scaled)
    optimizer.build(variables)
    update = lambda: apply(optimizer, [tf.constant(g, tf.float32) for g in gradients], variables)  # noqa: E731
    if graph:
        update = tf.function(update)
    update()
    update()
    scale = float(optimizer.dynamic_scale.numpy()) if loss_scaled else None
    return [v.numpy() for v in variables], scale, int(optimizer.iterations.numpy())


def _keras(optimizer, gradients, variables):
    optimizer.apply(gradients, variables)


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("loss_scaled", [False, True], ids=["plain", "loss_scaled"])
def test_on_one_device_finite_gradients_update_exactly_as_keras(loss_scaled, graph):
    gradients = [[1.0, -2.0, 3.0], [[0.5, 0.25], [-1.0, 4.0]]]
    ours = _two_steps(apply_gradients, loss_scaled, gradients, graph)
    theirs = _two_steps(_keras, loss_scaled, gradients, graph)
    for a, b in zip(ours[0], theirs[0]):
        np.testing.assert_array_equal(a, b)
    assert ours[1:] == theirs[1:] and ours[2] == 2
    assert not np.array_equal(ours[0][0], np.ones(3))


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("loss_scaled", [False, True], ids=["plain", "loss_scaled"])
@pytest.mark.parametrize("bad", [INF, NAN])
def test_on_one_device_non_finite_gradients_are_skipped(loss_scaled, graph, bad):
    weights, scale, iterations = _two_steps(
        apply_gradients, loss_scaled, [[1.0, bad, 3.0], [[0.5, 0.25], [-1.0, 4.0]]], graph
    )
    np.testing.assert_array_equal(weights[0], np.ones(3))
    np.testing.assert_array_equal(weights[1], np.full((2, 2), 2.0))
    assert iterations == 0
    if loss_scaled:
        assert scale == 1.0  # 4 halved twice


def test_apply_gradients_refuses_cross_replica_context():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        variable = keras.Variable(np.ones(2, np.float32))
        with pytest.raises(ValueError, match="replica context"):
            apply_gradients(keras.optimizers.SGD(0.1), [tf.ones(2)], [variable])


def test_all_finite():
    assert all_finite([tf.ones(3), tf.zeros((2, 2)), keras.Variable(np.ones(2, np.float32))])
    assert not all_finite([tf.ones(3), tf.constant([0.0, NAN])])
    assert not all_finite([tf.constant([-INF], tf.float16)])
    assert not all_finite([keras.Variable(np.array([1.0, INF], np.float32))])
    assert all_finite([tf.Variable(3, dtype=tf.int64)])  # counters are ignored
    assert all_finite([])


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("tiny_data"))


def _files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_non_finite_weights_are_never_checkpointed(tiny_data, tmp_path):
    trainer = Trainer(
        tiny_config(tiny_data, "pretrain", "train.epochs=1"), tmp_path / "run", progress=False
    )
    trainer._save()
    checkpoints = tmp_path / "run" / "checkpoints"
    saved = _files(checkpoints)
    assert saved and trainer.manager.latest_checkpoint.endswith("ckpt-0")
    weight = trainer.model.trainable_weights[0]
    weight.assign(tf.tensor_scatter_nd_update(weight, [[0] * len(weight.shape)], [NAN]))
    trainer.optimizer.iterations.assign_add(1)
    with pytest.raises(
        TrainingError, match=r"non-finite weights at step 1.*last good checkpoint is kept: .*ckpt-0"
    ):
        trainer._save()
    assert _files(checkpoints) == saved
    # Nor as the best checkpoint at the end of an epoch with a better validation loss.
    with pytest.raises(TrainingError, match="non-finite weights"):
        trainer._end_epoch({"val_loss": 0.5})
    assert _files(tmp_path / "run" / "best") == []
    assert _files(checkpoints) == saved
