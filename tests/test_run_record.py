"""A run folder explains itself: run.json (its sessions), train.log (what the terminal showed,
without progress bars) and one numbering of checkpoints/ and best/ by optimizer step."""

import contextlib
import csv
import datetime
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import keras
import pytest
import tensorflow as tf

from dynamonet_tf.checkpoint_files import newest_first, present
from dynamonet_tf.layout import run_layout
from dynamonet_tf.runs import load_run
from dynamonet_tf.training import run_record
from dynamonet_tf.training.run_record import RunSession, git_state, tee_to_log
from dynamonet_tf.training.trainer import Trainer, TrainingError
from tiny_run import tiny_config, write_tiny_data

CHECKOUT = Path(__file__).resolve().parents[1]
COMMAND = ["train.py", "--stage", "pretrain", "--set", "train.epochs=2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """A finished tiny pretrain run (2 epochs of 3 steps) with its progress bars on, and
    what it printed."""
    root = tmp_path_factory.mktemp("finished") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        Trainer(tiny_config(data), root, command=COMMAND).train()
    return root, printed.getvalue()


def record_of(root):
    return json.loads((root / "run.json").read_text())


def log_rows(root):
    with (root / "log.csv").open() as file:
        return list(csv.DictReader(file))


def parse_time(text):
    time = datetime.datetime.fromisoformat(text)
    assert time.tzinfo is not None, text
    return time


def interrupt_at(trainer, step, error=KeyboardInterrupt):
    """Makes ``trainer`` raise ``error`` before it trains past optimizer step ``step``."""
    train_step = trainer._train_step

    def interrupted(iterator):
        if int(trainer.optimizer.iterations.numpy()) == step:
            raise error
        return train_step(iterator)

    trainer._train_step = interrupted


# ----------------------------------------------------------------------------- run.json


def test_run_json_records_a_finished_run(finished):
    root, _ = finished
    record = record_of(root)
    assert record["stage"] == "pretrain"
    assert record["model_dir"] == str(root.absolute())
    assert record["status"] == "finished"
    (session,) = record["sessions"]
    assert session["status"] == "finished" and session["error"] is None
    assert session["command"] == COMMAND
    start, end = parse_time(session["start"]), parse_time(session["end"])
    assert start <= end
    assert record["start"] == session["start"] and record["end"] == session["end"]
    assert (session["start_step"], session["end_step"]) == (0, 6)
    assert session["resumed_from"] is None and session["initialised_from"] is None
    assert isinstance(session["host"], str) and session["host"]
    assert isinstance(session["pid"], int) and isinstance(session["cwd"], str)
    versions = session["versions"]
    assert versions["tensorflow"] == tf.__version__ and versions["keras"] == keras.__version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert versions["tf_models_official"] is None or isinstance(versions["tf_models_official"], str)
    assert session["devices"] and all(
        set(device) == {"name", "type"} and all(isinstance(v, str) for v in device.values())
        for device in session["devices"]
    )
    assert {d["name"] for d in session["devices"]} == {
        d.name for d in tf.config.list_logical_devices()
    }
    assert session["replicas"] == 1 and isinstance(session["strategy"], str)


def test_the_git_commit_is_the_checkouts(finished):
    root, _ = finished
    git = record_of(root)["sessions"][0]["git"]
    head = subprocess.run(
        ["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert git["commit"] == head
    assert isinstance(git["dirty"], bool)


def test_git_state_is_null_outside_a_checkout_and_follows_its_changes(tmp_path, monkeypatch):
    package = tmp_path / "repo" / "package"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    assert git_state(tmp_path) == {"commit": None, "dirty": None}

    def git(*arguments):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *arguments],
            cwd=package.parent,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    # A package inside a checkout that does not track it (an installed copy): unknown.
    assert git_state(package) == {"commit": None, "dirty": None}
    git("add", "package/__init__.py")
    git("commit", "-q", "-m", "package")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=package, capture_output=True, text=True
    ).stdout.strip()
    assert git_state(package) == {"commit": head, "dirty": False}
    (package / "notes.txt").write_text("untracked files do not make it dirty")
    assert git_state(package) == {"commit": head, "dirty": False}
    (package / "__init__.py").write_text("x = 1\n")
    assert git_state(package) == {"commit": head, "dirty": True}
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    assert git_state(package) == {"commit": None, "dirty": None}


def test_the_command_defaults_to_sys_argv_and_a_trainer_closed_untrained_says_so(
    data, tmp_path, monkeypatch
):
    monkeypatch.setattr(sys, "argv", ["somewhere/train.py", "--model-dir", "x"])
    Trainer(tiny_config(data), tmp_path / "run", progress=False).close()
    (session,) = record_of(tmp_path / "run")["sessions"]
    assert session["command"] == ["somewhere/train.py", "--model-dir", "x"]
    assert session["status"] == "closed"
    assert parse_time(session["start"]) <= parse_time(session["end"])


def test_a_resumed_run_appends_a_session_and_keeps_the_first(data, tmp_path):
    root = tmp_path / "run"
    trainer = Trainer(tiny_config(data), root, progress=False, command=["first"])
    interrupt_at(trainer, 4)  # in epoch 2; checkpoints/ckpt-3 ended epoch 1
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    first = record_of(root)
    assert first["status"] == "interrupted" and first["end"] is not None
    (interrupted,) = first["sessions"]
    assert interrupted["status"] == "interrupted" and interrupted["end_step"] == 4
    assert interrupted["error"] == "KeyboardInterrupt"
    assert parse_time(interrupted["start"]) <= parse_time(interrupted["end"])

    Trainer(tiny_config(data), root, progress=False, command=["second"]).train()
    record = record_of(root)
    assert record["sessions"][0] == interrupted
    second = record["sessions"][1]
    assert second["command"] == ["second"] and second["status"] == "finished"
    assert second["resumed_from"] == "checkpoints/ckpt-3" and second["start_step"] == 3
    assert (record["start"], record["end"]) == (interrupted["start"], second["end"])
    assert record["status"] == "finished"
    assert parse_time(second["start"]) >= parse_time(interrupted["end"])
    log = (root / "train.log").read_text()
    assert log.index("=== session 1 started") < log.index("=== session 1 interrupted")
    assert log.index("=== session 1 interrupted") < log.index("=== session 2 started")
    assert "resuming from checkpoints/ckpt-3: step 3, epoch 2 of 2" in log
    assert log.count("epoch 1/2 (step 3)") == 1 and log.count("epoch 2/2 (step 6)") == 1


def test_a_failing_run_records_failed_with_its_error(data, tmp_path):
    root = tmp_path / "run"
    trainer = Trainer(tiny_config(data), root, progress=False)
    interrupt_at(trainer, 2, TrainingError("the loss became nan (injected)"))
    with pytest.raises(TrainingError):
        trainer.train()
    record = record_of(root)
    (session,) = record["sessions"]
    assert record["status"] == session["status"] == "failed"
    assert session["error"] == "TrainingError: the loss became nan (injected)"
    assert session["end_step"] == 2 and parse_time(session["start"]) <= parse_time(session["end"])
    assert "=== session 1 failed" in (root / "train.log").read_text()


def test_a_trainer_that_cannot_start_records_failed(data, tmp_path):
    root = tmp_path / "run"
    (root / "checkpoints").mkdir(parents=True)
    for name in ("ckpt-1.index", "ckpt-1.data-00000-of-00001"):
        (root / "checkpoints" / name).write_bytes(b"")
    with pytest.raises(TrainingError, match="can be read"):
        Trainer(tiny_config(data), root, progress=False)
    (session,) = record_of(root)["sessions"]
    assert session["status"] == "failed" and "can be read" in session["error"]
    assert session["end"] is not None


def test_a_session_left_running_is_marked_killed_by_the_next(data, tmp_path):
    root = tmp_path / "run"
    Trainer(tiny_config(data), root, progress=False).close()
    record = record_of(root)
    record["sessions"][0].update(status="running", end=None)  # as kill -9 leaves it
    (root / "run.json").write_text(json.dumps(record))
    Trainer(tiny_config(data), root, progress=False).close()
    statuses = [s["status"] for s in record_of(root)["sessions"]]
    assert statuses == ["killed", "closed"]


def test_overwrite_removes_the_replaced_runs_record_and_log(data, tmp_path):
    root = tmp_path / "run"
    Trainer(tiny_config(data), root, progress=False, command=["old"]).close()
    Trainer(
        tiny_config(data, "pretrain", "train.seed=7"),
        root,
        progress=False,
        overwrite=True,
        command=["new"],
    ).close()
    assert [s["command"] for s in record_of(root)["sessions"]] == [["new"]]
    log = (root / "train.log").read_text()
    assert "command: new" in log and "command: old" not in log


# ---------------------------------------------------------------------------- train.log


def test_train_log_holds_the_epoch_lines_printed_without_progress_bars(finished):
    root, printed = finished
    assert "\r" in printed or "\b" in printed  # the bars were on the terminal
    log = (root / "train.log").read_text()
    assert "\r" not in log and "\b" not in log and "━" not in log
    for line in ("epoch 1/2 (step 3): loss ", "epoch 2/2 (step 6): loss "):
        assert line in printed and line in log
    lines = log.splitlines()
    assert lines[0].startswith("=== session 1 started ") and lines[1] == (
        "command: " + " ".join(COMMAND)
    )
    assert lines[-1].startswith("=== session 1 finished ")
    epoch_lines = [line for line in printed.splitlines() if line.startswith("epoch ")]
    assert epoch_lines == [line for line in lines if line.startswith("epoch ")]


def test_a_tee_logs_lines_once_after_the_claim_and_drops_bars(tmp_path, capsys):
    run = run_layout(tmp_path / "run")
    run.root.mkdir()
    with tee_to_log(run.train_log):
        print("before the claim")
        sys.stderr.write("a warning\n")
        sys.stdout.write("\b\b\r1/3 bar")
        sys.stdout.write("\b\b\r3/3 bar\n")
        sys.stdout.write("\r 50%|#####     |")  # tqdm: the bar, then a lone newline
        sys.stdout.write("\r100%|##########|")
        sys.stdout.write("\n")
        assert not run.train_log.exists()  # the folder is not claimed yet
        session = RunSession(
            run, stage="pretrain", command=["train.py"], strategy=tf.distribute.get_strategy()
        )
        with tee_to_log(run.train_log), session.tee():  # nested: each line once
            print("inside")
            session.say("said")
        session.end()
        print("after the session: the report")
        sys.stdout.write("unfinished line")
    lines = run.train_log.read_text().splitlines()
    assert lines[0].startswith("=== session 1 started") and lines[1] == "command: train.py"
    assert lines[2:6] == ["before the claim", "a warning", "inside", "said"]
    assert lines[6].startswith("=== session 1 finished")
    assert lines[7:] == ["after the session: the report", "unfinished line"]
    assert sys.stdout is not None and not isinstance(sys.stdout, run_record._TeeStream)
    assert "3/3 bar" in capsys.readouterr().out  # the terminal still shows everything


def test_a_tee_of_a_folder_never_claimed_writes_nothing(tmp_path):
    log = tmp_path / "refused" / "train.log"
    with tee_to_log(log):
        print("error: the folder holds another run")
    assert not log.parent.exists()


# -------------------------------------------------------------------- checkpoint numbers


def test_best_is_numbered_by_the_step_of_its_validation(finished):
    root, _ = finished
    rows = log_rows(root)
    best = json.loads((root / "best" / "best.json").read_text())
    row = next(r for r in rows if int(r["epoch"]) == best["epoch"])
    assert best["step"] == int(row["step"]) and best["checkpoint"] == f"ckpt-{best['step']}"
    assert best["val_loss"] == pytest.approx(float(row["val_loss"]))
    assert best["val_loss"] == pytest.approx(min(float(r["val_loss"]) for r in rows))
    assert [p.name for p in present(root / "best")] == [best["checkpoint"]]
    assert load_run(root, best=True).checkpoint == str(root / "best" / best["checkpoint"])


def test_checkpoints_record_their_epochs(finished):
    root, _ = finished
    steps = json.loads((root / "checkpoints" / "steps.json").read_text())
    assert list(steps) == [p.name for p in present(root / "checkpoints")]
    ends = {int(r["step"]): int(r["epoch"]) for r in log_rows(root)}
    assert steps == {
        "ckpt-3": {"step": 3, "epoch": 1, "epoch_complete": True},
        "ckpt-5": {"step": 5, "epoch": 2, "epoch_complete": False},
        "ckpt-6": {"step": 6, "epoch": 2, "epoch_complete": True},
    }
    for entry in steps.values():
        assert (ends.get(entry["step"]) == entry["epoch"]) == entry["epoch_complete"]


def test_an_old_run_with_best_numbered_by_epoch_loads_and_resumes(data, tmp_path):
    root = tmp_path / "run"
    trainer = Trainer(tiny_config(data), root, progress=False)
    interrupt_at(trainer, 4)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    # As a run made before: best/ numbered by epoch from 0, without best.json.
    old_best = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=trainer.model), root / "best", max_to_keep=1
    )
    old_best.save(checkpoint_number=0)
    (root / "best" / "best.json").unlink()
    assert [p.name for p in present(root / "best")] == ["ckpt-0"]
    assert load_run(root, best=True).checkpoint == str(root / "best" / "ckpt-0")

    resumed = Trainer(tiny_config(data), root, progress=False)
    resumed.best_val_loss.assign(math.inf)  # epoch 2 is then the best
    resumed.train()
    assert [p.name for p in newest_first(root / "best")] == ["ckpt-6"]
    assert load_run(root, best=True).checkpoint == str(root / "best" / "ckpt-6")
    best = json.loads((root / "best" / "best.json").read_text())
    assert (best["checkpoint"], best["step"], best["epoch"]) == ("ckpt-6", 6, 2)
