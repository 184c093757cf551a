"""Video-level evaluation (the paper's protocol) and ``evaluate.py``.

The core is checked against a hand computation with a hand-made model whose logits are a
known function of what its input frames show: which source frames (red level), which video
(blue level) and which crop position (the green ramp's level). The command is checked end to
end with tiny runs whose classifier is fixed to a bias, so every clip's softmax is known.
"""

import csv
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

import evaluate
from dynamonet_tf.config import to_dict
from dynamonet_tf.data.pipelines import eval_dataset
from dynamonet_tf.data.schema import encode_video_example
from dynamonet_tf.evaluation import evaluate_clips, summarise_splits
from dynamonet_tf.evaluation.outputs import format_table
from dynamonet_tf.layout import RUN_CONFIG
from dynamonet_tf.names import LOGITS
from dynamonet_tf.runs import build_model
from synthetic import translation_clips
from tiny_run import tiny_config, write_tiny_data

# ---------------------------------------------------------------------------- the core

T = 4
HEIGHT, WIDTH, CROP = 24, 41, 16  # stored at the short side: no resizing
LEFTS = (
    0,
    12,
    25,
)  # left edges of the 3 crops (centre (41 - 16) // 2); the 1-crop is the middle one
NUM_CLASSES = 10
# media_id: (frames, label). v1, v2, v4: lengths that are not a multiple of T, so their last
# clip repeats their final frame; v2 is shorter than one clip.
VIDEOS = {"v0": (8, 2), "v1": (6, 0), "v2": (3, 5), "v3": (9, 2), "v4": (5, 1)}


def stamped_video(length, number):
    """JPEG frames: red ``8 t`` for frame t, blue ``40 number + 20``, green rising left to right."""
    frames = np.empty((length, HEIGHT, WIDTH, 3), np.uint8)
    frames[..., 0] = 8 * np.arange(length)[:, None, None]
    frames[..., 1] = np.linspace(0, 255, WIDTH).round()[None, None, :]
    frames[..., 2] = 40 * number + 20
    return [tf.io.encode_jpeg(frame, quality=95).numpy() for frame in frames]


# How much each video's logits favour its label (against it when negative), and each crop
# position its own class: chosen so that top-1 and top-5 are neither 0 nor 1, and so that
# leaving out padded clips or averaging only the centre crop changes them.
LABEL_WEIGHTS = (1.4, -1.9, 0.9, -1.3, 1.5)
POSITION_WEIGHT = 1.3


def known_logits(frame_indices, number, position):
    """The hand-made model: logits ``(NUM_CLASSES,)`` of a clip showing source frames
    ``frame_indices`` of video ``number``, cropped at 3-crop position ``position``."""
    classes = np.arange(NUM_CLASSES)
    label = VIDEOS[f"v{number}"][1]
    varying = 2.0 * np.sin(1.3 * classes + 0.7 * np.sum(frame_indices) + 2.1 * number)
    return (
        varying
        + LABEL_WEIGHTS[number] * (classes == label)
        + POSITION_WEIGHT * (classes == position)
    )


def predict(frames):
    """Reads back what :func:`known_logits` needs from the pixels (robust to JPEG)."""
    frames = np.asarray(frames, np.float64)
    logits = []
    for clip in frames:
        frame_indices = np.round(clip[..., 0].mean(axis=(1, 2)) * 255 / 8)
        number = int(round((clip[..., 2].mean() * 255 - 20) / 40))
        left = clip[..., 1].mean() * (WIDTH - 1) - (CROP - 1) / 2
        position = int(np.argmin([abs(left - candidate) for candidate in LEFTS]))
        logits.append(known_logits(frame_indices, number, position))
    return np.stack(logits)


def softmax(logits):
    exponentials = np.exp(logits - np.max(logits))
    return exponentials / exponentials.sum()


