"""The project's figures, drawn with matplotlib: the paper's Figure 3 and the confusion matrix.

- :func:`prediction_figure`: next-frame prediction of one clip (ground truth, prediction,
  |difference|, optical flow), with row labels, frame numbers, a key of the flow colours and
  a caption of the clip's SSIM and PSNR against copying the last frame
  (:mod:`dynamonet_tf.frame_metrics`). ``frame_prediction.figure`` computes the flow and
  calls it; ``evaluate_frame_prediction.py`` saves it as PNG and training logs it to
  TensorBoard.
- :func:`confusion_figure`: an evaluation's confusion matrix (``confusion.png``).
- :func:`figure_to_rgb` and :func:`figure_to_png` render either.

Figures are :class:`matplotlib.figure.Figure` objects on an Agg canvas, never pyplot: no
global figure registry to leak memory in a training loop, no GUI backend to pick up.
"""

import io
import math

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.textpath import TextPath

from dynamonet_tf.frame_metrics import FramePredictionScores, clip_arrays

DPI = 100
# The confusion matrix's class names are 6-point text at 101 classes: sharper at this dpi.
CONFUSION_DPI = 150
# Each frame of Figure 3 is enlarged by a whole factor (nearest neighbour, so pixels stay
# sharp squares) to at least this many pixels on its shorter side: 64-pixel crops are too
# small to read at 1x.
MIN_FRAME_PIXELS = 128
# |difference| images are scaled by this so that small errors show.
DIFFERENCE_GAIN = 4.0
# Flow images are coloured relative to the clip's longest flow, but at least this many
# pixels, so that the noise of a static clip stays dark.
MIN_FLOW_SCALE = 1.0
ROW_LABELS = (
    "ground truth t+1",
    "prediction",
    f"|difference| ×{DIFFERENCE_GAIN:g}",
    "optical flow\nframe t → prediction",
)
# Confusion matrix cells: at least this many inches (about 11 points, room for a 6-point
# class name per row and column at 101 classes), at most this many.
MIN_CELL_INCHES = 0.16
MAX_CELL_INCHES = 0.5
# Counts are written into the cells up to this many classes; above, cells are too small.
MAX_CLASSES_WITH_COUNTS = 30
SHARE_LABEL = "share of the true class's videos"


# ---------------------------------------------------------------------- rendering


def figure_to_rgb(figure):
    """``figure`` rendered at its own size and dpi: uint8 ``(height, width, 3)``."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def figure_to_png(figure):
    """``figure`` as PNG bytes, at its own size and dpi (the size of :func:`figure_to_rgb`)."""
    FigureCanvasAgg(figure)  # savefig draws on the figure's canvas: Agg's, whatever it had
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=figure.dpi)
    return png.getvalue()


def _figure(width, height, dpi=DPI):
    """A white Figure of ``width`` x ``height`` inches at ``dpi``, on an Agg canvas."""
    figure = Figure(figsize=(width, height), dpi=dpi, facecolor="white")
    FigureCanvasAgg(figure)
    return figure


def _pixel_axes(figure, left, top, width, height):
    """Axes at a rectangle given in pixels from the figure's top left corner."""
    figure_width, figure_height = figure.canvas.get_width_height()
    return figure.add_axes(
        (
            left / figure_width,
            1 - (top + height) / figure_height,
            width / figure_width,
            height / figure_height,
        )
    )


# ---------------------------------------------------------------------- Figure 3


def flow_to_rgb(flows):
    """Flow fields ``(time, height, width, 2)`` as images ``(time, height, width, 3)`` in
    [0, 1]: hue the direction, brightness the length relative to the longest flow of all
    of them (at least :data:`MIN_FLOW_SCALE` pixels), OpenCV's HSV coding."""
    flows = np.asarray(flows, np.float32)
    magnitude, angle = cv2.cartToPolar(
        flows[..., 0].ravel(), flows[..., 1].ravel(), angleInDegrees=True
    )
    magnitude, angle = magnitude.reshape(flows.shape[:-1]), angle.reshape(flows.shape[:-1])
    scale = flow_scale(flows)
    hsv = np.stack(
        [angle / 2, np.full_like(angle, 255), np.clip(255 * magnitude / scale, 0, 255)], axis=-1
    ).astype(np.uint8)
    return np.stack([cv2.cvtColor(image, cv2.COLOR_HSV2RGB) for image in hsv]) / 255.0


def flow_scale(flows):
    """The flow length in pixels that :func:`flow_to_rgb` shows at full brightness."""
    return max(float(np.linalg.norm(np.asarray(flows, np.float64), axis=-1).max()), MIN_FLOW_SCALE)


