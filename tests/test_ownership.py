"""Nothing a user owns is ever destroyed (issue 13): dynamonet_tf/ownership.py, and the
commands that write folders and files (data/prepare.py, export.py, predict.py) through it."""

import os
import shutil
import types

import numpy as np
import pytest

from dynamonet_tf import export, inference
from dynamonet_tf.cli import export as export_cli
from dynamonet_tf.cli import predict as predict_cli
from dynamonet_tf.cli import prepare as prepare_cli
from dynamonet_tf.inference import RunModel
from dynamonet_tf.ownership import (
    OwnershipError,
    check_outputs_not_inputs,
    check_replaceable,
    describe,
    folder_kind,
)
from dynamonet_tf.runs import build_model
from tiny_run import tiny_config
from videos import write_video


def snapshot(folder):
    """{relative path: (bytes, mtime_ns)} of every file under ``folder``, hidden ones too."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def make_run(folder):
    """A folder with a run's markers and outputs (config.yaml, checkpoints/, best/, log.csv)."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "ckpt-2.index").write_text("weights")
    (folder / "best").mkdir()
    (folder / "config.yaml").write_text("train:\n  stage: joint\n")
    (folder / "log.csv").write_text("epoch,loss\n0,1.0\n")
    return folder


def make_export(folder):
    (folder / "assets").mkdir(parents=True)
    (folder / "assets" / "dynamonet_export.json").write_text("{}")
    (folder / "saved_model.pb").write_bytes(b"graph")
    return folder


# ---------------------------------------------------------------------------------------------
# ownership.py


