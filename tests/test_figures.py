"""The matplotlib figures (dynamonet_tf.plots): Figure 3 as evaluate_frame_prediction.py saves it
and training logs it to TensorBoard, the confusion matrix of evaluate.py, and the script that
renders the README's examples. Tiny, synthetic inputs; nothing is trained."""

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from matplotlib.text import Text
from PIL import Image

from dynamonet_tf import frame_metrics
from dynamonet_tf.evaluation import write_outputs
from dynamonet_tf.frame_prediction import figure
from dynamonet_tf.plots import (
    CONFUSION_DPI,
    MIN_CELL_INCHES,
    ROW_LABELS,
    SHARE_LABEL,
    confusion_figure,
    figure_to_png,
    figure_to_rgb,
    flow_to_rgb,
    flow_wheel,
)
from dynamonet_tf.training.figures import FILTER_TAP_PIXELS, log_prediction_images

REPO = Path(__file__).resolve().parents[1]
T, SIZE = 3, 24  # 24-pixel frames: enlarged 6x, to 144 pixels


def texts(drawn):
    """Every string a Figure shows (titles, axis labels, tick labels, free text)."""
    return [text.get_text() for text in drawn.findobj(Text) if text.get_text()]


@pytest.fixture(scope="module")
def clip():
    """``(frames 1..T, frames 2..T+1, prediction)``: a texture moving 2 pixels right per frame,
    predicted in place but dimmed, by a different amount each frame: prediction and baseline
    score apart, and the mean PSNR over frames is not the PSNR of the mean error."""
    rng = np.random.default_rng(0)
    texture = rng.random((SIZE, SIZE + 2 * (T + 1), 3))
    video = np.stack([texture[:, 2 * t : 2 * t + SIZE] for t in range(T + 1)])
    predicted = video[1:] * np.array([0.98, 0.9, 0.7])[:, None, None, None]
    return video[:-1], video[1:], predicted


# ---------------------------------------------------------------------- Figure 3


def test_figure3_draws_every_frame_at_least_128_pixels(clip):
    drawn = figure(*clip, title="clip")
    frames = drawn.axes[: 4 * T]  # row by row; the flow key comes after
    for axes in frames:
        extent = axes.get_window_extent()
        assert round(extent.width) == round(extent.height) == 6 * SIZE >= 128
    png = Image.open(io.BytesIO(figure_to_png(drawn)))
    assert png.size[0] >= T * 128 and png.size[1] >= 4 * 128
    # The same pixels as the array TensorBoard gets.
    assert figure_to_rgb(drawn).shape == (png.size[1], png.size[0], 3)
    # Gaps between rows and between columns, none overlapping.
    boxes = [axes.get_window_extent() for axes in frames]
    assert boxes[1].x0 - boxes[0].x1 >= 4 and boxes[0].y0 - boxes[T].y1 >= 4


def test_figure3_labels_rows_frames_and_scores_the_clip(clip):
    frames, next_frames, predicted = clip
    shown = texts(figure(*clip, title="v_YoYo_g01_c01"))
    assert set(ROW_LABELS) <= set(shown)
    assert {f"t+1 = {t}" for t in range(2, T + 2)} <= set(shown)
    assert any(text.startswith("v_YoYo_g01_c01\n") for text in shown)
    caption = next(text for text in shown if text.startswith("SSIM"))

    def means(predictions):
        return (
            np.mean([frame_metrics.ssim(a, b) for a, b in zip(next_frames, predictions)]),
            np.mean([frame_metrics.psnr(a, b) for a, b in zip(next_frames, predictions)]),
        )

    (ssim, psnr), (copy_ssim, copy_psnr) = means(predicted), means(frames)
    # The test can tell the model from the baseline, and the reported PSNR from another.
    assert abs(ssim - copy_ssim) > 0.01 and abs(psnr - copy_psnr) > 0.1
    mean_error = np.mean([np.mean((a - b) ** 2) for a, b in zip(next_frames, predicted)])
    assert abs(psnr - frame_metrics.psnr_of_mse(mean_error)) > 0.1
    assert caption.startswith(
        f"SSIM {ssim:.3f} (copying the last frame: {copy_ssim:.3f})   "
        f"PSNR {psnr:.2f} dB (copying the last frame: {copy_psnr:.2f} dB)"
    )


def test_the_flow_key_is_the_flow_coding():
    """Every pixel of the disc is coloured as the flow from its centre to it, by flow_to_rgb
    at the same scale: right red, the rim at full brightness, the centre black."""
    size, scale = 33, 2.5
    wheel = flow_wheel(scale, size=size)
    centre = size // 2
    for row, column in ((centre, size - 1), (size - 1, centre), (3, 9), (centre, centre)):
        flow = np.array([column - centre, row - centre]) / centre * scale
        # flow_to_rgb scales to the longest flow it is given: the rim, ``scale`` long.
        coded = flow_to_rgb(np.array([flow, [scale, 0.0]])[:, None, None])[0, 0, 0]
        np.testing.assert_allclose(wheel[row, column], coded, atol=1 / 255)
    np.testing.assert_allclose(wheel[centre, -1], [1.0, 0.0, 0.0])  # rightwards: red
    np.testing.assert_array_equal(wheel[centre, centre], 0.0)
    np.testing.assert_array_equal(wheel[0, 0], 1.0)  # outside the disc: white