def hand_computation(
    num_crops, clip_stride, include_padded=True, average_crops=True, frame_stride=1
):
    """Per video: (label, probabilities averaged over its clips, clips); and per clip (label,
    probabilities averaged over its crops). Of the video's frames 0, s, 2s, ...
    (``s = frame_stride``), clips start every ``clip_stride`` kept frames until one reaches
    the last kept frame, whose missing frames repeat the last kept one."""
    positions = (0, 1, 2) if num_crops == 3 else (1,)
    videos, clips = {}, []
    for number, (media_id, (length, label)) in enumerate(VIDEOS.items()):
        kept = list(range(0, length, frame_stride))
        length = len(kept)
        video_clips = []
        start = 0
        while True:
            frame_indices = [kept[min(start + k, length - 1)] for k in range(T)]
            if include_padded or start + T <= length:
                views = [softmax(known_logits(frame_indices, number, p)) for p in positions]
                video_clips.append(np.mean(views if average_crops else views[:1], axis=0))
            if start + T >= length:
                break
            start += clip_stride
        if video_clips:  # without padded clips, a video shorter than T has none
            clips += [(label, p) for p in video_clips]
            videos[media_id] = (label, np.mean(video_clips, axis=0), len(video_clips))
    return videos, clips


def accuracies(videos, clips):
    top1 = [p.argmax() == label for label, p, _ in videos.values()]
    top5 = [label in np.argsort(-p)[:5] for label, p, _ in videos.values()]
    per_class = {}
    for (label, _, _), correct in zip(videos.values(), top1):
        per_class.setdefault(label, []).append(correct)
    return {
        "video_top1": np.mean(top1),
        "video_top5": np.mean(top5),
        "clip_top1": np.mean([p.argmax() == label for label, p in clips]),
        "mean_class_accuracy": np.mean([np.mean(c) for c in per_class.values()]),
    }


@pytest.fixture(scope="module")
def stamped_records(tmp_path_factory):
    path = tmp_path_factory.mktemp("stamped") / "test-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for number, (media_id, (length, label)) in enumerate(VIDEOS.items()):
            writer.write(
                encode_video_example(stamped_video(length, number), label, f"c{label}", media_id)
            )
    return str(path)


@pytest.mark.parametrize(
    "num_crops, clip_stride, frame_stride",
    [(1, T, 1), (3, T, 1), (1, 2, 1), (3, T, 2)],
    ids=["centre", "3-crop", "overlapping", "frame-stride-2"],
)
def test_video_scores_equal_a_hand_computation(
    stamped_records, num_crops, clip_stride, frame_stride
):
    dataset = eval_dataset(
        stamped_records,
        num_frames=T,
        frame_stride=frame_stride,
        crop_size=CROP,
        short_side=HEIGHT,
        batch_size=5,
        clip_stride=clip_stride,
        num_crops=num_crops,
    )
    names = [f"c{i}" for i in range(NUM_CLASSES)]
    report = evaluate_clips(predict, dataset, names)

    videos, clips = hand_computation(num_crops, clip_stride, frame_stride=frame_stride)
    expected = accuracies(videos, clips)
    assert report["videos"] == len(VIDEOS) and report["clips"] == len(clips)
    assert report["views"] == num_crops * len(clips)
    assert 0 < expected["video_top1"] < 1 and expected["video_top5"] < 1
    for key, value in expected.items():
        assert report[key] == pytest.approx(value), key
    for prediction, (media_id, video) in zip(report["predictions"], videos.items(), strict=True):
        label, probabilities, count = video
        assert prediction["media_id"] == media_id and prediction["label"] == names[label]
        assert prediction["clips"] == count
        assert prediction["predicted"] == names[probabilities.argmax()]
        assert prediction["probability"] == pytest.approx(probabilities.max())
        best = np.argsort(-probabilities)[:5]
        assert [name for name, _ in prediction["top5"]] == [names[c] for c in best]
        np.testing.assert_allclose(
            [p for _, p in prediction["top5"]], probabilities[best], rtol=1e-9
        )

    # The test can tell: leaving out the padded last clips, using only the centre crop of a
    # 3-crop evaluation, or consecutive frames instead of strided ones, gives other numbers.
    assert (
        accuracies(
            *hand_computation(
                num_crops, clip_stride, include_padded=False, frame_stride=frame_stride
            )
        )
        != expected
    )
    if num_crops == 3:
        assert (
            accuracies(
                *hand_computation(
                    num_crops, clip_stride, average_crops=False, frame_stride=frame_stride
                )
            )
            != expected
        )
    if frame_stride > 1:
        assert accuracies(*hand_computation(num_crops, clip_stride)) != expected


