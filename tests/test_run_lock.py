"""One writer per run folder (issue 13): a second process on a run folder is refused, naming
the holder; the kernel frees the folder when the holder dies, even by SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import types

import pytest
import tensorflow as tf

from dynamonet_tf.config import save_config
from dynamonet_tf.evaluation import EvaluationError
from dynamonet_tf.evaluation.splits import SplitPlan, evaluate_split
from dynamonet_tf.layout import run_layout
from dynamonet_tf.run_lock import RunFolderInUse, held_by, lock_run_folder
from dynamonet_tf.training.trainer import Trainer, TrainingError
from tiny_run import tiny_config, write_tiny_data

# Another process (train.py's stand-in): claims the folder, says so, sleeps until killed.
HOLD = (
    "import sys, time\n"
    "from dynamonet_tf.run_lock import lock_run_folder\n"
    "lock_run_folder(sys.argv[1])\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def holder():
    """``hold(folder)``: a process (PYTHONPATH as tests/conftest.py sets) that holds
    ``folder``; killed at the end of the test."""
    started = []

    def hold(folder):
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        line = process.stdout.readline()
        assert line.strip() == "locked", process.stderr.read()
        return process

    yield hold
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_second_process_is_refused_naming_the_holder(holder, tmp_path):
    run = tmp_path / "run"
    process = holder(run)
    with pytest.raises(RunFolderInUse) as refused:
        lock_run_folder(run)
    message = str(refused.value)
    assert f"in use by process {process.pid} (" in message
    assert "python" in message and "-c" in message and "on host " in message
    assert message.endswith("wait for it to finish or use another --model-dir.")
    assert "\n" not in message
    assert held_by(run)["pid"] == process.pid


def test_a_trainer_on_a_folder_in_use_refuses_before_touching_it(holder, tmp_path):
    run = tmp_path / "run"
    process = holder(run)
    (run / "log.csv").write_text("the other run's\n")
    # Real data: the data are checked first, then the folder's lock.
    config = tiny_config(write_tiny_data(tmp_path), "pretrain", "train.epochs=1")
    # --overwrite would delete the other run's outputs; the lock comes first.
    with pytest.raises(TrainingError, match=rf"^{run} is in use by process {process.pid} \("):
        Trainer(config, run, overwrite=True, progress=False)
    assert not run_layout(run).config.exists()
    assert (run / "log.csv").read_text() == "the other run's\n"


def test_a_killed_holder_leaves_no_stale_lock(holder, tmp_path):
    run = tmp_path / "run"
    process = holder(run)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert held_by(run) is None
    with lock_run_folder(run) as lock:
        assert json.loads(run_layout(run).lock.read_text())["pid"] == os.getpid()
        assert held_by(run)["pid"] == os.getpid()
    assert not lock.held and held_by(run) is None


def test_claims_of_one_process_nest_and_release(tmp_path):
    run = tmp_path / "run"
    first = lock_run_folder(run)
    second = lock_run_folder(run)  # the same process: given again
    first.release()
    assert held_by(run)["pid"] == os.getpid()
    second.release()
    second.release()  # twice is harmless
    assert held_by(run) is None
    free = subprocess.run(
        [sys.executable, "-c", HOLD.replace("time.sleep(600)", "pass"), str(run)],
        capture_output=True,
        text=True,
    )
    assert free.returncode == 0 and free.stdout.strip() == "locked", free.stderr


class _NonChiefWorker:
    """The default strategy, seen as worker ``task_id`` of a multi-worker cluster."""

    def __init__(self, task_id):
        self.cluster_resolver = types.SimpleNamespace(task_type="worker", task_id=task_id)
        self._strategy = tf.distribute.get_strategy()

    def __getattr__(self, name):
        return getattr(self._strategy, name)


def test_trainer_holds_its_folder_until_closed_and_workers_lock_their_own(holder, tmp_path):
    run = tmp_path / "run"
    config = tiny_config(write_tiny_data(tmp_path), "pretrain", "train.epochs=1")
    chief = holder(run)  # the chief (worker 0) holds the run's folder
    with Trainer(config, run, strategy=_NonChiefWorker(1), progress=False) as worker:
        assert worker.model_dir == run / "workers" / "1"
        assert held_by(worker.model_dir)["pid"] == os.getpid()
        assert held_by(run)["pid"] == chief.pid
    assert held_by(worker.model_dir) is None
    with pytest.raises(TrainingError, match="make a new Trainer"):
        worker.train()


def test_evaluating_a_run_in_use_is_refused_naming_the_holder(holder, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_config(tiny_config(tmp_path / "no_data", "joint"), run_layout(run).config)
    process = holder(run)
    plan = SplitPlan(split=1, source=run, is_checkpoint=False)
    with pytest.raises(EvaluationError, match=rf"in use by process {process.pid} .*--out\.$"):
        evaluate_split(plan, "demo", progress=False)
    assert not run_layout(run).eval_dir("demo", 1).exists()


@pytest.mark.slow
def test_train_ends_by_releasing_its_folder(tmp_path):

    data = tmp_path / "data"
    data.mkdir()
    write_tiny_data(data)
    config = tiny_config(data, "pretrain", "train.epochs=1", "train.steps_per_epoch=1")
    trainer = Trainer(config, tmp_path / "run", progress=False)
    assert held_by(tmp_path / "run")["pid"] == os.getpid()
    trainer.train()
    assert held_by(tmp_path / "run") is None


def test_frame_prediction_results_are_not_written_into_a_run_in_use(holder, tmp_path):
    from dynamonet_tf.frame_prediction import FramePredictionError, evaluate_run
    from dynamonet_tf.runs import LoadedRun

    run = tmp_path / "run"
    process = holder(run)
    loaded = LoadedRun(config=None, model=None, checkpoint="ckpt-1", model_dir=run)
    with pytest.raises(FramePredictionError) as error:
        evaluate_run(loaded)  # the default out_dir: <run>/frame_prediction
    assert f"in use by process {process.pid} (" in str(error.value) and "--out" in str(error.value)
    assert not (run / "frame_prediction").exists()