def test_folder_kind_names_each_kind_by_its_marker(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    (tmp_path / "file.txt").write_text("mine")
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared" / "manifest.json").write_text("{}")
    (tmp_path / "preparing" / ".progress").mkdir(parents=True)
    (tmp_path / "preparing" / ".progress" / "plan.json").write_text("{}")
    (tmp_path / "checkpoints_only" / "checkpoints").mkdir(parents=True)
    expected = {
        "missing": "missing",
        "empty": "empty",
        "other": "other",
        "file.txt": "file",
        "prepared": "prepared",
        "preparing": "prepared",
        "checkpoints_only": "run",
    }
    assert folder_kind(make_run(tmp_path / "run")) == "run"
    assert folder_kind(make_export(tmp_path / "export")) == "export"
    assert {name: folder_kind(tmp_path / name) for name in expected} == expected
    assert describe(tmp_path / "run") == "a training run (config.yaml, checkpoints/)"
    assert describe(tmp_path / "other") == "1 entry (notes.txt)"


def test_check_replaceable_replaces_only_its_own_kind_and_only_when_asked(tmp_path):
    make_export(tmp_path / "export")
    make_run(tmp_path / "run")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("mine")
    (tmp_path / "file").write_text("mine")
    (tmp_path / "empty").mkdir()
    assert check_replaceable(tmp_path / "missing", "export", False) == "missing"
    assert check_replaceable(tmp_path / "empty", "export", False) == "empty"
    assert check_replaceable(tmp_path / "export", "export", True) == "export"
    refusals = {
        ("export", False): "already holds an export .*pass --overwrite to replace it",
        ("run", True): r"holds a training run \(config.yaml, checkpoints/\), not an export; "
        r"it is never replaced \(not even with --overwrite\)",
        ("other", True): r"holds 1 entry \(a.txt\) and no assets/dynamonet_export.json, not an "
        "export",
        ("file", True): "is a file, not a folder",
    }
    for (name, overwrite), message in refusals.items():
        with pytest.raises(OwnershipError, match=message) as error:
            check_replaceable(tmp_path / name, "export", overwrite)
        assert "\n" not in str(error.value) and str(tmp_path / name) in str(error.value)
    assert isinstance(error.value, ValueError)


def test_check_outputs_not_inputs_sees_through_symlinks_and_folders(tmp_path):
    video = tmp_path / "videos" / "walk.mp4"
    video.parent.mkdir()
    video.write_bytes(b"video")
    (tmp_path / "link.mp4").symlink_to(video)
    os.link(video, tmp_path / "hard.mp4")
    check_outputs_not_inputs([tmp_path / "out.mp4", tmp_path / "videos" / "sub"], [video])
    check_outputs_not_inputs([None], [video, None])
    cases = {
        video: "is the input",
        tmp_path / "videos" / ".." / "videos" / "walk.mp4": "is the input",
        tmp_path / "link.mp4": "is the input",
        tmp_path / "hard.mp4": "is the input",
        tmp_path / "videos": "contains the input",
        tmp_path: "contains the input",
    }
    for output, message in cases.items():
        with pytest.raises(OwnershipError, match=message) as error:
            check_outputs_not_inputs([("--frames-out", output)], [("video", video)])
        assert str(error.value).startswith(f"--frames-out {output} ")
        assert f"video {video}" in str(error.value) and "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------------
# 1. data/prepare.py --out


@pytest.fixture
def videos(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    for i in range(3):
        write_video(root / f"v{i}.avi", 4, height=24, width=32)
    return root


def prepare_main(videos, out, *options):
    prepare_cli.main(
        ["folder", "--video-root", str(videos), "--out", str(out), "--workers", "0", *options]
    )


def prepare_refused(videos, out, *options):
    with pytest.raises(SystemExit) as exit_info:
        prepare_main(videos, out, *options)
    message = str(exit_info.value)
    assert message.startswith(f"error: --out {out} ") or message.startswith(f"error: {out} ")
    assert "\n" not in message
    return message


def copied_without_hidden_folders(source, target):
    """``cp source/* target``: the files, not .progress/."""
    target.mkdir()
    for path in source.iterdir():
        if not path.name.startswith("."):
            shutil.copy2(path, target / path.name)
    return target


def test_prepare_reuses_a_copied_preparation_of_the_same_plan(tmp_path, videos):
    prepare_main(videos, tmp_path / "prepared", "--short-side", "16")
    copy = copied_without_hidden_folders(tmp_path / "prepared", tmp_path / "copy")
    before = snapshot(copy)
    assert any(name.endswith(".tfrecord") for name in before)

    prepare_main(videos, copy, "--short-side", "16")
    assert snapshot(copy) == before  # nothing deleted or rewritten


def test_prepare_replaces_a_copied_preparation_of_another_plan_only_with_overwrite(
    tmp_path, videos
):
    prepare_main(videos, tmp_path / "prepared", "--short-side", "16")
    copy = copied_without_hidden_folders(tmp_path / "prepared", tmp_path / "copy")
    before = snapshot(copy)
    message = prepare_refused(videos, copy, "--short-side", "20")
    assert "holds a preparation with other options" in message and "--overwrite" in message
    assert snapshot(copy) == before

    prepare_main(videos, copy, "--short-side", "20", "--overwrite")
    manifest = (copy / "manifest.json").read_text()
    assert '"short_side": 20' in manifest


def test_prepare_refuses_files_that_are_not_prepared_data_even_with_overwrite(tmp_path, videos):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train-00000-of-00001.tfrecord").write_bytes(b"my own records")
    (mine / "failures.json").write_text("[]")
    (mine / "notes.txt").write_text("mine")
    before = snapshot(mine)
    for options in ((), ("--overwrite",)):
        message = prepare_refused(videos, mine, *options)
        assert "3 entries (failures.json, notes.txt, train-00000-of-00001.tfrecord)" in message
        assert "not prepared data" in message
        assert snapshot(mine) == before


def test_prepare_refuses_prepared_data_beside_other_files(tmp_path, videos):
    prepare_main(videos, tmp_path / "prepared", "--short-side", "16")
    (tmp_path / "prepared" / "notes.txt").write_text("mine")
    before = snapshot(tmp_path / "prepared")
    for options in (("--short-side", "16"), ("--short-side", "20", "--overwrite")):
        message = prepare_refused(videos, tmp_path / "prepared", *options)
        assert "holds prepared data and 1 other entries (notes.txt)" in message
        assert snapshot(tmp_path / "prepared") == before


def test_prepare_refuses_a_run_folder(tmp_path, videos):
    run = make_run(tmp_path / "run")
    (run / "train-00000-of-00001.tfrecord").write_bytes(b"a run's own data")
    before = snapshot(run)
    message = prepare_refused(videos, run, "--overwrite")
    assert "holds a training run (config.yaml, checkpoints/), not prepared data" in message
    assert snapshot(run) == before


# ---------------------------------------------------------------------------------------------
# 2. export.py --out


@pytest.fixture
def stub_run(tmp_path, monkeypatch):
    """A run folder, and export.py's load_run answering with a tiny untrained pretrain model
    (the run on disk holds only the markers and files a run has: training one is slow)."""
    run = make_run(tmp_path / "runs" / "pretrain")
    config = tiny_config(tmp_path / "no_data", "pretrain")

    def load_run(source, best=False):
        return types.SimpleNamespace(
            model=build_model(config), config=config, checkpoint=f"{source}/checkpoints/ckpt-2"
        )

    monkeypatch.setattr(export_cli, "load_run", load_run)
    return run


def export_refused(*arguments):
    with pytest.raises(SystemExit) as exit_info:
        export_cli.main([str(argument) for argument in arguments])
    message = str(exit_info.value)
    assert message.startswith("error: --out ") and "\n" not in message
    return message


def test_export_overwrite_never_replaces_the_run_it_exports(tmp_path, stub_run):
    before = snapshot(stub_run)
    message = export_refused("--model-dir", stub_run, "--out", stub_run, "--overwrite")
    assert f"--out {stub_run} is the input --model-dir {stub_run}" in message
    checkpoint = stub_run / "checkpoints" / "ckpt-2"
    message = export_refused("--checkpoint", checkpoint, "--out", stub_run, "--overwrite")
    assert f"is the input the run of --checkpoint {stub_run}" in message
    message = export_refused("--model-dir", stub_run, "--out", stub_run.parent, "--overwrite")
    assert "contains the input --model-dir" in message
    assert snapshot(stub_run) == before


def test_export_overwrite_replaces_only_an_export(tmp_path, stub_run):
    other_run = make_run(tmp_path / "other_run")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    (tmp_path / "file").write_text("mine")
    before = {path: snapshot(path) for path in (other_run, mine)}
    message = export_refused("--model-dir", stub_run, "--out", other_run, "--overwrite")
    assert "holds a training run (config.yaml, checkpoints/), not an export" in message
    message = export_refused("--model-dir", stub_run, "--out", mine, "--overwrite")
    assert "holds 1 entry (notes.txt)" in message and "not an export" in message
    message = export_refused("--model-dir", stub_run, "--out", tmp_path / "file", "--overwrite")
    assert "is a file, not a folder" in message and "pass --overwrite" not in message
    assert (tmp_path / "file").read_text() == "mine"
    assert {path: snapshot(path) for path in before} == before

    # The library refuses them too, whatever its caller.
    model = build_model(tiny_config(tmp_path / "no_data", "pretrain"))
    for folder in (other_run, mine):
        with pytest.raises(FileExistsError, match="never replaced"):
            export.export_saved_model(model, folder, crop_size=32, short_side=32, overwrite=True)
    assert {path: snapshot(path) for path in before} == before


# ---------------------------------------------------------------------------------------------
# 3. predict.py --frames-out


@pytest.fixture
def stub_model(tmp_path, monkeypatch):
    """predict.py's load_model answering with a tiny untrained pretrain model."""
    config = tiny_config(tmp_path / "no_data", "pretrain")
    run = types.SimpleNamespace(model=build_model(config), config=config, checkpoint="stub")
    monkeypatch.setattr(predict_cli, "load_model", lambda args: RunModel(run))


def predict_refused(*arguments):
    with pytest.raises(SystemExit) as exit_info:
        predict_cli.main([str(argument) for argument in arguments])
    message = str(exit_info.value)
    assert message.startswith("error: --frames-out ") and "\n" not in message
    return message


def test_predict_never_writes_frames_over_an_input(tmp_path, stub_model):
    walk = tmp_path / "walk.mp4"
    write_video(walk, 9, height=32, width=40)
    (tmp_path / "link.mp4").symlink_to(walk)
    other = tmp_path / "out-walk.mp4"
    shutil.copy(walk, other)
    before = snapshot(tmp_path)
    message = predict_refused(walk, "--model-dir", "x", "--frames-out", walk)
    assert message == (
        f"error: --frames-out {walk} is the input video {walk}; writing it would destroy the "
        "input: choose another output path."
    )
    message = predict_refused(walk, "--model-dir", "x", "--frames-out", tmp_path / "link.mp4")
    assert f"is the input video {walk}" in message
    # Several videos: --frames-out out.mp4 names the outputs out-walk.mp4 and out-out-walk.mp4.
    message = predict_refused(walk, other, "--model-dir", "x", "--frames-out", tmp_path / "out.mp4")
    assert f"--frames-out {other} is the input video {other}" in message
    assert snapshot(tmp_path) == before

    predict_cli.main([str(walk), "--model-dir", "x", "--frames-out", str(tmp_path / "f.gif")])
    assert (tmp_path / "f.gif").exists() and snapshot(tmp_path).items() >= before.items()


def test_write_frames_replaces_a_file_only_when_complete(tmp_path, monkeypatch):
    path = tmp_path / "frames.mp4"
    path.write_bytes(b"an earlier video")
    frames = np.zeros((3, 8, 8, 3), np.float32)

    def write_until_the_disk_fills(target, pairs, fps):
        target.write_bytes(b"half a video")
        raise OSError("No space left on device")

    monkeypatch.setattr(inference, "_write_mp4", write_until_the_disk_fills)
    with pytest.raises(inference.InferenceError, match="No space left"):
        inference.write_frames(path, frames, frames)
    assert [p.name for p in tmp_path.iterdir()] == ["frames.mp4"]
    assert path.read_bytes() == b"an earlier video"


def test_a_run_is_never_written_into_prepared_data_or_an_export(tmp_path):
    from dynamonet_tf.config import ExperimentConfig
    from dynamonet_tf.layout import run_layout
    from dynamonet_tf.training.run_files import RunFolderError, claim_run_folder

    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "manifest.json").write_text("{}")
    (prepared / "train-00000-of-00001.tfrecord").write_bytes(b"records")
    before = sorted(p.name for p in prepared.iterdir())
    for overwrite in (False, True):
        with pytest.raises(RunFolderError, match=r"holds prepared data \(manifest.json\)"):
            claim_run_folder(run_layout(prepared), ExperimentConfig(), overwrite=overwrite)
    assert sorted(p.name for p in prepared.iterdir()) == before  # not even a lock file