def test_summary_is_the_mean_and_population_std_over_splits():
    def metrics(split, top1, top5):
        numbers = dict(
            video_top1=top1, video_top5=top5, clip_top1=top1 / 2, mean_class_accuracy=top1
        )
        return split, dict(checkpoint=f"run{split}", videos=4, clips=12, **numbers)

    summary = summarise_splits([metrics(1, 0.5, 1.0), metrics(2, 0.25, 0.75), metrics(3, 0.0, 0.5)])
    assert summary["mean"]["video_top1"] == pytest.approx(0.25)
    assert summary["std"]["video_top1"] == pytest.approx(np.sqrt((0.25**2 + 0 + 0.25**2) / 3))
    assert summary["mean"]["video_top5"] == pytest.approx(0.75)
    assert summary["mean"]["clip_top1"] == pytest.approx(0.125)
    assert summary["splits"]["2"] == metrics(2, 0.25, 0.75)[1]


# ---------------------------------------------------------------------------- evaluate.py

TEST_LABELS = translation_clips(16, 20, 40, seed=3)[1][
    12:16
]  # the 4 test videos of write_tiny_data
CLASSES = [f"class{i}" for i in range(8)]
SHARD = "test-00000-of-00001.tfrecord"


def fixed_bias(target):
    """Logits biases whose order is target, target + 1, ... (mod 8): no ties."""
    return -0.3 * ((np.arange(8) - target) % 8)


def write_run(model_dir, data_dir, *overrides, bias=None, stage="joint"):
    """A run dir as train.py leaves one, untrained; with ``bias`` every clip's logits are it."""
    config = tiny_config(data_dir, stage, *overrides)
    model = build_model(config)
    if bias is not None:
        layer = model.get_layer(LOGITS)
        layer.kernel.assign(np.zeros(layer.kernel.shape, np.float32))
        layer.bias.assign(bias.astype(np.float32))
    model_dir.mkdir(parents=True)
    (model_dir / RUN_CONFIG).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), model_dir / "checkpoints", max_to_keep=1
    ).save()
    return model_dir


def write_manifest(folder, *, classes=CLASSES, split=1, dataset="hmdb51"):
    manifest = {
        "dataset": dataset,
        "source": {"split": split},
        "classes": classes,
        "subsets": {"test": {"videos": 4, "shards": [SHARD]}},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="module")
def joint_run(tiny_data, tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("runs") / "joint", tiny_data, bias=fixed_bias(3))


def prepared_split(root, tiny_data, split, **manifest):
    folder = root / f"split{split}"
    folder.mkdir(parents=True)
    shutil.copy(tiny_data / SHARD, folder / SHARD)
    write_manifest(folder, split=split, **manifest)
    return folder


def expected_numbers(target):
    top5 = [(target + k) % 8 for k in range(5)]
    present = set(TEST_LABELS.tolist())
    return {
        "video_top1": np.mean(TEST_LABELS == target),
        "video_top5": np.mean([label in top5 for label in TEST_LABELS]),
        "clip_top1": np.mean(TEST_LABELS == target),
        "mean_class_accuracy": (target in present) / len(present),
    }


def test_split_all_evaluates_each_split_with_its_run_and_reports_mean_and_std(
    tiny_data, tmp_path, capsys
):
    targets = {1: 4, 2: 0, 3: 2}
    for split, target in targets.items():
        write_run(tmp_path / f"run_split{split}", tiny_data, bias=fixed_bias(target))
        prepared_split(tmp_path / "prepared", tiny_data, split)
    runs, data = tmp_path / "run_split{split}", tmp_path / "prepared" / "split{split}"
    evaluate.main(
        ["--dataset", "hmdb51", "--split", "all", "--model-dir", str(runs), "--data", str(data)]
    )

    summary = json.loads((tmp_path / "eval_hmdb51_splits" / "summary.json").read_text())
    expected = {split: expected_numbers(target) for split, target in targets.items()}
    for key in expected[1]:
        values = [expected[split][key] for split in (1, 2, 3)]
        assert summary["mean"][key] == pytest.approx(np.mean(values)), key
        assert summary["std"][key] == pytest.approx(np.std(values)), key
    for split in (1, 2, 3):
        run = tmp_path / f"run_split{split}"
        metrics = json.loads((run / f"eval_hmdb51_split{split}" / "metrics.json").read_text())
        assert metrics["split"] == split and metrics["checkpoint"].startswith(str(run))
        for key, value in expected[split].items():
            assert metrics[key] == pytest.approx(value) == summary["splits"][str(split)][key]
    assert "mean ± std" in capsys.readouterr().out


