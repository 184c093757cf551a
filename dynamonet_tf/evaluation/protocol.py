"""The paper's video-level test protocol (§4.3, Table 5): clips scored, views and clips
averaged per video, top-1 / top-5 of the average.

:func:`evaluate_clips` takes any callable from frames to logits and any dataset of
``(frames, info)`` batches as :func:`~dynamonet_tf.data.pipelines.eval_dataset` cuts them;
``evaluate.py`` (:mod:`dynamonet_tf.evaluation.splits`) and the trainer's end-of-run accuracy
both score through it. :func:`class_names` and :func:`videos_in` read what a prepared
dataset's manifest says about the classes and videos evaluated.
"""

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dynamonet_tf.data.pipelines import list_files
from dynamonet_tf.data.prepare import read_manifest
from dynamonet_tf.names import LOGITS
from dynamonet_tf.video_accuracy import accuracy_report, average_clip_scores

# The numbers an evaluation is summarised by (and averaged over splits).
HEADLINE = ("video_top1", "video_top5", "clip_top1", "mean_class_accuracy")
TOP_K_SAVED = 5


class EvaluationError(Exception):
    """A run, data set or option that cannot be evaluated; the message names it and the way out."""


@dataclasses.dataclass(frozen=True)
class ClipScores:
    """Softmax scores per clip, the views (crops) of each clip averaged.

    ``media_ids``: ``(clips,)`` str; ``labels``: ``(clips,)`` int64; ``probabilities``:
    ``(clips, classes)`` float64; ``views``: how many model inputs they came from.
    """

    media_ids: list
    labels: np.ndarray
    probabilities: np.ndarray
    views: int


def model_logits(model):
    """The callable :func:`evaluate_clips` takes: frames -> float32 logits ``(batch, classes)``."""
    return lambda frames: tf.cast(model(frames, training=False)[LOGITS], tf.float32)


def softmax(logits):
    """Row-wise softmax of ``(n, classes)`` logits, in float64."""
    logits = np.asarray(logits, np.float64)
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def score_clips(predict, dataset, *, total_videos=None, progress=False):
    """Runs ``predict`` over ``dataset``; a :class:`ClipScores`.

    Args:
        predict: frames ``(batch, time, height, width, channels)`` -> logits
            ``(batch, classes)`` (a tensor or array).
        dataset: iterable of ``(frames, info)`` batches as
            :func:`~dynamonet_tf.data.pipelines.eval_dataset` yields them; ``info`` holds
            ``(batch,)`` ``media_id``, ``label`` and ``clip_index``. Views sharing a media id
            and clip index (the crops of one clip) are averaged into one clip.
        total_videos: for the progress bar, when known.
        progress: show a progress bar over videos.

    Raises:
        EvaluationError: ``dataset`` holds no videos.
    """
    clips = {}  # (media_id, clip_index) -> [label, summed probabilities, views]
    videos_seen = set()
    views = 0
    with tqdm(total=total_videos, unit="video", disable=not progress, dynamic_ncols=True) as bar:
        for frames, info in dataset:
            probabilities = softmax(predict(frames))
            media_ids, labels, clip_indices = (
                np.asarray(info[k]) for k in ("media_id", "label", "clip_index")
            )
            for media_id, label, clip_index, view in zip(
                media_ids, labels, clip_indices, probabilities
            ):
                media_id = media_id.decode() if isinstance(media_id, bytes) else str(media_id)
                entry = clips.setdefault((media_id, int(clip_index)), [int(label), 0.0, 0])
                entry[1] += view
                entry[2] += 1
                if media_id not in videos_seen:
                    videos_seen.add(media_id)
                    bar.update(1)
            views += len(probabilities)
    if not clips:
        raise EvaluationError("the evaluation data holds no videos.")
    return ClipScores(
        media_ids=[media_id for media_id, _ in clips],
        labels=np.array([label for label, _, _ in clips.values()], np.int64),
        probabilities=np.stack([total / count for _, total, count in clips.values()]),
        views=views,
    )


def evaluate_clips(predict, dataset, class_names, *, total_videos=None, progress=False):
    """Video-level accuracy of ``predict`` on ``dataset`` (see :func:`score_clips`).

    Returns :func:`~dynamonet_tf.video_accuracy.accuracy_report`'s dict (``videos``,
    ``clips``, ``video_top1``, ``video_top5``, ``clip_top1``, ``mean_class_accuracy``,
    ``per_class``, ``confusion``, ``predictions``) with ``views`` added, and per prediction
    ``clips`` (clips averaged) and ``top5`` (``[[class name, probability], ...]``, best first).
    Clip top-1 scores each clip by its crops' average.
    """
    scores = score_clips(predict, dataset, total_videos=total_videos, progress=progress)
    report = accuracy_report(scores.media_ids, scores.labels, scores.probabilities, class_names)
    _, _, video_probabilities, clips_per_video = average_clip_scores(
        scores.media_ids, scores.labels, scores.probabilities
    )
    for prediction, probabilities, count in zip(
        report["predictions"], video_probabilities, clips_per_video
    ):
        best = np.argsort(-probabilities, kind="stable")[:TOP_K_SAVED]
        prediction["clips"] = int(count)
        prediction["top5"] = [[class_names[c], float(probabilities[c])] for c in best]
    report["views"] = scores.views
    return report


# ---------------------------------------------------------------- a prepared dataset's manifest


def class_names(file_pattern, num_classes):
    """Class names of prepared data (its ``manifest.json``), else ``"0"`` .. ``"n-1"``."""
    return manifest_class_names(read_manifest(list_files(file_pattern)), num_classes)


def manifest_class_names(manifest, num_classes):
    """The ``classes`` of a manifest (None: no manifest), else ``"0"`` .. ``"n-1"``."""
    return list(manifest["classes"]) if manifest else [str(i) for i in range(num_classes)]


def videos_in(files, manifest):
    """How many videos ``files`` hold, from the manifest; None when it cannot tell."""
    if not manifest:
        return None
    names = {Path(path).name for path in files}
    subsets = [s for s in manifest.get("subsets", {}).values() if set(s["shards"]) & names]
    if not all(set(s["shards"]) <= names for s in subsets):
        return None  # only some shards of a subset: their share of the videos is unknown
    return sum(s["videos"] for s in subsets)
