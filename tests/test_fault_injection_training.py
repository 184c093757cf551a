"""kill -9 of train.py at random moments (seeded), each followed by the same command: the
run must end as one that was never interrupted, with nothing lost or duplicated."""

import csv
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dynamonet_tf.checkpoint_files import present
from dynamonet_tf.config import load_config
from dynamonet_tf.training.trainer import Trainer
from tiny_run import tiny_overrides, write_tiny_data

REPO = Path(__file__).resolve().parents[1]
EPOCHS, STEPS = 2, 6
KILLS = 3


def overrides(data):
    # tiny_run's run, longer, with a save at every step: kills land in saves too.
    return [
        *tiny_overrides(data),
        f"train.epochs={EPOCHS}",
        f"train.steps_per_epoch={STEPS}",
        "train.checkpoint_every_steps=1",
    ]


def newest_step(run):
    prefixes = present(run / "checkpoints")
    return int(prefixes[-1].name.split("-")[1]) if prefixes else 0


def log_rows(run):
    with (run / "log.csv").open() as file:
        # Throughput depends on the moment; everything else must not.
        return [
            {k: v for k, v in row.items() if k != "clips_per_second"}
            for row in csv.DictReader(file)
        ]


@pytest.mark.slow
def test_train_killed_at_random_moments_ends_as_an_uninterrupted_run(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_tiny_data(data)
    run = tmp_path / "run"
    command = [sys.executable, str(REPO / "train.py"), "--stage", "pretrain"]
    command += ["--model-dir", str(run)]
    for override in overrides(data):
        command += ["--set", override]
    moments = random.Random(13)
    interrupted = 0
    for _ in range(KILLS):
        before = newest_step(run)
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path
        )
        # Wait for this attempt to make progress (a new checkpoint), then kill it at a
        # random moment of the next ~1.5 s: inside a step, a save or an epoch's evaluation.
        deadline = time.time() + 240
        while process.poll() is None and newest_step(run) <= before and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(moments.uniform(0.0, 1.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            interrupted += process.wait() == -signal.SIGKILL
        if (run / "report.json").exists():
            break
    assert interrupted >= 2, "the run finished before the kills could interrupt it"

    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert json.loads((run / "report.json").read_text())["steps"] == EPOCHS * STEPS
    # No half-written save left behind (a kill inside one leaves ckpt-<N>_temp/).
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.endswith("_temp")] == []

    reference_run = tmp_path / "reference"
    config = load_config(REPO / "configs" / "default.yaml", overrides(data))
    reference = Trainer(config, reference_run, progress=False)
    reference.train()
    # Each epoch logged once, with the sums of all its steps however often it was resumed.
    resumed_rows, reference_rows = log_rows(run), log_rows(reference_run)
    assert [row["epoch"] for row in resumed_rows] == [str(e + 1) for e in range(EPOCHS)]
    for resumed_row, reference_row in zip(resumed_rows, reference_rows):
        assert resumed_row.keys() == reference_row.keys()
        for key, value in resumed_row.items():
            assert float(value) == pytest.approx(float(reference_row[key]), rel=1e-5), key
    # The same final weights.
    final = tf.train.load_checkpoint(str(present(run / "checkpoints")[-1]))
    expected = tf.train.load_checkpoint(str(present(reference_run / "checkpoints")[-1]))
    names = [n for n in expected.get_variable_to_shape_map() if n.startswith("model/")]
    assert names
    for name in names:
        np.testing.assert_allclose(
            final.get_tensor(name), expected.get_tensor(name), rtol=1e-5, atol=1e-6
        )
