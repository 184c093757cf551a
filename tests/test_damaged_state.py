"""Damage a run folder the way crashes, full disks and careless copies do, and check that
every command survives it and says so (dynamonet_tf.checkpoint_files): never a silent
restart from step 0, never a traceback naming nothing, never a file deleted."""

import csv
import errno
import shutil

import numpy as np
import pytest
import tensorflow as tf

from dynamonet_tf.checkpoint_files import present
from dynamonet_tf.config import ConfigError, load_config
from dynamonet_tf.runs import RunError, load_run
from dynamonet_tf.training.trainer import Trainer, TrainingError
from tiny_run import tiny_config, write_tiny_data

# tiny_config: 2 epochs of 3 steps, a checkpoint every 2 steps and at each epoch's end, so
# checkpoints/ keeps ckpt-3, ckpt-5 and ckpt-6 (the last three).
FINAL_STEP = 6


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """A finished tiny pretrain run and its final weights."""
    root = tmp_path_factory.mktemp("finished") / "run"
    trainer = Trainer(tiny_config(data), root, progress=False)
    trainer.train()
    return root, [w.numpy().copy() for w in trainer.model.weights]


@pytest.fixture
def run(finished, tmp_path):
    """A copy of the finished run, to damage."""
    copy = tmp_path / "run"
    shutil.copytree(finished[0], copy)
    return copy


