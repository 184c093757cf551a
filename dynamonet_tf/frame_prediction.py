"""Next-frame prediction of a trained run against copying the last frame (paper Table 3).

Every whole, non-overlapping clip of T + 1 frames of each video is cut (centre crop, as in
evaluation: :mod:`dynamonet_tf.data.clips`), from the video's frames 0, s, 2s, ... (``s``
the run's ``data.frame_stride``, the spacing of its training clips, so frame t + 1 is ``s``
source frames after frame t); the model sees frames 1..T and predicts frames 2..T+1, and
each prediction of frame t + 1 is scored against the true frame t + 1 together with the
copy-the-last-frame baseline (frame t itself), on the same frames and crops: SSIM (RGB and
luma) and PSNR, with the settings of :mod:`dynamonet_tf.frame_metrics`. Padded clips (the
last one of a video in :func:`~dynamonet_tf.data.pipelines.eval_dataset`) are left out:
their repeated final frame is a stillness that copying the last frame predicts for free.

Clips come from prepared TFRecords (:func:`dataset_videos`) or straight from video files
(:func:`folder_videos`). Optionally only the moving area is scored, after Mathieu et al.
(ICLR 2016), whose protocol Table 3 follows: the pixels where the Farneback optical flow
between the true frames t and t + 1 is longer than a threshold (:func:`moving_mask`).
Their released evaluation marks a pixel as moving when a channel of the colour-coded
EpicFlow image is below 0.2, a threshold relative to each frame's largest flow (in the
Middlebury coding, about 0.8 x the maximum); here the threshold is a distance in pixels at
the evaluation resolution, which does not depend on a frame's fastest pixel.

:func:`evaluate_run` writes ``per_video.csv``, ``metrics.json`` and figures like the paper's
Figure 3 (:func:`figure`).
"""

import contextlib
import csv
import dataclasses
import io
import itertools
import json
import re
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dynamonet_tf.atomic_files import atomic_write
from dynamonet_tf.data.clips import decode_short_side, preprocess_video, split_clip, video_clips
from dynamonet_tf.data.datasets import VIDEO_EXTENSIONS
from dynamonet_tf.data.pipelines import eval_dataset
from dynamonet_tf.data.video import VideoDecodeError, decode_video
from dynamonet_tf.frame_metrics import MAX_PSNR, SSIM_BORDER, SSIM_SETTINGS, FramePredictionScores
from dynamonet_tf.layout import TEST, VAL, shards
from dynamonet_tf.names import PREDICTED_FRAMES
from dynamonet_tf.plots import figure_to_png, prediction_figure
from dynamonet_tf.run_lock import RunLockError, lock_run_folder

# Half a pixel per frame at the evaluation resolution: above what Farneback reports on a
# static frame under mild noise and JPEG coding (99th percentile 0.17-0.25 px, measured on
# a 128-pixel photograph), below the motion of moving people at that size.
DEFAULT_FLOW_THRESHOLD = 0.5
# OpenCV's documented example settings: a 3-level pyramid, 15-pixel windows.
FARNEBACK = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}

PER_VIDEO_FILE = "per_video.csv"
METRICS_FILE = "metrics.json"
RUN_SUBDIR = "frame_prediction"  # where a run's results go by default: <model dir>/<this>
FIGURES_DIR = "figures"


class FramePredictionError(Exception):
    """An evaluation that cannot run; the message names the path."""


# ---------------------------------------------------------------------- optical flow


def optical_flow(frame, next_frame):
    """Farneback flow from ``frame`` to ``next_frame`` (RGB ``(height, width, 3)`` in [0, 1],
    compared on their luma): float32 ``(height, width, 2)``, (dx, dy) in pixels."""

    def gray(image):
        return np.round(np.asarray(image, np.float64) @ [0.299, 0.587, 0.114] * 255).astype(
            np.uint8
        )

    return cv2.calcOpticalFlowFarneback(gray(frame), gray(next_frame), None, **FARNEBACK)


def moving_mask(frame, next_frame, threshold=DEFAULT_FLOW_THRESHOLD):
    """The moving area of ``next_frame``: bool ``(height, width)``, True where the flow from
    ``frame`` is longer than ``threshold`` pixels.

    The outer :data:`~dynamonet_tf.frame_metrics.SSIM_BORDER` pixels are always False: SSIM
    is not defined there, and masked PSNR and SSIM must score the same pixels.
    """
    mask = np.linalg.norm(optical_flow(frame, next_frame), axis=-1) > threshold
    mask[:SSIM_BORDER] = mask[-SSIM_BORDER:] = False
    mask[:, :SSIM_BORDER] = mask[:, -SSIM_BORDER:] = False
    return mask


