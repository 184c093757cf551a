import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dynamonet_tf.data import prepare as prepare_module
from dynamonet_tf.data.datasets import DatasetIndex, VideoRecord, read_folder
from dynamonet_tf.data.prepare import (
    PrepareError,
    PrepareOptions,
    holdout_count,
    prepare,
    split_holdout,
)
from dynamonet_tf.data.schema import parse_video_example
from dynamonet_tf.data.video import decode_video
from videos import write_video

REPO = Path(__file__).resolve().parents[1]


def read_back(out_dir):
    """Every video in the shards of ``out_dir``: media_id -> (label, label_name, frames)."""
    videos = {}
    for shard in sorted(out_dir.glob("*.tfrecord")):
        for serialized in tf.data.TFRecordDataset(str(shard)):
            example = parse_video_example(serialized)
            media_id = example["media_id"].numpy().decode()
            assert media_id not in videos, f"{media_id} written twice"
            frames = np.stack([tf.io.decode_jpeg(j).numpy() for j in example["frames"]])
            videos[media_id] = (
                int(example["label"]),
                example["label_name"].numpy().decode(),
                frames,
            )
    return videos


def labeled_index(root, lengths):
    """Videos ``<root>/<class>/v<i>.avi``, alternately train and test, two classes."""
    classes = ["Brush Hair", "cartwheel"]
    records = []
    for i, length in enumerate(lengths):
        label = i % 2
        path = root / classes[label] / f"v{i}(1)!.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, length)
        records.append(
            VideoRecord(
                str(path),
                label,
                classes[label],
                "train" if i < len(lengths) - 2 else "test",
                f"{classes[label]}/v{i}(1)!",
            )
        )
    return DatasetIndex("testset", classes, records)


def test_round_trip_frames_labels_and_ids(tmp_path):
    index = labeled_index(tmp_path / "videos", [7, 9, 5, 6, 8])
    options = PrepareOptions(short_side=48, videos_per_shard=2, holdout_fraction=0)
    manifest = prepare(index, tmp_path / "out", options, workers=0, progress=False)
    videos = read_back(tmp_path / "out")
    assert set(videos) == {v.media_id for v in index.videos}
    for record in index.videos:
        label, label_name, frames = videos[record.media_id]
        assert (label, label_name) == (record.label, record.label_name)
        source, _ = decode_video(record.path, short_side=48)
        assert frames.shape == source.shape == (frames.shape[0], 48, 64, 3)
        assert np.abs(frames.astype(int) - source).mean() < 2.5  # JPEG quality 90
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tfrecord")) == [
        "test-00000-of-00001.tfrecord",
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
    ]
    assert (
        manifest["subsets"]["train"]["videos"] == 3 and manifest["subsets"]["test"]["videos"] == 2
    )
    assert manifest["subsets"]["train"]["frames"] == 7 + 9 + 5
    assert manifest["subsets"]["train"]["per_class"] == {"Brush Hair": 2, "cartwheel": 1}
    assert manifest["frames_per_video"] == {"min": 5, "median": 7, "max": 9}
    assert manifest["fps"]["median"] == 25.0
    assert manifest["classes"] == index.classes and manifest["options"]["short_side"] == 48
    assert "holdout" not in manifest["subsets"]
    assert manifest["holdout"] == {"fraction": 0.0, "seed": 0, "from": "train", "media_ids": []}
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest


def test_bad_videos_are_reported_and_good_ones_kept(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    for name, length in (("a.mp4", 6), ("b.avi", 4), ("d.avi", 5)):
        write_video(root / name, length, codec="libx264" if name.endswith("mp4") else "mpeg4")
    (root / "c_empty.avi").write_bytes(b"")
    (root / "e_garbage.mkv").write_bytes(os.urandom(3000))
    options = PrepareOptions(holdout_fraction=0)
    manifest = prepare(read_folder(root), tmp_path / "out", options, workers=1, progress=False)
    assert set(read_back(tmp_path / "out")) == {"a", "b", "d"}
    failures = json.loads((tmp_path / "out" / "failures.json").read_text())
    assert sorted(Path(f["path"]).name for f in failures) == ["c_empty.avi", "e_garbage.mkv"]
    assert all("Invalid data" in f["reason"] for f in failures)
    assert manifest["failures"] == 2 and manifest["subsets"]["train"]["videos"] == 3


def test_missing_videos_of_an_index_are_listed_as_failures(tmp_path):
    index = labeled_index(tmp_path / "videos", [4, 4, 4])
    index.missing = [("cartwheel/gone.avi", str(tmp_path / "videos" / "cartwheel" / "gone.avi"))]
    prepare(index, tmp_path / "out", workers=0, progress=False)
    failures = json.loads((tmp_path / "out" / "failures.json").read_text())
    assert [f["reason"] for f in failures] == ["missing on disk (cartwheel/gone.avi)"]


def test_interrupted_run_resumes_without_duplicates(tmp_path, monkeypatch):
    index = labeled_index(tmp_path / "videos", [4, 5, 6, 4, 5, 6])
    out = tmp_path / "out"
    options = PrepareOptions(short_side=32, videos_per_shard=1)
    encode = prepare_module._encode_video
    calls = []

    def interrupted(task):
        calls.append(task)
        if len(calls) == 3:  # in the middle of the third shard
            raise KeyboardInterrupt
        return encode(task)

    monkeypatch.setattr(prepare_module, "_encode_video", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare(index, out, options, workers=0, progress=False)
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecord")}
    assert len(finished) == 2 and not (out / "manifest.json").exists()
    # An interrupt removes the shard it was writing; a kill -9 would leave it under its
    # temporary name, as planted here, for the re-run to clear.
    assert not list(out.glob("*.tmp-*"))
    (out / "train-00002-of-00006.tfrecord.tmp-99999").write_bytes(b"partial")

    monkeypatch.setattr(prepare_module, "_encode_video", encode)
    calls.clear()
    manifest = prepare(index, out, options, workers=0, progress=False)
    assert not list(out.glob("*.tmp-*"))
    assert {
        p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecord") if p.name in finished
    } == finished
    assert set(read_back(out)) == {v.media_id for v in index.videos}
    # 2 train videos per class: 1 of each is held out.
    assert {s: manifest["subsets"][s]["videos"] for s in manifest["subsets"]} == {
        "holdout": 2,
        "test": 2,
        "train": 2,
    }


@pytest.mark.slow
def test_killed_process_resumes_without_duplicates(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    for i in range(24):
        write_video(root / f"clip{i:02d}.avi", 30)
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(REPO / "data" / "prepare.py"),
        "folder",
        "--video-root",
        str(root),
        "--out",
        str(out),
        "--videos-per-shard",
        "1",
        "--workers",
        "1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / ".progress").glob("train-*.json"))) < 2:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists(), "the run finished before it could be killed"
    done_before = len(list((out / ".progress").glob("train-*.json")))
    assert 2 <= done_before < 24
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    # round(0.1 * 24) = 2 of the 24 unlabeled clips are held out
    assert "folder: holdout: 2 videos, train: 22 videos; 0 failed or missing" in finished.stdout
    assert len(read_back(out)) == 24


def test_output_folder_of_another_preparation_is_refused(tmp_path):
    index = labeled_index(tmp_path / "videos", [4, 4, 4])
    prepare(index, tmp_path / "out", PrepareOptions(short_side=32), workers=0, progress=False)
    with pytest.raises(PrepareError, match=r"holds a preparation with other options.*--overwrite"):
        prepare(index, tmp_path / "out", PrepareOptions(short_side=40), workers=0, progress=False)
    manifest = prepare(
        index,
        tmp_path / "out",
        PrepareOptions(short_side=40),
        workers=0,
        progress=False,
        overwrite=True,
    )
    assert manifest["options"]["short_side"] == 40
    assert all(v[2].shape[1] == 40 for v in read_back(tmp_path / "out").values())


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(short_side=0), "short_side must be an integer >= 1"),
        (dict(jpeg_quality=101), "jpeg_quality must be an integer from 1 to 100"),
        (dict(videos_per_shard=2.5), "videos_per_shard must be"),
        (dict(holdout_fraction=1), r"holdout_fraction must be a number in \[0, 1\).*got 1\.$"),
        (dict(holdout_fraction=-0.1), r"holdout_fraction must be a number in \[0, 1\)"),
        (dict(holdout_fraction=float("nan")), r"holdout_fraction must be a number in \[0, 1\)"),
        (dict(holdout_fraction="0.1"), r"holdout_fraction must be a number in \[0, 1\)"),
        (dict(holdout_fraction=True), r"holdout_fraction must be a number in \[0, 1\)"),
        (dict(holdout_seed=-1), r"holdout_seed must be an integer >= 0; got -1\.$"),
        (dict(holdout_seed=1.0), r"holdout_seed must be an integer >= 0"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(PrepareError, match=message):
        PrepareOptions(**options)


def test_cli_names_a_missing_split_folder(tmp_path):
    (tmp_path / "videos").mkdir()
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "data" / "prepare.py"),
            "hmdb51",
            "--video-root",
            str(tmp_path / "videos"),
            "--splits",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and str(tmp_path / "nowhere") in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# The validation holdout


def generated_index(train_per_class, test_per_class=2, unlabeled=0):
    """An index of ``{class name: train videos}`` (paths never opened), ``test_per_class``
    test videos per class and ``unlabeled`` unlabeled train videos."""
    classes = sorted(train_per_class)
    records = []
    for label, name in enumerate(classes):
        for i in range(train_per_class[name]):
            records.append(VideoRecord(f"/v/{name}/t{i}.avi", label, name, "train", f"{name}/t{i}"))
        for i in range(test_per_class):
            records.append(VideoRecord(f"/v/{name}/e{i}.avi", label, name, "test", f"{name}/e{i}"))
    for i in range(unlabeled):
        records.append(VideoRecord(f"/v/u{i}.mp4", -1, "", "train", f"u{i}"))
    records.sort(key=lambda v: (v.subset, v.media_id))
    return DatasetIndex("generated", classes, records)


def held_out_ids(index):
    return {v.media_id for v in index.videos if v.subset == "holdout"}


def per_class(index, subset):
    counts = {}
    for video in index.videos:
        if video.subset == subset:
            counts[video.label_name] = counts.get(video.label_name, 0) + 1
    return counts


@pytest.mark.parametrize(
    "videos, fraction, expected",
    [
        (0, 0.1, 0),
        (1, 0.1, 0),
        (1, 0.9, 0),  # a lone video is never held out
        (2, 0.1, 1),
        (3, 0.1, 1),
        (6, 0.1, 1),
        (10, 0.1, 1),  # at least one
        (14, 0.1, 1),
        (15, 0.1, 2),
        (25, 0.1, 3),
        (100, 0.1, 10),  # rounded, halves up
        (2, 0.5, 1),
        (3, 0.9, 2),
        (10, 0.99, 9),  # never all
        (10, 0.0, 0),
        (100, 0.0, 0),
    ],
)
def test_holdout_count(videos, fraction, expected):
    assert holdout_count(videos, fraction) == expected


def test_split_holdout_moves_exact_counts_of_each_class_and_loses_none():
    sizes = {"a": 1, "b": 2, "c": 6, "d": 15, "e": 25}
    index = generated_index(sizes, unlabeled=24)
    split = split_holdout(index, 0.1, seed=0)
    assert per_class(split, "holdout") == {"b": 1, "c": 1, "d": 2, "e": 3, "": 2}
    assert per_class(split, "train") == {"a": 1, "b": 1, "c": 5, "d": 13, "e": 22, "": 22}
    assert per_class(split, "test") == per_class(index, "test")  # test is never touched
    train = {v.media_id for v in index.videos if v.subset == "train"}
    kept = {v.media_id for v in split.videos if v.subset == "train"}
    assert held_out_ids(split) <= train and not held_out_ids(split) & kept
    assert held_out_ids(split) | kept == train
    # Only the subset changes; the records stay in the readers' order.
    assert sorted((v.path, v.label, v.label_name, v.media_id) for v in split.videos) == sorted(
        (v.path, v.label, v.label_name, v.media_id) for v in index.videos
    )
    assert split.videos == sorted(split.videos, key=lambda v: (v.subset, v.media_id))
    assert (split.name, split.classes, split.missing) == (index.name, index.classes, index.missing)
    assert split_holdout(index, 0.0, seed=0).videos == index.videos


def test_split_holdout_is_a_function_of_the_seed_and_the_media_ids():
    index = generated_index({"a": 20, "b": 20, "c": 20})
    chosen = held_out_ids(split_holdout(index, 0.25, seed=0))
    assert len(chosen) == 15
    assert held_out_ids(split_holdout(index, 0.25, seed=0)) == chosen
    assert held_out_ids(split_holdout(index, 0.25, seed=1)) != chosen
    shuffled = list(index.videos)
    random.Random(4).shuffle(shuffled)
    assert (
        held_out_ids(split_holdout(DatasetIndex("x", index.classes, shuffled), 0.25, seed=0))
        == chosen
    )
    # Another class (and its absence) leaves each class's choice as it is.
    more = generated_index({"a": 20, "b": 20, "c": 20, "z": 7})
    assert {
        m for m in held_out_ids(split_holdout(more, 0.25, seed=0)) if not m.startswith("z/")
    } == chosen
    alone = held_out_ids(split_holdout(generated_index({"a": 20}), 0.25, seed=0))
    assert alone == {m for m in chosen if m.startswith("a/")}
    # Not simply the first ids of a class in sorted order.
    assert alone != {f"a/t{i}" for i in sorted(range(20), key=str)[:5]}


def test_split_holdout_refuses_bad_arguments_and_a_second_holdout():
    index = generated_index({"a": 4})
    with pytest.raises(PrepareError, match=r"holdout_fraction must be a number in \[0, 1\)"):
        split_holdout(index, 1.0, seed=0)
    with pytest.raises(PrepareError, match=r"holdout_seed must be an integer >= 0"):
        split_holdout(index, 0.1, seed=-2)
    with pytest.raises(PrepareError, match=r"already has holdout videos"):
        split_holdout(split_holdout(index, 0.5, seed=0), 0.5, seed=0)


def test_prepare_writes_the_holdout_shards_and_names_them_in_the_manifest(tmp_path):
    classes = ["jump", "run"]
    records = []
    for label, name in enumerate(classes):
        for i in range(6):
            path = tmp_path / "videos" / name / f"{name}{i}.avi"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, 3, height=32, width=48)
            subset = "test" if i == 5 else "train"
            records.append(VideoRecord(str(path), label, name, subset, f"{name}/{name}{i}"))
    index = DatasetIndex("tiny", classes, records)
    out = tmp_path / "out"
    options = PrepareOptions(short_side=32, holdout_fraction=0.4, holdout_seed=3)
    manifest = prepare(index, out, options, workers=0, progress=False)

    expected = held_out_ids(split_holdout(index, 0.4, 3))
    assert len(expected) == 4  # round(0.4 * 5) = 2 of each class's 5 train videos
    assert manifest["holdout"] == {
        "fraction": 0.4,
        "seed": 3,
        "from": "train",
        "media_ids": sorted(expected),
    }
    assert sorted(p.name for p in out.glob("*.tfrecord")) == [
        "holdout-00000-of-00001.tfrecord",
        "test-00000-of-00001.tfrecord",
        "train-00000-of-00001.tfrecord",
    ]
    holdout = manifest["subsets"]["holdout"]
    assert holdout["videos"] == 4 and holdout["per_class"] == {"jump": 2, "run": 2}
    assert holdout["shards"] == ["holdout-00000-of-00001.tfrecord"] and holdout["frames"] == 12
    assert manifest["subsets"]["train"]["per_class"] == {"jump": 3, "run": 3}
    assert manifest["subsets"]["test"]["per_class"] == {"jump": 1, "run": 1}
    in_shards = {
        subset: set(read_back_files(out.glob(f"{subset}-*.tfrecord")))
        for subset in ("holdout", "train", "test")
    }
    assert in_shards["holdout"] == expected
    assert (
        in_shards["train"] == {v.media_id for v in index.videos if v.subset == "train"} - expected
    )
    assert in_shards["test"] == {v.media_id for v in index.videos if v.subset == "test"}
    plan = json.loads((out / ".progress" / "plan.json").read_text())
    assert plan["options"]["holdout_fraction"] == 0.4 and plan["options"]["holdout_seed"] == 3
    assert json.loads((out / "manifest.json").read_text()) == manifest

    # Another seed or fraction is another preparation: refused without --overwrite.
    for other in (dict(holdout_seed=4), dict(holdout_fraction=0.2)):
        changed = PrepareOptions(
            short_side=32, **{"holdout_fraction": 0.4, "holdout_seed": 3, **other}
        )
        with pytest.raises(PrepareError, match=r"holds a preparation with other options"):
            prepare(index, out, changed, workers=0, progress=False)
    # The same options again: nothing to redo, the same holdout.
    assert prepare(index, out, options, workers=0, progress=False)["holdout"] == manifest["holdout"]

    none = prepare(
        index,
        tmp_path / "none",
        PrepareOptions(short_side=32, holdout_fraction=0),
        workers=0,
        progress=False,
    )
    assert set(none["subsets"]) == {"train", "test"} and none["holdout"]["media_ids"] == []
    assert not list((tmp_path / "none").glob("holdout-*"))


def read_back_files(shards):
    """The media ids in ``shards``."""
    return [
        parse_video_example(serialized)["media_id"].numpy().decode()
        for shard in sorted(shards)
        for serialized in tf.data.TFRecordDataset(str(shard))
    ]


def test_cli_holdout_options_and_a_bad_fraction(tmp_path):
    script = str(REPO / "data" / "prepare.py")
    assert (
        "--holdout-fraction"
        in subprocess.run(
            [sys.executable, script, "--help"], capture_output=True, text=True, timeout=120
        ).stdout
    )
    (tmp_path / "videos").mkdir()
    result = subprocess.run(
        [
            sys.executable,
            script,
            "folder",
            "--video-root",
            str(tmp_path / "videos"),
            "--out",
            str(tmp_path / "out"),
            "--holdout-fraction",
            "1.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert result.stderr.startswith("error: holdout_fraction must be a number in [0, 1)")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
