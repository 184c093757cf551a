"""Data integrity where it is cheap (issue 13): evaluation compares the videos it read with the
manifest, and a shard that cannot be read is named with the record and byte offset where
reading stopped (:mod:`dynamonet_tf.data.integrity`).

Expected offsets are computed here from the TFRecord framing read with ``struct`` (8-byte
little-endian length, 4-byte CRC, data, 4-byte CRC), independently of the module, which sums
the lengths of the records ``tf.data`` yields.
"""

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

import evaluate
from dynamonet_tf.config import to_dict
from dynamonet_tf.data.integrity import (
    ShardError,
    find_damaged_shard,
    reading_shards,
    scan_shard,
)
from dynamonet_tf.data.pipelines import eval_dataset, train_dataset
from dynamonet_tf.evaluation import EvaluationError, check_videos_read, manifest_videos
from dynamonet_tf.layout import RUN_CONFIG
from dynamonet_tf.runs import build_model
from tiny_run import tiny_config, write_tiny_data

REPOSITORY = Path(__file__).resolve().parent.parent
SHARD = "test-00000-of-00001.tfrecord"
CLASSES = [f"class{i}" for i in range(8)]
ADVICE = "re-run data/prepare.py for this dataset or remove the shard"


def record_starts(path):
    """Byte offset of each record of a TFRecord file, and the file's size, from its framing."""
    data = Path(path).read_bytes()
    starts, offset = [], 0
    while offset < len(data):
        starts.append(offset)
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        offset += 8 + 4 + length + 4
    assert offset == len(data)
    return starts, len(data)


def write_manifest(folder, videos, shards=(SHARD,)):
    """A manifest as data/prepare.py writes one, for the test subset."""
    manifest = {
        "dataset": "hmdb51",
        "source": {"split": 1},
        "classes": CLASSES,
        "subsets": {"test": {"videos": videos, "shards": list(shards)}},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """write_tiny_data's folder: the test shard holds 4 videos."""
    return write_tiny_data(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="module")
def joint_run(tiny_data, tmp_path_factory):
    """An untrained joint run on the tiny data, saved as train.py leaves one."""
    config = tiny_config(tiny_data, "joint")
    model = build_model(config)
    run = tmp_path_factory.mktemp("runs") / "joint"
    run.mkdir()
    (run / RUN_CONFIG).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), run / "checkpoints", max_to_keep=1
    ).save()
    return run


def cut_shard(tiny_data, folder, end, *, videos=4):
    """``folder`` holding the test shard's first ``end`` bytes and a manifest listing
    ``videos`` videos; returns the shard's path."""
    folder.mkdir(parents=True)
    shard = folder / SHARD
    shard.write_bytes((tiny_data / SHARD).read_bytes()[:end])
    write_manifest(folder, videos)
    return shard


def evaluate_error(run, data, *options):
    """evaluate.py's exit message: one line, no metrics written."""
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(
            ["--dataset", "hmdb51", "--model-dir", str(run), "--data", str(data), *options]
        )
    message = exit_info.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message
    return message


# ---------------------------------------------------------------------------- videos read


def test_a_shard_cut_at_a_record_boundary_is_refused_naming_both_counts(
    tiny_data, joint_run, tmp_path
):
    starts, _ = record_starts(tiny_data / SHARD)
    data = tmp_path / "cut"
    cut_shard(tiny_data, data, starts[3])  # 3 whole videos of the 4 listed

    out = tmp_path / "out"
    message = evaluate_error(joint_run, data, "--out", str(out))

    assert message == (
        f"error: read 3 videos from '{data / 'test-*.tfrecord'}' but its "
        f"{data / 'manifest.json'} lists 4 (1 missing) in {SHARD} (3 records); re-run "
        "data/prepare.py for this dataset, or pass --allow-missing-videos to score the 3 "
        "videos read."
    )
    assert not out.exists()  # nothing written for a refused evaluation