def figure(frames, next_frames, predicted, *, title=None):
    """The paper's Figure 3 for one clip, a :class:`matplotlib.figure.Figure`
    (:func:`~dynamonet_tf.plots.prediction_figure`; render it with
    :func:`~dynamonet_tf.plots.figure_to_png` or :func:`~dynamonet_tf.plots.figure_to_rgb`).

    Rows: ground truth (frames 2..T+1) | prediction | |difference| | the flow from each
    input frame t to its predicted frame t + 1 (the motion the prediction shows, as in the
    paper), measured by :func:`optical_flow`. One column per predicted frame; arguments as
    in :meth:`FramePredictionScores.add`; ``title`` heads the figure (e.g. the video's id).
    """
    flows = [optical_flow(a, b) for a, b in zip(frames, predicted)]
    return prediction_figure(frames, next_frames, predicted, flows, title=title)


# ---------------------------------------------------------------------- clips


def dataset_videos(file_pattern, *, clip_frames, crop_size, short_side, frame_stride=1):
    """``(video id, clips)`` per video of prepared TFRecords, in file order.

    ``clips`` iterates over the video's whole clips of ``clip_frames`` frames, float32
    ``(clip_frames, crop_size, crop_size, 3)`` in [0, 1], cut as
    :func:`~dynamonet_tf.data.pipelines.eval_dataset` cuts them (every ``frame_stride``-th
    frame, resize, centre crop); it is empty for a video of fewer than ``clip_frames`` kept
    frames. Consume it before the next video.
    """
    try:
        dataset = eval_dataset(
            file_pattern,
            num_frames=clip_frames,
            frame_stride=frame_stride,
            crop_size=crop_size,
            short_side=short_side,
            batch_size=8,
        ).unbatch()
    except FileNotFoundError:
        raise FramePredictionError(f"{file_pattern}: no TFRecord files match.") from None
    for media_id, items in itertools.groupby(
        dataset.as_numpy_iterator(), key=lambda item: item[1]["media_id"]
    ):
        yield (
            media_id.decode(),
            (clip for clip, info in items if info["valid_frames"] == clip_frames),
        )