def files_of(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def resume(data, run, **options):
    trainer = Trainer(tiny_config(data), run, progress=False, **options)
    return trainer, int(trainer.optimizer.iterations.numpy())


def truncate(path, keep=100):
    path.write_bytes(path.read_bytes()[:keep])


def test_a_garbled_index_is_rebuilt_and_the_run_resumes_where_it_was(
    data, run, capsys, monkeypatch
):
    (run / "checkpoints" / "checkpoint").write_text("model_checkpoint_path: {{{")
    monkeypatch.chdir(run.parent)  # a relative --model-dir, as train.py's default runs/<stage>
    trainer, step = resume(data, "run")
    assert step == FINAL_STEP  # TensorFlow alone would see no checkpoint and start at 0
    assert "cannot be read; rebuilt it" in capsys.readouterr().out
    # Names relative to the folder, as TensorFlow writes them (the run can be moved).
    index = (run / "checkpoints" / "checkpoint").read_text()
    listed = [
        line.split('"')[1]
        for line in index.splitlines()
        if line.startswith("all_model_checkpoint_paths")
    ]
    assert listed == ["ckpt-3", "ckpt-5", "ckpt-6"]
    # And the manager keeps rotating them: two more saves leave the newest three.
    for _ in range(2):
        trainer.optimizer.iterations.assign_add(1)
        trainer._save()
    trainer.close()
    assert [p.name for p in present(run / "checkpoints")] == ["ckpt-6", "ckpt-7", "ckpt-8"]


def test_an_index_naming_deleted_files_falls_back_to_the_files_present(data, run, capsys):
    for file in (run / "checkpoints").glob("ckpt-6.*"):
        file.unlink()
    trainer, step = resume(data, run)
    trainer.close()
    assert step == 5
    assert "names checkpoints whose files are gone: ckpt-6" in capsys.readouterr().out


def test_a_truncated_newest_checkpoint_is_set_aside_and_training_ends_identically(
    data, run, finished, capsys
):
    damaged = run / "checkpoints" / "ckpt-6.data-00000-of-00001"
    truncate(damaged)
    kept = damaged.read_bytes()
    trainer, step = resume(data, run)
    out = capsys.readouterr().out
    assert step == 5
    assert f"{run / 'checkpoints' / 'ckpt-6'} cannot be read" in out
    # Kept for the user, byte for byte, out of the manager's way.
    (moved,) = (run / "checkpoints" / "damaged").rglob("ckpt-6.data-00000-of-00001")
    assert moved.read_bytes() == kept
    trainer.train()
    # Redoing step 6 from ckpt-5 gives the weights of the run that was never damaged.
    for resumed, reference in zip(trainer.model.weights, finished[1]):
        np.testing.assert_allclose(resumed.numpy(), reference, rtol=1e-5, atol=1e-6)


def test_no_readable_checkpoint_stops_naming_each_and_changes_nothing(data, run):
    for file in (run / "checkpoints").glob("*.data-*"):
        truncate(file, keep=0)
    before = files_of(run / "checkpoints")
    with pytest.raises(TrainingError) as error:
        resume(data, run)
    message = str(error.value)
    assert all(f"ckpt-{n} (" in message for n in (3, 5, 6)) and "\n" not in message
    assert files_of(run / "checkpoints") == before


def test_the_temporary_folder_of_an_interrupted_save_is_removed_and_nothing_else(data, run, capsys):
    leftover = run / "checkpoints" / "ckpt-7_temp"
    leftover.mkdir()
    (leftover / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 2_000_000)
    theirs = run / "checkpoints" / "notes_temp"  # not a name TensorFlow's save makes
    theirs.mkdir()
    trainer, step = resume(data, run)
    trainer.close()
    assert step == FINAL_STEP
    assert not leftover.exists() and theirs.is_dir()
    assert f"removed {leftover} (2.0 MB)" in capsys.readouterr().out


def test_an_emptied_config_refuses_without_offering_only_deletion(data, run):
    (run / "config.yaml").write_text("")
    before = files_of(run / "checkpoints")
    with pytest.raises(TrainingError) as error:
        resume(data, run)
    assert "config.yaml is empty" in str(error.value) and "delete it to resume" in str(error.value)
    assert files_of(run / "checkpoints") == before
    # The remedy offered works: without the file, the checkpoints resume.
    (run / "config.yaml").unlink()
    trainer, step = resume(data, run)
    trainer.close()
    assert step == FINAL_STEP


def test_evaluate_export_and_predict_load_the_newest_readable_checkpoint(run, capsys):
    truncate(run / "checkpoints" / "ckpt-6.data-00000-of-00001")
    loaded = load_run(run)
    assert loaded.checkpoint == str(run / "checkpoints" / "ckpt-5")
    assert "ckpt-6 cannot be read (Read less bytes than requested)" in capsys.readouterr().err
    # Read-only: the run is left as it was found.
    assert (run / "checkpoints" / "ckpt-6.index").exists()


def test_a_damaged_checkpoint_named_explicitly_is_refused_not_replaced(run):
    truncate(run / "checkpoints" / "ckpt-6.data-00000-of-00001")
    with pytest.raises(RunError) as error:
        load_run(run / "checkpoints" / "ckpt-6")
    assert str(error.value).startswith(f"{run / 'checkpoints' / 'ckpt-6'}: the checkpoint cannot")
    assert "ckpt-5" in str(error.value)


def test_a_damaged_best_checkpoint_is_named(run):
    (best,) = (run / "best").glob("*.data-*")
    truncate(best)
    with pytest.raises(RunError, match="no checkpoint in .*best can be read"):
        load_run(run, best=True)


def test_init_from_a_missing_path_says_it_does_not_exist(data, tmp_path):
    with pytest.raises(TrainingError) as error:
        Trainer(
            tiny_config(data, "joint"),
            tmp_path / "joint",
            init_from=tmp_path / "no" / "such" / "run",
            progress=False,
        )
    assert f"{tmp_path / 'no' / 'such' / 'run'} does not exist" in str(error.value)


def test_a_config_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    text = "train:\n  stage: pretrain  # d\xe9mo\n"
    path.write_bytes(text.encode("latin-1"))  # one byte per character: offsets agree
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        f"Config file {path} is not UTF-8 text (byte 0xe9 at offset {text.index(chr(0xE9))}); "
        "save it as UTF-8."
    )


def test_a_resumed_epoch_logs_the_same_row_as_an_uninterrupted_one(data, finished, tmp_path):
    class Killed(Exception):
        pass

    run = tmp_path / "run"
    trainer = Trainer(tiny_config(data), run, progress=False)
    save = trainer._save

    def save_then_die():
        save()
        if int(trainer.epoch.numpy()) == 1 and int(trainer.step_in_epoch.numpy()) == 2:
            raise Killed  # mid-epoch 2, just after the step-5 checkpoint

    trainer._save = save_then_die
    with pytest.raises(Killed):
        trainer.train()
    Trainer(tiny_config(data), run, progress=False).train()

    def rows(folder):
        with (folder / "log.csv").open() as file:
            return [
                {k: v for k, v in row.items() if k != "clips_per_second"}
                for row in csv.DictReader(file)
            ]

    resumed, reference = rows(run), rows(finished[0])
    assert [r["epoch"] for r in resumed] == ["1", "2"]
    for a, b in zip(resumed, reference):
        assert a.keys() == b.keys()
        for key in a:
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5), key