def flow_wheel(scale, size=65):
    """The key of :func:`flow_to_rgb`'s colours for flows up to ``scale`` pixels long:
    ``(size, size, 3)`` in [0, 1], a disc whose every pixel is coloured as the flow from the
    centre to it, the rim being ``scale`` pixels long; white outside. Image rows point down,
    as flow's dy does, so the disc reads as the frames do."""
    coordinates = np.linspace(-1.0, 1.0, size)  # odd size: the rim's (+-1, 0) is a pixel
    flows = np.stack(np.meshgrid(coordinates, coordinates), axis=-1)
    outside = np.linalg.norm(flows, axis=-1) > 1.0
    # Zero outside, so that the longest flow, the one shown at full brightness, is the rim.
    flows[outside] = 0.0
    wheel = flow_to_rgb(flows[None] * scale)[0]
    wheel[outside] = 1.0
    return wheel


def prediction_scores(frames, next_frames, predicted):
    """The clip's means over its predicted frames, as ``evaluate_frame_prediction.py``
    reports them: ``{"model": {...}, "copy_last_frame": {...}}`` of
    :class:`~dynamonet_tf.frame_metrics.FramePredictionScores` (``ssim``, ``psnr``, ...)."""
    scores = FramePredictionScores()
    scores.add("clip", frames, next_frames, predicted)
    summary = scores.summary()
    return {predictor: summary[predictor] for predictor in ("model", "copy_last_frame")}


def prediction_figure(frames, next_frames, predicted, flows, *, title=None):
    """The paper's Figure 3 for one clip, a :class:`~matplotlib.figure.Figure`.

    One column per predicted frame t + 1 = 2..T+1 (titled with its number in the clip);
    rows: the ground truth | the prediction | its |difference| x :data:`DIFFERENCE_GAIN` |
    ``flows`` coloured by :func:`flow_to_rgb`, with a key (:func:`flow_wheel`). Each frame
    is enlarged by a whole factor to at least :data:`MIN_FRAME_PIXELS` pixels; the caption
    gives the clip's SSIM and PSNR (:func:`prediction_scores`).

    Args:
        frames: the model's input, frames 1..T, ``(time, height, width, 3)`` in [0, 1].
        next_frames: the truth, frames 2..T+1, same shape.
        predicted: the prediction of ``next_frames``, same shape (clipped to [0, 1] here).
        flows: ``(time, height, width, 2)``, the flow (dx, dy) in pixels of each row of the
            flow row, e.g. from each input frame t to its predicted frame t + 1.
        title: the first line of the figure's title, e.g. the video's id.
    """
    frames, next_frames, predicted = clip_arrays(frames, next_frames, predicted)
    time, height, width, _ = frames.shape
    scale = flow_scale(flows)
    rows = (
        next_frames,
        np.clip(predicted, 0.0, 1.0),
        np.clip(DIFFERENCE_GAIN * np.abs(next_frames - predicted), 0.0, 1.0),
        flow_to_rgb(flows),
    )

    # The layout in pixels: a whole enlargement of every frame, and gaps between them.
    zoom = math.ceil(MIN_FRAME_PIXELS / min(height, width))
    frame_width, frame_height = width * zoom, height * zoom
    column_gap, row_gap = 8, 16
    left, top, bottom = 160, 76, 64  # row labels; title and frame numbers; caption
    key_left = left + time * frame_width + (time - 1) * column_gap + 32
    figure_width = max(key_left + frame_height + 48, 960)  # room for the caption's line
    figure_height = top + len(rows) * frame_height + (len(rows) - 1) * row_gap + bottom
    figure = _figure(figure_width / DPI, figure_height / DPI)

    for row, (images, label) in enumerate(zip(rows, ROW_LABELS)):
        for column, image in enumerate(images):
            axes = _pixel_axes(
                figure,
                left + column * (frame_width + column_gap),
                top + row * (frame_height + row_gap),
                frame_width,
                frame_height,
            )
            axes.imshow(image, interpolation="nearest", aspect="auto")
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(f"t+1 = {column + 2}", fontsize=10)
            if column == 0:
                axes.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)

    # The key beside the flow row, drawn by the same coding at the clip's own scale.
    key = _pixel_axes(
        figure,
        key_left,
        top + (len(rows) - 1) * (frame_height + row_gap),
        frame_height,
        frame_height,
    )
    key.imshow(flow_wheel(scale, size=frame_height | 1), interpolation="nearest")
    key.set_axis_off()
    key.set_title(
        f"flow key: hue = direction,\nbrightness = length\n(full: {scale:.2f} px)", fontsize=8
    )

    scores = prediction_scores(frames, next_frames, predicted)
    model, copy = scores["model"], scores["copy_last_frame"]
    heading = (
        f"next-frame prediction of frames 2..{time + 1} from frames 1..{time}: frame "
        f"{time + 1} is the one the model has not seen"
    )
    figure.text(
        0.5,
        1 - 12 / figure_height,
        heading if title is None else f"{title}\n{heading}",
        ha="center",
        va="top",
        fontsize=11,
        parse_math=False,
    )
    figure.text(
        12 / figure_width,
        12 / figure_height,
        f"SSIM {model['ssim']:.3f} (copying the last frame: {copy['ssim']:.3f})   "
        f"PSNR {model['psnr']:.2f} dB (copying the last frame: {copy['psnr']:.2f} dB)\n"
        f"means over the clip's {time} predicted frames; SSIM over RGB, PSNR capped at "
        "100 dB (dynamonet_tf.frame_metrics)",
        ha="left",
        va="bottom",
        fontsize=10,
    )
    return figure