def folder_videos(
    folder, *, clip_frames, crop_size, short_side, frame_stride=1, decode_short_side=None
):
    """``(video id, clips)`` per video file under ``folder`` (recursively, sorted; the id is
    the path relative to ``folder``), as :func:`dataset_videos` gives them.

    Videos are decoded with PyAV at a short side of ``decode_short_side`` (default
    ``short_side``; for a run, that of its prepared frames,
    :func:`~dynamonet_tf.data.clips.decode_short_side`, as ``data/prepare.py`` stores them),
    cut into their whole non-overlapping clips of ``clip_frames`` of their frames 0, s, 2s,
    ... (``s = frame_stride``; :func:`~dynamonet_tf.data.clips.video_clips` without the
    padded last clip), then resized to ``short_side`` and centre-cropped as evaluation does
    (:func:`~dynamonet_tf.data.clips.preprocess_video`).

    Raises:
        FramePredictionError: ``folder`` is not a folder or holds no video file; later, on
            iteration, a video that cannot be decoded.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FramePredictionError(f"{folder}: not a folder of videos.")
    paths = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
    )
    if not paths:
        patterns = " ".join(f"*{extension}" for extension in VIDEO_EXTENSIONS)
        raise FramePredictionError(f"{folder}: no video files ({patterns}).")

    def clips_of(path):
        try:
            video, _ = decode_video(path, short_side=decode_short_side or short_side)
        except VideoDecodeError as error:
            raise FramePredictionError(f"{path}: cannot be decoded ({error}).") from None
        clips = video_clips(video, clip_frames, frame_stride, pad_last=False)
        if not len(clips):
            return []
        return preprocess_video(clips, short_side=short_side, crop_size=crop_size).numpy()

    return ((path.relative_to(folder).as_posix(), clips_of(path)) for path in paths)


# ---------------------------------------------------------------------- evaluation


@dataclasses.dataclass
class Evaluation:
    """``scores``: the :class:`FramePredictionScores`; ``figures``: ``(video id, matplotlib
    Figure)`` of the first clip of the first videos (:func:`figure`); ``videos_without_clip``:
    the ids of videos shorter than one clip."""

    scores: FramePredictionScores
    figures: list
    videos_without_clip: list


def evaluate(
    model, videos, *, batch_size=8, flow_threshold=None, max_clips=None, figures=0, progress=True
):
    """Predicts the next frames of every clip and scores them against copying the last frame.

    Args:
        model: a Keras model taking frames ``(batch, T, height, width, 3)`` in [0, 1] whose
            outputs include ``"predicted_frames"``, its prediction of frames 2..T+1, same shape.
        videos: ``(video id, clips)`` pairs, each clip ``(T + 1, height, width, 3)`` in [0, 1]
            (:func:`dataset_videos`, :func:`folder_videos`).
        batch_size: clips per model call (batches span videos).
        flow_threshold: score the moving area too (:func:`moving_mask` with this threshold
            in pixels); None scores whole frames only.
        max_clips: stop after this many clips.
        figures: make :func:`figure` of the first clip of this many videos (the first ones
            that have a whole clip).
        progress: show a progress bar of clips.

    Returns:
        An :class:`Evaluation`.
    """
    scores = FramePredictionScores(masked=flow_threshold is not None)
    evaluation = Evaluation(scores, [], [])
    pending = []  # (video id, clip, wanted as a figure)

    def run_batch():
        frames, next_frames = split_clip(np.stack([clip for _, clip, _ in pending]))
        predicted = tf.cast(
            model(tf.constant(frames), training=False)[PREDICTED_FRAMES], tf.float32
        ).numpy()
        for (video, _, wanted), inputs, truth, prediction in zip(
            pending, frames, next_frames, predicted
        ):
            masks = None
            if flow_threshold is not None:
                masks = np.stack([moving_mask(a, b, flow_threshold) for a, b in zip(inputs, truth)])
            scores.add(video, inputs, truth, prediction, masks=masks)
            if wanted:
                evaluation.figures.append((video, figure(inputs, truth, prediction, title=video)))
        bar.update(len(pending))
        pending.clear()

    figures_left = figures
    clips = itertools.islice(_whole_clips(videos, evaluation.videos_without_clip), max_clips)
    with tqdm(
        total=max_clips,
        unit="clip",
        desc="frame prediction",
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        for video, clip, first_of_video in clips:
            wanted = first_of_video and figures_left > 0
            figures_left -= wanted
            pending.append((video, np.asarray(clip, np.float32), wanted))
            if len(pending) == batch_size:
                run_batch()
        if pending:
            run_batch()
    return evaluation


def _whole_clips(videos, videos_without_clip):
    """``(video id, clip, whether it is the video's first)`` of every clip of ``videos``;
    the ids of videos without one are appended to ``videos_without_clip``. Lazy, so that
    stopping early decodes no further video."""
    for video, clips in videos:
        first = True
        for clip in clips:
            yield video, clip, first
            first = False
        if first:
            videos_without_clip.append(video)


def evaluate_run(
    run,
    *,
    data=None,
    videos=None,
    out_dir=None,
    batch_size=8,
    max_clips=None,
    max_videos=None,
    flow_threshold=None,
    figures=4,
    progress=True,
):
    """Table 3 evaluation of a :class:`~dynamonet_tf.runs.LoadedRun`; writes the results.

    Args:
        run: the loaded run; its model must predict frames (a pretrain or joint run).
        data: prepared TFRecords: a glob, or a prepared folder (its ``test-*.tfrecord``, else
            ``val-*.tfrecord``). Default: the run's ``data.eval_files``.
        videos: a folder of video files instead of ``data``.
        out_dir: where ``per_video.csv``, ``metrics.json`` and ``figures/`` go; default
            ``<model dir>/frame_prediction``.
        max_videos: only the first this many videos (shorter ones included).
        Others: as in :func:`evaluate`.

    Returns:
        ``(metrics, out_dir)``: the dict written to ``metrics.json`` and the folder written.

    Raises:
        FramePredictionError: a model without predicted frames, data that cannot be read.
    """
    out_dir = Path(out_dir) if out_dir else run.model_dir / RUN_SUBDIR
    # Held from before the work until the results are written.
    with _writing_into_run(run, out_dir):
        if PREDICTED_FRAMES not in run.model.output:
            raise FramePredictionError(
                f"{run.model_dir}: its {run.config.train.stage} model (classifier_only="
                f"{run.config.train.classifier_only}) predicts no frames; evaluate a pretrain or "
                "joint run."
            )
        source, geometry, clips_per_video = _clips_to_score(run, data, videos)
        evaluation = evaluate(
            run.model,
            itertools.islice(clips_per_video, max_videos),
            batch_size=batch_size,
            flow_threshold=flow_threshold,
            max_clips=max_clips,
            figures=figures,
            progress=progress,
        )
        metrics = _run_metrics(run, source, geometry, evaluation, flow_threshold)
        _write_results(out_dir, evaluation, metrics)
    return metrics, out_dir


def _clips_to_score(run, data, videos):
    """``(source, geometry, clips_per_video)``: what :func:`evaluate_run` scores, cut as the
    run's clips are (one frame more: the target of the last)."""
    geometry = {
        "clip_frames": run.config.data.num_frames + 1,
        "crop_size": run.config.data.crop_size,
        "short_side": run.config.data.short_side,
        "frame_stride": run.config.data.frame_stride,
    }
    if videos is not None:
        # Decoded at the short side of the run's prepared frames, resized as evaluation does.
        decode_at = decode_short_side(run.config.data)
        source = {"videos": str(videos), "decode_short_side": decode_at}
        return source, geometry, folder_videos(videos, **geometry, decode_short_side=decode_at)
    data = _resolve_data(data if data is not None else run.config.data.eval_files, run.model_dir)
    return {"data": data}, geometry, dataset_videos(data, **geometry)


def _run_metrics(run, source, geometry, evaluation, flow_threshold):
    """The ``metrics.json`` of :func:`evaluate_run`: the scores and how they were made."""
    summary = evaluation.scores.summary()
    if not summary["clips"]:
        clip_frames, stride = geometry["clip_frames"], geometry["frame_stride"]
        raise FramePredictionError(
            f"{source.get('videos') or source['data']}: no video has "
            f"{(clip_frames - 1) * stride + 1} frames, the length of one clip ({clip_frames} "
            f"frames {stride} apart)."
        )
    return {
        "checkpoint": run.checkpoint,
        **source,
        **geometry,
        **summary,
        "videos_without_clip": evaluation.videos_without_clip,
        "per_class": evaluation.scores.per_class(),
        "ssim_settings": {**SSIM_SETTINGS, "rgb": "mean over the channels", "luma": "Y of BT.601"},
        "psnr_cap_db": MAX_PSNR,
        "flow_mask": (
            {
                "method": "Farneback",
                "threshold_px": flow_threshold,
                "farneback": FARNEBACK,
                "border_px": SSIM_BORDER,
            }
            if flow_threshold is not None
            else False
        ),
    }


def _writing_into_run(run, out_dir):
    """The run folder's lock when the results go inside it (the default), else nothing: a
    run being trained is refused (its checkpoints change under the reader), and so is a
    second evaluation writing the same folder (:mod:`dynamonet_tf.run_lock`)."""
    if not out_dir.resolve().is_relative_to(run.model_dir.resolve()):
        return contextlib.nullcontext()
    try:
        return lock_run_folder(
            run.model_dir, advice="wait for it to finish, or write the results elsewhere with --out"
        )
    except RunLockError as error:
        raise FramePredictionError(str(error)) from None


def _resolve_data(data, model_dir):
    """A glob of TFRecords from ``data``: itself, or the test (else val) shards of a prepared
    folder."""
    if data is None:
        raise FramePredictionError(
            f"{model_dir}: the run has no data.eval_files; pass --data or --videos."
        )
    if Path(data).is_dir():
        for subset in (TEST, VAL):
            pattern = shards(data, subset)
            if tf.io.gfile.glob(pattern):
                return pattern
        raise FramePredictionError(
            f"{data}: a folder without {Path(shards('', TEST)).name} or "
            f"{Path(shards('', VAL)).name} shards."
        )
    return str(data)


# ---------------------------------------------------------------------- output


def _write_results(out_dir, evaluation, metrics):
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = evaluation.scores.per_video()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                key: f"{value:.6f}" if isinstance(value, float) else value
                for key, value in row.items()
            }
        )
    atomic_write(out_dir / PER_VIDEO_FILE, text.getvalue())
    atomic_write(out_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    if evaluation.figures:
        (out_dir / FIGURES_DIR).mkdir(exist_ok=True)
    for index, (video, drawn) in enumerate(evaluation.figures):
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", video)
        atomic_write(out_dir / FIGURES_DIR / f"{index:02d}-{name}.png", figure_to_png(drawn))
