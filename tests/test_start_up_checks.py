"""Every config mistake the data can reveal stops train.py at start-up: one line naming the
key and what would be valid, and no step run (the run folder is not even made)."""

import json
import shutil

import pytest

from dynamonet_tf.cli import train as train_cli
from dynamonet_tf.training.trainer import Trainer
from tiny_run import tiny_config, tiny_overrides, write_tiny_data


def manifest(dataset="ucf101", split=1, classes=8, short_side=40, median=20):
    """A manifest.json as data/prepare.py writes it, with the fields the checks read."""
    return {
        "dataset": dataset,
        "source": {"video_root": "videos", "splits": "lists", "split": split},
        "classes": [f"class{i}" for i in range(classes)],
        "options": {"short_side": short_side},
        "frames_per_video": {"min": median, "median": median, "max": median},
    }


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def prepared(tiny_data, tmp_path):
    """The tiny data as a prepared ucf101 split-1 folder (its manifest.json)."""
    folder = tmp_path / "ucf101_split1"
    shutil.copytree(tiny_data, folder)
    (folder / "manifest.json").write_text(json.dumps(manifest()))
    return folder


def refused(tmp_path, data, *overrides, stage="joint", init_from=None):
    """train.py's one-line refusal, checking that it ran no step."""
    run = tmp_path / "run"
    argv = ["--model-dir", str(run)]
    for override in [*tiny_overrides(data, stage), *overrides]:
        argv += ["--set", override]
    if init_from is not None:
        argv += ["--init-from", str(init_from)]
    with pytest.raises(SystemExit) as exit:
        train_cli.main(argv)
    message = str(exit.value.code)
    assert message.startswith("error: ") and "\n" not in message
    assert not (run / "checkpoints").exists() and not (run / "log.csv").exists()
    return message


def test_too_many_classes_is_refused_naming_the_manifests_count(prepared, tmp_path):
    message = refused(tmp_path, prepared, "data.num_classes=9")
    assert "data.num_classes is 9 but the prepared dataset has 8 classes" in message
    assert "set data.num_classes=8" in message
    assert not (tmp_path / "run").exists()


def test_too_few_classes_is_refused_before_step_one(prepared, tmp_path):
    message = refused(tmp_path, prepared, "data.num_classes=3")
    assert "data.num_classes is 3 but the prepared dataset has 8 classes" in message


def test_another_dataset_than_the_config_names_is_refused(prepared, tmp_path):
    message = refused(tmp_path, prepared, "data.dataset=hmdb51")
    assert "data.dataset is 'hmdb51' but the prepared dataset is 'ucf101'" in message
    assert "set data.dataset=ucf101" in message


def test_another_split_than_the_config_names_is_refused(prepared, tmp_path):
    message = refused(tmp_path, prepared, "data.split=2")
    assert "data.split is 2 but the data were prepared as split 1" in message


def test_test_videos_of_another_split_are_refused(prepared, tmp_path):
    other = tmp_path / "ucf101_split2"
    other.mkdir()
    shutil.copy(prepared / "test-00000-of-00001.tfrecord", other)
    (other / "manifest.json").write_text(json.dumps(manifest(split=2)))
    message = refused(tmp_path, prepared, f"data.eval_files={other}/test-*.tfrecord")
    assert f"data.eval_files '{other}/test-*.tfrecord' is ucf101 split 2" in message
    assert "data.train_files" in message and "is ucf101 split 1" in message


def test_validation_data_of_other_classes_is_refused(prepared, tmp_path):
    other = tmp_path / "relabeled"
    other.mkdir()
    shutil.copy(prepared / "holdout-00000-of-00001.tfrecord", other)
    relabeled = manifest()
    relabeled["classes"][0] = "another"
    (other / "manifest.json").write_text(json.dumps(relabeled))
    message = refused(tmp_path, prepared, f"data.val_files={other}/holdout-*.tfrecord")
    assert "data.val_files" in message and "lists other classes than data.train_files" in message


def test_clips_longer_than_the_prepared_videos_are_refused(prepared, tmp_path):
    message = refused(tmp_path, prepared, "data.num_frames=24")
    assert "data.num_frames 24 with data.frame_stride 1 needs 25 frames per clip" in message
    assert "median prepared video has 20 frames" in message


def test_a_short_side_above_the_prepared_one_is_refused(prepared, tmp_path):
    message = refused(tmp_path, prepared, "data.short_side=48")
    assert "data.short_side 48 exceeds the short side the frames were prepared at (40)" in message
    assert "at most 40" in message


def test_a_crop_larger_than_the_short_side_is_refused(prepared, tmp_path):
    message = refused(tmp_path, prepared, "data.crop_size=48", "data.short_side=40")
    assert message == "error: data.short_side must be >= data.crop_size (48); got 40."


@pytest.mark.parametrize("field", ["train_files", "val_files", "eval_files"])
def test_a_pattern_matching_nothing_is_refused_naming_its_key(prepared, tmp_path, field):
    message = refused(tmp_path, prepared, f"data.{field}={tmp_path}/none-*.tfrecord")
    assert f"data.{field} '{tmp_path}/none-*.tfrecord' matches no files" in message


def test_a_split_placeholder_without_a_split_is_refused(prepared, tmp_path):
    message = refused(tmp_path, prepared, f"data.eval_files={prepared}_{{split}}/test-*.tfrecord")
    assert "holds {split} but data.split is null" in message
    assert "--set data.split=2" in message


def test_the_split_placeholder_is_replaced_by_data_split(tiny_data):
    config = tiny_config(tiny_data, "joint", "data.split=3", "data.eval_files=p_split{split}/t")
    assert config.data.eval_files == "p_split3/t"


def test_init_from_a_run_of_another_backbone_is_refused_before_a_step(tiny_data, tmp_path):
    source = tmp_path / "pretrain"
    pretrain = Trainer(tiny_config(tiny_data, "pretrain"), source, progress=False)
    pretrain.manager.save()
    pretrain.close()
    message = refused(tmp_path, tiny_data, "model.backbone=resnet18", init_from=source)
    assert message.startswith("error: --init-from") or "--init-from" in message
    assert "backbone layers are not in the source" in message or "other shapes" in message


def test_too_few_classes_for_data_without_a_manifest_is_refused_by_the_first_label(tmp_path):
    data = write_tiny_data(tmp_path)  # no manifest.json; the first video is class 6
    message = refused(tmp_path, data, "data.num_classes=4")
    assert "data.num_classes is 4 but the first video of data.train_files" in message
    assert "has label index 6" in message
    assert not (tmp_path / "run").exists()
