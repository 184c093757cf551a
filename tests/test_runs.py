"""Loading a trained run back: the weights it saved, from a model dir or a checkpoint prefix."""

import argparse

import numpy as np
import pytest

from dynamonet_tf.runs import RunError, add_run_arguments, load_run, resolve_checkpoint, run_source
from dynamonet_tf.training.trainer import Trainer
from tiny_run import tiny_config, write_tiny_data


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory):
    data = write_tiny_data(tmp_path_factory.mktemp("data"))
    model_dir = tmp_path_factory.mktemp("runs") / "joint"
    trainer = Trainer(tiny_config(data, "joint"), model_dir, progress=False)
    trainer.train()
    return model_dir, [w.numpy() for w in trainer.model.weights]


@pytest.mark.slow
def test_model_dir_loads_the_final_weights(joint_run):
    model_dir, trained = joint_run
    run = load_run(model_dir)
    assert run.checkpoint.endswith("ckpt-6")  # 2 epochs x 3 steps
    assert "logits" in run.model.output and run.config.train.stage == "joint"
    for loaded, expected in zip(run.model.weights, trained, strict=True):
        np.testing.assert_array_equal(loaded.numpy(), expected)


@pytest.mark.slow
def test_a_checkpoint_prefix_loads_that_checkpoint(joint_run):
    model_dir, _ = joint_run
    earlier = resolve_checkpoint(model_dir).replace("ckpt-6", "ckpt-5")
    assert load_run(earlier).checkpoint == earlier
    assert load_run(model_dir, best=True).checkpoint.startswith(str(model_dir / "best"))


@pytest.mark.slow
def test_what_cannot_be_loaded_is_named(joint_run, tmp_path):
    model_dir, _ = joint_run
    with pytest.raises(RunError, match="no config.yaml"):
        load_run(tmp_path)
    with pytest.raises(RunError, match="ckpt-99.index"):
        load_run(model_dir / "checkpoints" / "ckpt-99")


def test_run_options_name_one_source(tmp_path):
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)

    def source(*argv, required=True):
        return run_source(parser.parse_args([str(a) for a in argv]), required=required)

    run = tmp_path / "joint"
    prefix = run / "best" / "ckpt-3"
    assert source("--model-dir", run, "--best") == run
    assert source("--checkpoint", prefix) == str(prefix)
    assert source("--model-dir", run, "--checkpoint", prefix) == str(prefix)
    assert source(required=False) is None
    for argv, message in [
        ((), "pass --model-dir DIR"),
        (("--checkpoint", prefix, "--best"), "--best picks a model dir's best/ checkpoint"),
        (
            ("--model-dir", tmp_path / "other", "--checkpoint", prefix),
            "is not a checkpoint of --model-dir",
        ),
    ]:
        with pytest.raises(RunError, match=message):
            source(*argv)
