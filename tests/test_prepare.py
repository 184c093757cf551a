import json
import os
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
from dynamonet_tf.data.prepare import PrepareError, PrepareOptions, prepare
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
            videos[media_id] = (int(example["label"]), example["label_name"].numpy().decode(), frames)
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
            VideoRecord(str(path), label, classes[label], "train" if i < len(lengths) - 2 else "test", f"{classes[label]}/v{i}(1)!")
        )
    return DatasetIndex("testset", classes, records)


def test_round_trip_frames_labels_and_ids(tmp_path):
    index = labeled_index(tmp_path / "videos", [7, 9, 5, 6, 8])
    manifest = prepare(index, tmp_path / "out", PrepareOptions(short_side=48, videos_per_shard=2), workers=0, progress=False)
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
    assert manifest["subsets"]["train"]["videos"] == 3 and manifest["subsets"]["test"]["videos"] == 2
    assert manifest["subsets"]["train"]["frames"] == 7 + 9 + 5
    assert manifest["subsets"]["train"]["per_class"] == {"Brush Hair": 2, "cartwheel": 1}
    assert manifest["frames_per_video"] == {"min": 5, "median": 7, "max": 9}
    assert manifest["fps"]["median"] == 25.0
    assert manifest["classes"] == index.classes and manifest["options"]["short_side"] == 48
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest


def test_bad_videos_are_reported_and_good_ones_kept(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    for name, length in (("a.mp4", 6), ("b.avi", 4), ("d.avi", 5)):
        write_video(root / name, length, codec="libx264" if name.endswith("mp4") else "mpeg4")
    (root / "c_empty.avi").write_bytes(b"")
    (root / "e_garbage.mkv").write_bytes(os.urandom(3000))
    manifest = prepare(read_folder(root), tmp_path / "out", workers=1, progress=False)
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
    assert list(out.glob("*.tmp-*"))  # the interrupted shard's partial file

    monkeypatch.setattr(prepare_module, "_encode_video", encode)
    calls.clear()
    manifest = prepare(index, out, options, workers=0, progress=False)
    assert not list(out.glob("*.tmp-*"))
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecord") if p.name in finished} == finished
    assert set(read_back(out)) == {v.media_id for v in index.videos}
    assert manifest["subsets"]["train"]["videos"] == 4 and manifest["subsets"]["test"]["videos"] == 2


def test_killed_process_resumes_without_duplicates(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    for i in range(24):
        write_video(root / f"clip{i:02d}.avi", 30)
    out = tmp_path / "out"
    command = [
        sys.executable, str(REPO / "data" / "prepare.py"), "folder", "--video-root", str(root),
        "--out", str(out), "--videos-per-shard", "1", "--workers", "1",
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
    assert "folder: train: 24 videos; 0 failed or missing" in finished.stdout
    assert len(read_back(out)) == 24


def test_output_folder_of_another_preparation_is_refused(tmp_path):
    index = labeled_index(tmp_path / "videos", [4, 4, 4])
    prepare(index, tmp_path / "out", PrepareOptions(short_side=32), workers=0, progress=False)
    with pytest.raises(PrepareError, match=r"holds a preparation with other options.*--overwrite"):
        prepare(index, tmp_path / "out", PrepareOptions(short_side=40), workers=0, progress=False)
    manifest = prepare(index, tmp_path / "out", PrepareOptions(short_side=40), workers=0, progress=False, overwrite=True)
    assert manifest["options"]["short_side"] == 40
    assert all(v[2].shape[1] == 40 for v in read_back(tmp_path / "out").values())


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(short_side=0), "short_side must be an integer >= 1"),
        (dict(jpeg_quality=101), "jpeg_quality must be an integer from 1 to 100"),
        (dict(videos_per_shard=2.5), "videos_per_shard must be"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(PrepareError, match=message):
        PrepareOptions(**options)


def test_cli_names_a_missing_split_folder(tmp_path):
    (tmp_path / "videos").mkdir()
    result = subprocess.run(
        [sys.executable, str(REPO / "data" / "prepare.py"), "hmdb51", "--video-root", str(tmp_path / "videos"),
         "--splits", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and str(tmp_path / "nowhere") in result.stderr
    assert "Traceback" not in result.stderr