def test_a_full_disk_during_a_checkpoint_save_is_one_line(data, tmp_path, monkeypatch):
    from dynamonet_tf.cli import train as train_cli

    def full_disk(self, *args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None,
            None,
            # As TensorFlow says it: the op's wrapping around the path and the reason.
            "{{function_node __wrapped__SaveV2_device_/job:localhost/device:CPU:0}} "
            f"{tmp_path}/run/checkpoints/ckpt-2_temp/part-00000.tempstate123; No space left on "
            "device [Op:SaveV2] name: ",
        )

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk)
    argv = ["--config", str(tmp_path / "tiny.yaml"), "--model-dir", str(tmp_path / "run")]
    _write_tiny_preset(data, tmp_path / "tiny.yaml")
    with pytest.raises(SystemExit) as exit:
        train_cli.main(argv)
    assert str(exit.value) == (
        f"error: cannot write {tmp_path}/run/checkpoints/ckpt-2_temp/part-00000; No space left "
        "on device."
    )


def test_an_unwritable_model_dir_is_one_line(data, tmp_path, monkeypatch):
    from dynamonet_tf.cli import train as train_cli
    from dynamonet_tf.training import run_files

    def read_only(config, path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(run_files, "save_config", read_only)
    _write_tiny_preset(data, tmp_path / "tiny.yaml")
    with pytest.raises(SystemExit) as exit:
        train_cli.main(
            ["--config", str(tmp_path / "tiny.yaml"), "--model-dir", str(tmp_path / "r")]
        )
    assert str(exit.value) == (
        f"error: cannot write {tmp_path / 'r' / 'config.yaml'}: Read-only file system."
    )


def _write_tiny_preset(data, path):
    from dynamonet_tf.config import save_config

    save_config(tiny_config(data), path)


def test_a_run_trained_on_relative_paths_finds_its_label_names_from_anywhere(
    data, tmp_path, monkeypatch
):
    import json

    from dynamonet_tf.inference import run_label_names
    from dynamonet_tf.runs import load_run_config

    classes = [f"pan{i}" for i in range(8)]
    labeled = tmp_path / "prepared"
    shutil.copytree(data, labeled)
    (labeled / "manifest.json").write_text(json.dumps({"classes": classes}))
    monkeypatch.chdir(tmp_path)
    # Relative patterns, as a user types them in the folder they train from.
    Trainer(tiny_config("prepared", "joint"), tmp_path / "run", progress=False).close()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    names, source = run_label_names(load_run_config(tmp_path / "run"))
    assert names == classes
    assert str(labeled) in source


def test_a_truncated_training_shard_stops_the_run_naming_it_and_its_record(data, tmp_path, capsys):
    from dynamonet_tf.data.pipelines import list_files

    damaged = tmp_path / "data"
    shutil.copytree(data, damaged)
    (shard,) = list_files(str(damaged / "train-*.tfrecord"))
    content = open(shard, "rb").read()
    first_length = int.from_bytes(content[:8], "little")
    # Keep record 0 whole and cut record 1 in half: reading stops at byte 16 + len(record 0).
    second_start = 16 + first_length
    open(shard, "wb").write(content[: second_start + 1000])
    trainer = Trainer(tiny_config(damaged), tmp_path / "run", progress=False)
    with pytest.raises(TrainingError) as error:
        trainer.train()
    message = str(error.value)
    assert message.startswith(f"{shard}: unreadable at record 1 (byte offset {second_start})")
    assert "\n" not in message


def test_a_text_file_named_as_a_labeled_runs_shard_is_named_at_start_up(data, tmp_path):
    damaged = tmp_path / "data"
    shutil.copytree(data, damaged)
    shard = damaged / "train-00000-of-00001.tfrecord"
    shard.write_text("these are not the records you are looking for\n")
    with pytest.raises(TrainingError) as error:
        Trainer(tiny_config(damaged, "joint"), tmp_path / "run", progress=False)
    assert str(error.value).startswith(f"{shard}: unreadable at record 0 (byte offset 0)")