def test_allow_missing_videos_scores_what_was_read_and_records_the_shortfall(
    tiny_data, joint_run, tmp_path, capsys
):
    starts, _ = record_starts(tiny_data / SHARD)
    data = tmp_path / "cut"
    cut_shard(tiny_data, data, starts[3])
    out = tmp_path / "out"

    evaluate.main(
        ["--dataset", "hmdb51", "--model-dir", str(joint_run), "--data", str(data)]
        + ["--out", str(out), "--allow-missing-videos"]
    )

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["videos"] == 3 and metrics["missing_videos"] == 1
    [warning] = metrics["warnings"]
    assert warning.startswith(f"read 3 videos from '{data / 'test-*.tfrecord'}' but its ")
    assert "lists 4 (1 missing)" in warning and "scored the 3 videos read" in warning
    captured = capsys.readouterr()
    assert f"WARNING: split 1: {warning}" in captured.err.splitlines()
    assert "1 of the videos its manifest lists were not read" in captured.out


def test_the_manifest_count_covers_exactly_the_shards_the_pattern_selects(tiny_data, tmp_path):
    """The manifest counts videos per subset: a whole subset is compared (a shard absent on
    disk counts as missing, not deselected); part of one cannot be, and is not refused."""
    starts, size = record_starts(tiny_data / SHARD)
    whole = (tiny_data / SHARD).read_bytes()
    names = ["test-00000-of-00002.tfrecord", "test-00001-of-00002.tfrecord"]
    folder = tmp_path / "two_shards"
    folder.mkdir()
    (folder / names[0]).write_bytes(whole[: starts[2]])  # videos 0, 1
    (folder / names[1]).write_bytes(whole[starts[2] : size])  # videos 2, 3
    write_manifest(folder, 4, names)
    pattern = str(folder / "test-*.tfrecord")

    assert manifest_videos(pattern).listed == 4
    assert check_videos_read(pattern, 4) == {"missing_videos": 0}
    # One shard chosen by name: its share of the 4 is not recorded, so nothing to compare.
    assert manifest_videos(str(folder / names[0])) is None
    assert check_videos_read(str(folder / names[0]), 2) == {"missing_videos": None}

    (folder / names[1]).unlink()
    expected = manifest_videos(pattern)
    assert (expected.listed, expected.missing_shards) == (4, (names[1],))
    with pytest.raises(EvaluationError) as error:
        check_videos_read(pattern, 2)
    assert f"lists 4 (2 missing) in {names[1]} (missing), {names[0]} (2 records);" in str(
        error.value
    )
    # Without a manifest there is nothing to compare with (today's behaviour).
    (folder / "manifest.json").unlink()
    assert check_videos_read(pattern, 2) == {"missing_videos": None}


def test_a_shard_cut_inside_a_record_header_is_read_short_by_tf_data_and_named(
    tiny_data, joint_run, tmp_path
):
    """tf.data ends a file silently inside a record's 12-byte header; the scan sees the bytes
    left over, and the refusal names them."""
    starts, _ = record_starts(tiny_data / SHARD)
    data = tmp_path / "cut_header"
    shard = cut_shard(tiny_data, data, starts[3] + 5)
    assert sum(1 for _ in tf.data.TFRecordDataset(str(shard))) == 3  # no error from tf.data

    damage = scan_shard(shard).damage
    assert (damage.records, damage.offset) == (3, starts[3])
    message = evaluate_error(joint_run, data)
    assert (
        f"lists 4 (1 missing) in {SHARD} (3 whole records, then at byte offset {starts[3]}: "
        "the file ends 5 bytes into this record's 12-byte header (truncated));" in message
    )


# ---------------------------------------------------------------------------- unreadable shards


def test_a_shard_truncated_inside_a_record_is_named_with_its_record_and_offset(
    tiny_data, joint_run, tmp_path
):
    starts, _ = record_starts(tiny_data / SHARD)
    shard = cut_shard(tiny_data, tmp_path / "cut", starts[2] + 100)  # inside record 2
    expected = (
        f"{shard}: unreadable at record 2 (byte offset {starts[2]}) — the file ends inside this "
        f"record (truncated); {ADVICE}"
    )

    with pytest.raises(ShardError) as error:
        with reading_shards(str(tmp_path / "cut" / "test-*.tfrecord")):
            for _ in eval_dataset(str(shard), tiny_config(tiny_data, "joint").data, batch_size=2):
                pass
    assert str(error.value) == expected
    # The training pipeline (interleaved, shuffled) is named the same way.
    with pytest.raises(ShardError) as error:
        with reading_shards(str(shard)):
            data = tiny_config(tiny_data, "joint").data
            for _ in train_dataset(str(shard), data, batch_size=2, repeat=False):
                pass
    assert str(error.value) == expected
    assert evaluate_error(joint_run, shard.parent) == f"error: {expected}"