def test_outputs_of_one_split(joint_run, tiny_data, tmp_path):
    data = prepared_split(tmp_path, tiny_data, 2)
    out = tmp_path / "out"
    options = ["--dataset", "hmdb51", "--split", "2", "--crops", "3"]
    evaluate.main([*options, "--model-dir", str(joint_run), "--data", str(data), "--out", str(out)])

    # Nothing else, such as a temporary file.
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion.png",
        "metrics.json",
        "predictions.csv",
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    protocol = dict(
        dataset="hmdb51",
        split=2,
        crops=3,
        clip_stride=8,
        num_frames=8,
        videos=4,
        clips=12,
        views=36,
    )
    assert {key: metrics[key] for key in protocol} == protocol
    assert metrics["checkpoint"] == str(joint_run / "checkpoints" / "ckpt-1")
    for key, value in expected_numbers(3).items():
        assert metrics[key] == pytest.approx(value)
    assert metrics["per_class"]["class3"] == {"videos": 1, "correct": 1, "accuracy": 1.0}
    assert metrics["confusion"][4][3] == 1 and np.sum(metrics["confusion"]) == 4

    with open(out / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    probabilities = np.exp(fixed_bias(3)) / np.exp(fixed_bias(3)).sum()
    assert [row["media_id"] for row in rows] == [f"video{i}" for i in range(12, 16)]
    assert [row["label"] for row in rows] == [CLASSES[label] for label in TEST_LABELS]
    for row in rows:
        assert row["predicted"] == "class3" and row["clips"] == "3"
        assert float(row["probability"]) == pytest.approx(probabilities[3], abs=1e-6)
        assert row["top5_classes"] == "class3|class4|class5|class6|class7"
        top5 = [float(p) for p in row["top5_probabilities"].split("|")]
        np.testing.assert_allclose(top5, probabilities[3:8], atol=1e-6)

    image = np.asarray(Image.open(out / "confusion.png").convert("RGB"))
    assert image.shape[0] >= 8 * 12 and image.shape[1] >= 8 * 12
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert (8, 48, 107) in colours  # a full row share: the test videos' column, class3


def test_default_data_and_output_come_from_the_run(joint_run, tiny_data):
    evaluate.main(
        ["--dataset", "hmdb51", "--model-dir", str(joint_run)]
    )  # data.eval_files of the run
    metrics = json.loads((joint_run / "eval_hmdb51_split1" / "metrics.json").read_text())
    assert metrics["data"] == str(tiny_data / "test-*.tfrecord") and metrics["videos"] == 4
    assert metrics["video_top1"] == pytest.approx(expected_numbers(3)["video_top1"])


def test_a_strided_run_is_evaluated_on_its_strided_clips(tiny_data, tmp_path):
    """data.frame_stride 2: the 20-frame test videos keep 10 frames, 2 clips of 8 each (3 of
    consecutive frames)."""
    run = write_run(tmp_path / "strided", tiny_data, "data.frame_stride=2", bias=fixed_bias(3))
    evaluate.main(["--dataset", "hmdb51", "--model-dir", str(run), "--out", str(tmp_path / "out")])
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    protocol = dict(frame_stride=2, clip_stride=8, num_frames=8, videos=4, clips=8, views=8)
    assert {key: metrics[key] for key in protocol} == protocol
    assert metrics["video_top1"] == pytest.approx(expected_numbers(3)["video_top1"])


def exit_message(argv):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(argv)
    message = exit_info.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message
    return message


def test_user_mistakes_end_in_one_line_naming_the_value(joint_run, tiny_data, tmp_path):
    def error(*argv, run=joint_run):
        return exit_message([*argv, "--model-dir", str(run)])

    assert "unknown dataset 'hmdb'; valid: ucf101, hmdb51, kinetics400, demo" in error(
        "--dataset", "hmdb"
    )
    assert "no split '4'; valid: 1, 2, 3 or all" in error("--dataset", "ucf101", "--split", "4")
    assert "kinetics400 has a single test set" in error(
        "--dataset", "kinetics400", "--split", "all"
    )
    assert "--model-dir '" + str(joint_run) + "' needs a {split} placeholder" in error(
        "--dataset", "hmdb51", "--split", "all"
    )

    missing = tmp_path / "no_such_run"
    assert f"model dir '{missing}' does not exist" in error("--dataset", "hmdb51", run=missing)
    prefix = joint_run / "checkpoints" / "ckpt-99"
    assert "ckpt-99.index" in exit_message(["--dataset", "hmdb51", "--checkpoint", str(prefix)])

    nothing = str(tmp_path / "nothing-*.tfrecord")
    assert f"--data '{nothing}' matches no TFRecord files" in error(
        "--dataset", "hmdb51", "--data", nothing
    )

    pretrain = write_run(tmp_path / "pretrain", tiny_data, stage="pretrain")
    assert "is a pretrain run (frame prediction only, no classifier)" in error(
        "--dataset", "hmdb51", run=pretrain
    )

    five_classes = prepared_split(tmp_path / "five", tiny_data, 1, classes=CLASSES[:5])
    message = error("--dataset", "hmdb51", "--data", str(five_classes))
    assert (
        "has 5 classes (its manifest.json) but the model of" in message and "predicts 8" in message
    )

    split3 = str(prepared_split(tmp_path / "other", tiny_data, 3))
    assert "is split 3 (its manifest.json), not split 1" in error(
        "--dataset", "hmdb51", "--data", split3
    )
    assert "was prepared from hmdb51" in error(
        "--dataset", "ucf101", "--split", "3", "--data", split3
    )


# ---------------------------------------------------------------------------- the printed table


def table_metrics(classes, top5):
    return {
        "frame_stride": 1,
        "crops": 1,
        "num_frames": 16,
        "clip_stride": 16,
        "videos": 3783,
        "video_top1": 0.877,
        "video_top5": top5,
        "clip_top1": 0.8012,
        "mean_class_accuracy": 0.8699,
        "classes": [f"class{c}" for c in range(classes)],
    }


def test_printed_table_reads_and_top_5_is_not_reported_for_5_classes_or_fewer():
    headers = ("videos", "video top-1", "video top-5", "clip top-1", "mean class")
    summary = {
        "mean": {
            "video_top1": 0.8,
            "video_top5": 0.95,
            "clip_top1": 0.7,
            "mean_class_accuracy": 0.8,
        },
        "std": {
            "video_top1": 0.0123,
            "video_top5": 0.001,
            "clip_top1": 0.1,
            "mean_class_accuracy": 0,
        },
    }
    for classes, shown in ((4, "n/a (≤5 classes)"), (101, "95.0")):
        results = [(split, table_metrics(classes, 0.95)) for split in (1, 2, 3)]
        lines = format_table("ucf101", results, summary).splitlines()
        assert lines[0] == "ucf101 (1-crop, clips of 16 frames every 16), accuracy in %"
        header, rows = lines[1], lines[2:]
        for name in headers:  # every header whole, at least two spaces from the one before
            assert f"  {name}" in header
        ends = [header.index(name) + len(name) for name in headers]
        for row in rows:  # right-aligned under its header (the mean row has no video count)
            assert len(row) == ends[-1]
            filled = ends[1:] if row.startswith("mean") else ends
            assert all(row[end - 1] != " " and row[end : end + 2] in ("  ", "") for end in filled)
        top5 = [row[: ends[2]].split("  ")[-1].strip() for row in rows]
        assert top5 == [shown] * 3 + [shown if classes == 4 else "95.0 ± 0.1"]
        assert rows[0].startswith("split 1") and rows[3].startswith("mean ± std")
        assert "87.7" in rows[0] and "80.0 ± 1.2" in rows[3]