def test_training_logs_the_same_figure_to_tensorboard(clip, tmp_path):
    frames, next_frames, predicted = (tf.constant(a[None], tf.float32) for a in clip)
    filters = tf.fill((1, T, 5, 5), 1 / 25)
    writer = tf.summary.create_file_writer(str(tmp_path))
    log_prediction_images(
        writer,
        7,
        frames,
        {"predicted_frames": predicted, "filters": filters},
        {"predicted_frames": next_frames},
    )
    writer.flush()
    images = {}
    for path in tmp_path.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                width, height, png = tf.make_ndarray(value.tensor)[:3]
                images[value.tag] = (int(width), int(height), Image.open(io.BytesIO(png)))
    expected = figure_to_rgb(figure(*clip, title="validation clip, step 7"))
    width, height, image = images["frame_prediction"]
    assert (height, width) == expected.shape[:2] and image.size == (width, height)
    np.testing.assert_array_equal(np.asarray(image.convert("RGB")), expected)
    width, height, _ = images["filters"]
    assert (width, height) == (T * (5 * FILTER_TAP_PIXELS + 2), 5 * FILTER_TAP_PIXELS + 2)


# ---------------------------------------------------------------------- confusion matrix


def synthetic_counts(classes, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 3, (classes, classes))
    counts[np.arange(classes), np.arange(classes)] += 10
    return counts


def test_a_101_class_matrix_names_every_class_on_both_axes():
    names = [f"Action{i:03d}" for i in range(101)]
    counts = synthetic_counts(101)
    drawn = confusion_figure(
        counts, names, dataset="ucf101", split=3, checkpoint="/runs/r/ckpt-40", top1=0.8125
    )
    matrix, bar = drawn.axes
    assert [label.get_text() for label in matrix.get_xticklabels()] == names
    assert [label.get_text() for label in matrix.get_yticklabels()] == names
    assert all(label.get_rotation() == 90 for label in matrix.get_xticklabels())
    assert bar.get_ylabel() == SHARE_LABEL and matrix.images[0].colorbar is not None
    # Row-normalised colours: each true class's share of its videos.
    np.testing.assert_allclose(
        matrix.images[0].get_array(), counts / counts.sum(axis=1, keepdims=True)
    )
    assert not matrix.texts  # no counts in cells this small
    title = [text for text in texts(drawn) if text.startswith("confusion matrix")]
    assert title == [
        "confusion matrix: ucf101, split 3, video top-1 81.2%\ncheckpoint /runs/r/ckpt-40"
    ]
    # Each cell at least MIN_CELL_INCHES wide, room for a line of 6-point text.
    cell = matrix.get_window_extent().width / 101
    assert cell >= MIN_CELL_INCHES * CONFUSION_DPI - 0.5
    assert min(label.get_fontsize() for label in matrix.get_xticklabels()) >= 6


def test_a_small_matrix_writes_its_counts():
    counts = np.array([[3, 1, 0, 0], [0, 4, 0, 0], [2, 0, 1, 1], [0, 0, 0, 5]])
    matrix = confusion_figure(counts, ["a", "b", "c", "d"]).axes[0]
    written = {
        (int(t.get_position()[1]), int(t.get_position()[0])): t.get_text() for t in matrix.texts
    }
    assert written == {
        tuple(map(int, cell)): str(counts[tuple(cell)]) for cell in np.argwhere(counts)
    }


def test_the_matrix_grows_with_the_class_count():
    sizes = [
        figure_to_rgb(confusion_figure(synthetic_counts(n), [f"c{i}" for i in range(n)])).shape
        for n in (4, 30, 101)
    ]
    assert sizes[0][0] < sizes[1][0] < sizes[2][0] and sizes[0][1] < sizes[1][1] < sizes[2][1]


def test_write_outputs_saves_the_titled_matrix(tmp_path):
    counts = synthetic_counts(5)
    metrics = {
        "dataset": "hmdb51",
        "split": 2,
        "checkpoint": "/runs/r/checkpoints/ckpt-3",
        "video_top1": 0.5,
        "classes": [f"class{i}" for i in range(5)],
        "confusion": counts.tolist(),
    }
    write_outputs(tmp_path, metrics, [])
    expected = confusion_figure(
        counts,
        metrics["classes"],
        dataset="hmdb51",
        split=2,
        checkpoint="/runs/r/checkpoints/ckpt-3",
        top1=0.5,
    )
    saved = np.asarray(Image.open(tmp_path / "confusion.png").convert("RGB"))
    np.testing.assert_array_equal(saved, figure_to_rgb(expected))
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


# ---------------------------------------------------------------------- the README's examples


def test_the_docs_script_renders_both_examples(tmp_path):
    spec = importlib.util.spec_from_file_location("render", REPO / "docs" / "figures" / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    assert len(render.UCF101_CLASSES) == len(set(render.UCF101_CLASSES)) == 101
    render.main(["--out", str(tmp_path)])
    for name in ("figure3_example.png", "confusion_ucf101_synthetic.png"):
        # The committed images are the script's output (same pixel size).
        committed = REPO / "docs" / "figures" / name
        assert Image.open(tmp_path / name).size == Image.open(committed).size
        assert committed.stat().st_size < 1_000_000