def test_a_text_file_named_as_a_shard_is_named_at_record_0(tiny_data, joint_run, tmp_path):
    folder = tmp_path / "text"
    folder.mkdir()
    shutil.copy(tiny_data / SHARD, folder / "test-00000-of-00002.tfrecord")
    text = folder / "test-00001-of-00002.tfrecord"
    text.write_text("media_id,label\nvideo1,3\nvideo2,5\n")

    assert evaluate_error(joint_run, folder) == (
        f"error: {text}: unreadable at record 0 (byte offset 0) — its length or checksum does "
        f"not match (not a TFRecord file, or damaged); {ADVICE}"
    )
    # A text shorter than a record header: tf.data reads no record and no error at all.
    text.write_text("hi\n")
    damage = find_damaged_shard(str(folder / "*.tfrecord"))
    assert (damage.path, damage.records, damage.offset) == (str(text), 0, 0)
    assert "ends 3 bytes into this record's 12-byte header" in damage.reason
    # Alone it gives evaluation no video at all, and the shard is named rather than the data.
    (folder / "test-00000-of-00002.tfrecord").unlink()
    assert evaluate_error(joint_run, folder) == (
        f"error: {text}: unreadable at record 0 (byte offset 0) — the file ends 3 bytes into "
        f"this record's 12-byte header (truncated); {ADVICE}"
    )


def test_a_record_that_is_not_a_video_is_named_with_its_index(tiny_data, joint_run, tmp_path):
    folder = tmp_path / "not_video"
    folder.mkdir()
    shard = folder / SHARD
    videos = [record.numpy() for record in tf.data.TFRecordDataset(str(tiny_data / SHARD))]
    with tf.io.TFRecordWriter(str(shard)) as writer:
        writer.write(videos[0])
        writer.write(videos[1])
        writer.write(b"\x08\x96\x01 not a SequenceExample \xff")
        writer.write(videos[2])
    starts, _ = record_starts(shard)

    message = evaluate_error(joint_run, folder)
    assert message.startswith(
        f"error: {shard}: unreadable at record 2 (byte offset {starts[2]}) — not a video "
        "SequenceExample ("
    )
    assert message.endswith(f"); {ADVICE}")


def test_errors_the_shards_do_not_explain_propagate_unchanged(tiny_data):
    pattern = str(tiny_data / "*.tfrecord")
    assert find_damaged_shard(pattern) is None
    unexplained = tf.errors.DataLossError(None, None, "checksum of something else")
    with pytest.raises(tf.errors.DataLossError) as error:
        with reading_shards(pattern):
            raise unexplained
    assert error.value is unexplained
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        with reading_shards(pattern):
            tf.debugging.check_numerics(tf.constant([np.nan]), "NaN in the loss")


@pytest.mark.slow
def test_the_evaluate_command_exits_with_one_line_on_a_truncated_shard(
    tiny_data, joint_run, tmp_path
):
    starts, _ = record_starts(tiny_data / SHARD)
    shard = cut_shard(tiny_data, tmp_path / "cut", starts[1] + 100)  # inside record 1
    command = [sys.executable, "evaluate.py", "--dataset", "hmdb51", "--model-dir", str(joint_run)]
    finished = subprocess.run(
        [*command, "--data", str(shard.parent), "--out", str(tmp_path / "out")],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 1
    assert "Traceback" not in finished.stderr
    assert finished.stderr.splitlines()[-1] == (
        f"error: {shard}: unreadable at record 1 (byte offset {starts[1]}) — the file ends "
        f"inside this record (truncated); {ADVICE}"
    )
    # One error line; the rest of stderr is TensorFlow's start-up logging and the progress bar.
    assert [line for line in finished.stderr.splitlines() if line.startswith("error: ")] == [
        finished.stderr.splitlines()[-1]
    ]
