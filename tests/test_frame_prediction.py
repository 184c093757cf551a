"""Next-frame prediction evaluation (paper Table 3): evaluate_frame_prediction.py and its
library."""

import csv
import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

from dynamonet_tf.config import to_dict
from dynamonet_tf.frame_metrics import MAX_PSNR, METRICS, FramePredictionScores
from dynamonet_tf.frame_prediction import (
    dataset_videos,
    evaluate,
    figure,
    folder_videos,
    moving_mask,
)
from dynamonet_tf.layout import RUN_CONFIG
from dynamonet_tf.runs import build_model
from dynamonet_tf.training.trainer import Trainer
from synthetic import _texture
from tiny_run import tiny_config, write_tiny_data
from videos import write_video

REPO = Path(__file__).resolve().parents[1]
T, SIZE = 8, 32  # the tiny runs: 8 input frames of 32 x 32
_spec = importlib.util.spec_from_file_location(
    "evaluate_frame_prediction", REPO / "evaluate_frame_prediction.py"
)
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """4 test videos of 20 frames: 2 whole clips of T + 1 = 9 frames each, and a padded third."""
    return write_tiny_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def pretrain_run(tiny_data, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("runs") / "pretrain"
    config = tiny_config(tiny_data, "pretrain", "train.epochs=1", "train.steps_per_epoch=1")
    report = Trainer(config, model_dir, progress=False).train()
    return model_dir, report


@pytest.fixture(scope="module")
def classifier_run(tiny_data, tmp_path_factory):
    """A saved, untrained plain classifier (no frame-prediction branch)."""
    model_dir = tmp_path_factory.mktemp("runs") / "classifier"
    Trainer(
        tiny_config(tiny_data, "joint", "train.classifier_only=true"), model_dir, progress=False
    )._save()
    return model_dir


def frames_model(transform, size=SIZE):
    """A stand-in for DynamoNet: ``predicted_frames = transform(input frames)``."""
    frames = keras.Input((T, size, size, 3))
    return keras.Model(frames, {"predicted_frames": keras.layers.Lambda(transform)(frames)})


def run_script(*arguments):
    """``main`` of the script; the SystemExit message when it exits with one."""
    try:
        script.main([str(a) for a in arguments] + ["--quiet"])
    except SystemExit as exit:
        return str(exit.code)
    return None


def read_outputs(out_dir):
    metrics = json.loads((out_dir / "metrics.json").read_text())
    with open(out_dir / "per_video.csv") as file:
        rows = list(csv.DictReader(file))
    return metrics, rows


def moving_square_clip(size=64):
    """T + 1 frames of a static texture with a bright 8 x 8 square at rows 28..36 moving 2
    pixels right per frame from columns 8..16. Larger than the tiny runs' frames because
    Farneback's flow spreads about its 15-pixel window around moving edges."""
    background = _texture(np.random.default_rng(0), size) * 0.5
    clip = np.repeat(background[None], T + 1, axis=0)
    for t in range(T + 1):
        clip[t, 28:36, 8 + 2 * t : 16 + 2 * t] = 1.0
    return clip


# ---------------------------------------------------------------------- scores


def test_copying_the_input_scores_exactly_as_the_baseline(tiny_data):
    """A model whose prediction of frame t + 1 is frame t IS the baseline: identical scores
    prove that both are computed on the same frames and crops, masked ones included."""
    clips = dataset_videos(
        f"{tiny_data}/test-*.tfrecord", clip_frames=T + 1, crop_size=SIZE, short_side=SIZE
    )
    evaluation = evaluate(
        frames_model(lambda x: x), clips, batch_size=3, flow_threshold=0.5, progress=False
    )
    summary = evaluation.scores.summary()
    assert summary["clips"] == 8 and summary["videos"] == 4  # the padded third clips are left out
    assert summary["masked_frames"] > 0
    for scope in (summary, summary["future_frame"]):
        assert scope["model"] == scope["copy_last_frame"]
    assert summary["model"]["psnr"] < 40  # the clips do move: copying is not perfect


def test_a_model_that_knows_the_motion_scores_perfectly():
    """On a clip panned one pixel per frame, shifting frame t by one pixel gives frame t + 1
    exactly: perfect scores prove each prediction is compared with its own target."""
    base = _texture(np.random.default_rng(1), SIZE)
    clip = np.stack([np.roll(base, t, axis=1) for t in range(T + 1)])  # cyclic: no new pixels
    shift = frames_model(lambda x: keras.ops.roll(x, 1, axis=3))
    evaluation = evaluate(
        shift, [("panned", [clip, clip])], batch_size=2, flow_threshold=0.5, progress=False
    )
    summary = evaluation.scores.summary()
    for scope in (summary, summary["future_frame"]):
        assert scope["model"]["ssim"] == pytest.approx(1.0) and scope["model"][
            "ssim_luma"
        ] == pytest.approx(1.0)
        assert scope["model"]["psnr"] == MAX_PSNR and scope["model"]["masked_psnr"] == MAX_PSNR
        assert scope["copy_last_frame"]["ssim"] < 0.9 and scope["copy_last_frame"]["psnr"] < 30
    assert summary["frames"] == 2 * T and summary["future_frame"]["frames"] == 2


def test_the_flow_mask_selects_the_moving_square():
    clip = moving_square_clip()
    mask = moving_mask(clip[3], clip[4], threshold=0.5)  # the square: columns 14..22 -> 16..24
    assert mask[30:34, 17:22].all()
    far = np.zeros_like(mask)
    far[5:8, 5:-5] = far[57:-5, 5:-5] = far[5:-5, 45:-5] = True  # 20 pixels or more from it
    assert not mask[far].any()
    assert not mask[:5].any() and not mask[:, -5:].any()  # no score where SSIM is undefined
    assert mask.mean() < 0.3


def test_masked_scores_are_those_of_the_moving_area():
    """Copying the last frame errs only on the square: over the moving area alone its error
    is larger, so masked PSNR and SSIM are lower than over whole frames."""
    clip = moving_square_clip()
    copy = frames_model(lambda x: x, size=len(clip[0]))
    evaluation = evaluate(copy, [("square", [clip])], flow_threshold=0.5, progress=False)
    baseline = evaluation.scores.summary()["copy_last_frame"]
    assert baseline["masked_psnr"] < baseline["psnr"] - 3
    assert (
        baseline["masked_ssim"] < baseline["ssim"]
        and baseline["masked_ssim_luma"] < baseline["ssim_luma"]
    )


def test_frames_without_motion_are_counted_and_left_out_of_masked_means():
    still = np.full((T + 1, SIZE, SIZE, 3), 0.5, np.float32)
    scores = FramePredictionScores(masked=True)
    frames, next_frames = still[:-1], still[1:]
    scores.add("still", frames, next_frames, next_frames, masks=np.zeros((T, SIZE, SIZE), bool))
    summary = scores.summary()
    assert summary["frames_without_motion"] == T and summary["masked_frames"] == 0
    assert summary["model"]["masked_psnr"] is None and summary["model"]["psnr"] == MAX_PSNR


def figure_panels(drawn):
    """The images a :func:`figure` draws, as uint8 ``(row, column)`` -> ``(height, width, 3)``:
    its first 4 x T axes are the frames, row by row (the flow key comes after them)."""
    return {
        (index // T, index % T): np.round(np.asarray(axes.images[0].get_array()) * 255)
        for index, axes in enumerate(drawn.axes[: 4 * T])
    }


def test_the_figure_shows_truth_prediction_difference_and_flow():
    clip = moving_square_clip()
    panels = figure_panels(figure(clip[:-1], clip[1:], clip[:-1]))  # the copy-last prediction
    np.testing.assert_array_equal(panels[0, 0], np.round(clip[1] * 255))
    np.testing.assert_array_equal(panels[1, 0], np.round(clip[0] * 255))
    difference, flow = panels[2, 0], panels[3, 0]
    assert (
        difference[28:36, 16:18].min() == 255 and difference[40:].max() == 0
    )  # where the square moved to
    assert flow.max() < 40  # the prediction copies frame t: no motion (Farneback: < 0.1 px)
    moving = figure_panels(figure(clip[:-1], clip[1:], clip[1:]))[3, 0]  # a perfect prediction
    square = moving[28:36, 10:16]
    assert square[..., 0].min() > 200 and square[..., 1:].max() < 60  # rightwards: hue 0, red
    assert moving[56:].max() < 80  # far from the square


# ---------------------------------------------------------------------- the script


def test_a_run_on_its_eval_data(pretrain_run):
    """Default data: the run's data.eval_files; the trainer's report scores the same clips
    with the same code, so their numbers agree."""
    model_dir, report = pretrain_run
    assert run_script("--model-dir", model_dir, "--figures", 1) is None
    metrics, rows = read_outputs(model_dir / "frame_prediction")
    assert metrics["clips"] == 8 and metrics["frames"] == 8 * T and len(rows) == 4
    assert metrics["checkpoint"].endswith("ckpt-1") and metrics["flow_mask"] is False
    assert metrics["ssim_settings"]["sigma"] == 1.5 and metrics["psnr_cap_db"] == MAX_PSNR
    assert metrics["per_class"] == {}  # these ids name no class (a prepared dataset's do)
    fp = report["frame_prediction"]
    assert fp["clips"] == 8
    for name in ("model", "copy_last_frame"):
        for metric in METRICS:
            assert metrics[name][metric] == pytest.approx(fp[name][metric], abs=1e-6)
    assert len(list((model_dir / "frame_prediction" / "figures").glob("*.png"))) == 1
    # Nothing else, such as a temporary file.
    assert sorted(p.name for p in (model_dir / "frame_prediction").iterdir()) == [
        "figures",
        "metrics.json",
        "per_video.csv",
    ]


def test_limits(pretrain_run, tmp_path):
    model_dir, _ = pretrain_run
    assert (
        run_script(
            "--model-dir", model_dir, "--max-clips", 3, "--out", tmp_path / "clips", "--figures", 0
        )
        is None
    )
    assert read_outputs(tmp_path / "clips")[0]["clips"] == 3
    assert (
        run_script(
            "--model-dir",
            model_dir,
            "--max-videos",
            1,
            "--out",
            tmp_path / "videos",
            "--figures",
            0,
        )
        is None
    )
    metrics, rows = read_outputs(tmp_path / "videos")
    assert (metrics["videos"], metrics["clips"], len(rows)) == (1, 2, 1)


def test_video_files_and_per_video_rows_that_add_up(pretrain_run, tmp_path):
    """Real encoded files of 1 and 3 whole clips (+ a remainder) and one too short; every
    JSON mean is the frame-weighted mean of the CSV rows."""
    model_dir, _ = pretrain_run
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    write_video(folder / "a.mp4", 9, height=48, width=64)
    write_video(folder / "sub" / "b.avi", 31, height=48, width=64)
    write_video(folder / "short.mp4", 5, height=48, width=64)
    out = tmp_path / "out"
    assert (
        run_script(
            "--model-dir",
            model_dir,
            "--videos",
            folder,
            "--flow-mask",
            "--figures",
            2,
            "--out",
            out,
        )
        is None
    )
    metrics, rows = read_outputs(out)
    assert [(row["video"], int(row["clips"])) for row in rows] == [("a.mp4", 1), ("sub/b.avi", 3)]
    assert metrics["videos_without_clip"] == ["short.mp4"] and metrics["clips"] == 4
    assert metrics["per_class"] == {}  # a.mp4 is in no class folder
    # The tiny data have no manifest: the files are decoded at the run's short side.
    assert metrics["decode_short_side"] == SIZE
    assert metrics["flow_mask"]["threshold_px"] == 0.5 and metrics["masked_frames"] > 0
    for prefix, scope, count in (
        ("", metrics, "frames"),
        ("future_", metrics["future_frame"], "frames"),
    ):
        for name in ("model", "copy_last_frame"):
            for metric in METRICS + tuple(f"masked_{m}" for m in METRICS):
                weight = (
                    f"{prefix}masked_frames" if metric.startswith("masked") else f"{prefix}{count}"
                )
                pairs = [
                    (float(r[f"{prefix}{name}_{metric}"]), int(r[weight]))
                    for r in rows
                    if int(r[weight])
                ]
                expected = sum(value * n for value, n in pairs) / sum(n for _, n in pairs)
                assert scope[name][metric] == pytest.approx(expected, abs=2e-6), (
                    prefix,
                    name,
                    metric,
                )
    figures = sorted((out / "figures").glob("*.png"))
    assert [f.name for f in figures] == ["00-a.mp4.png", "01-sub_b.avi.png"]
    # Figure 3 drawn by matplotlib: every 32-pixel frame enlarged 4x, to 128 pixels.
    width, height = Image.open(figures[0]).size
    assert width >= T * 128 and height >= 4 * 128


def test_videos_in_class_folders_are_also_scored_per_class(pretrain_run, tmp_path):
    model_dir, _ = pretrain_run
    folder = tmp_path / "videos"
    for name, frames in (("pan/a.mp4", 9), ("pan/b.mp4", 18), ("still/c.mp4", 9)):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_video(folder / name, frames, height=48, width=64)
    out = tmp_path / "out"
    assert run_script("--model-dir", model_dir, "--videos", folder, "--out", out) is None
    metrics, rows = read_outputs(out)
    per_class = metrics["per_class"]
    assert {label: scores["clips"] for label, scores in per_class.items()} == {"pan": 3, "still": 1}
    # A class's mean is over its frames: the pan with 2 clips weighs twice the other.
    pans = [row for row in rows if row["video"].startswith("pan/")]
    expected = sum(float(r["model_ssim"]) * int(r["frames"]) for r in pans) / sum(
        int(r["frames"]) for r in pans
    )
    assert per_class["pan"]["model"]["ssim"] == pytest.approx(expected, abs=2e-6)


def test_video_clips_are_whole_consecutive_and_in_order(tmp_path):
    """Each frame of write_video is 8 levels brighter than the one before: the mean of every
    frame of every clip must follow frames 0..17 of the file, none skipped or repeated."""
    write_video(tmp_path / "v.mp4", 20, height=48, width=64)
    [(video, clips)] = list(
        folder_videos(tmp_path, clip_frames=T + 1, crop_size=SIZE, short_side=SIZE)
    )
    assert video == "v.mp4" and clips.shape == (2, T + 1, SIZE, SIZE, 3)
    means = clips.mean(axis=(2, 3, 4)).ravel() * 255
    np.testing.assert_allclose(np.diff(means), 8, atol=2)
    assert means[0] == pytest.approx(40, abs=4)  # frame 0: the mean of its gradient


def test_strided_video_clips_hold_every_stride_th_frame(tmp_path):
    """At frame_stride 2 the 20 frames keep 0, 2, ..., 18: one whole clip of T + 1 = 9 kept
    frames (0..16), each 16 levels brighter than the one before."""
    write_video(tmp_path / "v.mp4", 20, height=48, width=64)
    [(_, clips)] = list(
        folder_videos(tmp_path, clip_frames=T + 1, crop_size=SIZE, short_side=SIZE, frame_stride=2)
    )
    assert clips.shape == (1, T + 1, SIZE, SIZE, 3)
    means = clips.mean(axis=(2, 3, 4)).ravel() * 255
    np.testing.assert_allclose(np.diff(means), 16, atol=2)


def test_a_strided_run_is_scored_on_strided_clips(tiny_data, tmp_path):
    """A pretrain run of data.frame_stride 2: its 20-frame test videos keep 10 frames, one whole
    clip each (consecutive frames give two), from the TFRecords and from video files alike."""
    config = tiny_config(tiny_data, "pretrain", "data.frame_stride=2")
    model_dir = tmp_path / "strided"
    model_dir.mkdir()
    (model_dir / RUN_CONFIG).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=build_model(config)), model_dir / "checkpoints", max_to_keep=1
    ).save()
    assert run_script("--model-dir", model_dir, "--figures", 0, "--out", tmp_path / "data") is None
    metrics, rows = read_outputs(tmp_path / "data")
    assert (metrics["frame_stride"], metrics["videos"], metrics["clips"]) == (2, 4, 4)
    assert [int(row["clips"]) for row in rows] == [1, 1, 1, 1]

    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "a.mp4", 20, height=48, width=64)
    write_video(folder / "short.mp4", 16, height=48, width=64)  # 8 kept frames: no clip of 9
    assert (
        run_script(
            "--model-dir",
            model_dir,
            "--videos",
            folder,
            "--figures",
            0,
            "--out",
            tmp_path / "files",
        )
        is None
    )
    metrics, _ = read_outputs(tmp_path / "files")
    assert (metrics["frame_stride"], metrics["clips"], metrics["videos_without_clip"]) == (
        2,
        1,
        ["short.mp4"],
    )


@pytest.mark.parametrize("case", ["corrupt video", "empty folder", "classifier run", "no such run"])
def test_errors_are_one_line_naming_the_path(case, pretrain_run, classifier_run, tmp_path):
    model_dir, _ = pretrain_run
    if case == "corrupt video":
        (tmp_path / "bad.mp4").write_bytes(b"\x00not a video" * 100)
        arguments, path = ["--model-dir", model_dir, "--videos", tmp_path], tmp_path / "bad.mp4"
    elif case == "empty folder":
        arguments, path = ["--model-dir", model_dir, "--videos", tmp_path], tmp_path
    elif case == "classifier run":
        arguments, path = ["--model-dir", classifier_run], classifier_run
    else:
        arguments, path = ["--checkpoint", tmp_path / "ckpt-7"], tmp_path / "ckpt-7"
    message = run_script(*arguments, "--out", tmp_path / "out")
    assert message is not None and message.startswith("error: ") and "\n" not in message
    assert str(path) in message
    assert not (tmp_path / "out").exists()