# ---------------------------------------------------------------------- confusion matrix


def _text_inches(text, fontsize):
    """The width in inches of ``text`` set in matplotlib's default font at ``fontsize``."""
    return TextPath((0, 0), text, size=fontsize).get_extents().width / 72


def confusion_figure(confusion, names, *, dataset=None, split=None, checkpoint=None, top1=None):
    """A confusion matrix as a :class:`~matplotlib.figure.Figure`: rows true classes,
    columns predicted classes, both labelled with the class names, each cell coloured by its
    share of the row's videos (the true class's), with a colour bar.

    Cells are :data:`MIN_CELL_INCHES` to :data:`MAX_CELL_INCHES` wide, so the figure grows
    with the class count; up to :data:`MAX_CLASSES_WITH_COUNTS` classes every non-zero cell
    also shows its count of videos.

    Args:
        confusion: ``(classes, classes)`` video counts, ``[true class][predicted class]``.
        names: the class names, in class order.
        dataset, split, checkpoint, top1: what the title names (those given): the data, its
            split, the weights evaluated and their video top-1 accuracy (a fraction).
    """
    counts = np.asarray(confusion, np.int64)
    classes = len(names)
    if counts.shape != (classes, classes):
        raise ValueError(
            f"a confusion matrix of {classes} classes is {classes} x {classes}; got {counts.shape}."
        )
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)

    cell = float(np.clip(6.0 / classes, MIN_CELL_INCHES, MAX_CELL_INCHES))
    fontsize = min(9.0, 0.55 * cell * 72)  # 6.3 points in the smallest cells
    heading = ", ".join(
        part
        for part in (
            dataset,
            None if split is None else f"split {split}",
            None if top1 is None else f"video top-1 {100 * top1:.1f}%",
        )
        if part
    )
    title_lines = [
        line
        for line in (
            f"confusion matrix: {heading}" if heading else "confusion matrix",
            None if checkpoint is None else f"checkpoint {checkpoint}",
        )
        if line
    ]
    # Margins in inches: class names (rotated below), axis labels, title, colour bar.
    names_width = max(_text_inches(str(name), fontsize) for name in names) + 0.1
    left = bottom = names_width + 0.35
    top = 0.25 + 0.2 * len(title_lines)
    right = 1.0
    side = classes * cell
    title_width = max(_text_inches(line, 10) for line in title_lines) + 0.3
    width = max(left + side + right, title_width)
    height = bottom + side + top
    figure = _figure(width, height, dpi=CONFUSION_DPI)

    axes = figure.add_axes((left / width, bottom / height, side / width, side / height))
    image = axes.imshow(
        shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto"
    )
    ticks = np.arange(classes)
    axes.set_xticks(ticks, [str(name) for name in names], rotation=90, fontsize=fontsize)
    axes.set_yticks(ticks, [str(name) for name in names], fontsize=fontsize)
    axes.tick_params(length=2, pad=1)
    axes.set_xlabel("predicted class", fontsize=9)
    axes.set_ylabel("true class", fontsize=9)
    if classes <= MAX_CLASSES_WITH_COUNTS:
        for true, predicted in zip(*np.nonzero(counts)):
            axes.text(
                predicted,
                true,
                str(counts[true, predicted]),
                ha="center",
                va="center",
                fontsize=fontsize,
                # Readable on both ends of the colour map.
                color="white" if shares[true, predicted] > 0.5 else "black",
            )
    bar = figure.add_axes(
        ((left + side + 0.15) / width, bottom / height, 0.15 / width, side / height)
    )
    figure.colorbar(image, cax=bar, label=SHARE_LABEL)
    figure.text(
        0.5,
        1 - 0.1 / height,
        "\n".join(title_lines),
        ha="center",
        va="top",
        fontsize=10,
        parse_math=False,
    )
    return figure
