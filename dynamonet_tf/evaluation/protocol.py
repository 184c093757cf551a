"""The paper's video-level test protocol (§4.3, Table 5): clips scored, views and clips
averaged per video, top-1 / top-5 of the average.

:func:`evaluate_clips` takes any callable from frames to logits and any dataset of
``(frames, info)`` batches as :func:`~dynamonet_tf.data.pipelines.eval_dataset` cuts them;
``evaluate.py`` (:mod:`dynamonet_tf.evaluation.splits`) and the trainer's end-of-run accuracy
both score through it. :func:`class_names` and :func:`manifest_videos` read what a prepared
dataset's manifest says about the classes and videos evaluated, and :func:`check_videos_read`
compares the videos an evaluation read with it: a shard cut at a record boundary reads
without an error, its lost videos seen only in the count.
"""

import dataclasses
import fnmatch
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dynamonet_tf.data.integrity import scan_shard
from dynamonet_tf.data.pipelines import list_files
from dynamonet_tf.data.prepare import read_manifest
from dynamonet_tf.layout import MANIFEST
from dynamonet_tf.names import LOGITS
from dynamonet_tf.video_accuracy import accuracy_report, average_clip_scores

# The numbers an evaluation is summarised by (and averaged over splits).
HEADLINE = ("video_top1", "video_top5", "clip_top1", "mean_class_accuracy")
TOP_K_SAVED = 5
# The flag of evaluate.py that scores data with fewer videos than its manifest lists.
ALLOW_MISSING_FLAG = "--allow-missing-videos"
# Shards named in a shortfall's message: the damaged and missing ones first.
SHARDS_NAMED = 6


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


@dataclasses.dataclass(frozen=True)
class ManifestVideos:
    """What a prepared folder's manifest lists for the shards a pattern selects.

    ``manifest``: its path; ``listed``: the videos of the selected subsets; ``shards``: the
    names of their shards (sorted); ``missing_shards``: those of them absent on disk.
    """

    manifest: Path
    listed: int
    shards: tuple
    missing_shards: tuple


def _patterns(file_pattern):
    if isinstance(file_pattern, (str, bytes, os.PathLike)):
        return [os.fsdecode(file_pattern)]
    return [os.fsdecode(pattern) for pattern in file_pattern]


def manifest_videos(file_pattern, files=None):
    """The :class:`ManifestVideos` of ``file_pattern`` (a glob or path, or a list of them;
    ``files``: its :func:`~dynamonet_tf.data.pipelines.list_files`, when known), or None
    when the manifest cannot tell how many videos the pattern should read: no manifest, a
    file it does not name, or only some shards of a subset (it counts videos per subset,
    not per shard).

    A shard the manifest names that the pattern would match but that is absent on disk
    counts as selected: its videos are missing, not deselected.
    """
    files = list_files(file_pattern) if files is None else list(files)
    manifest = read_manifest(files)
    if not manifest:
        return None
    folder = os.path.dirname(files[0])
    names = {os.path.basename(path) for path in files}
    patterns = [os.path.normpath(pattern) for pattern in _patterns(file_pattern)]

    def selected(shard):
        candidate = os.path.normpath(os.path.join(folder, shard))
        return shard in names or any(fnmatch.fnmatchcase(candidate, p) for p in patterns)

    listed, shards, named = 0, [], set()
    for subset in manifest.get("subsets", {}).values():
        subset_shards = set(subset.get("shards", ()))
        named |= subset_shards
        chosen = {shard for shard in subset_shards if selected(shard)}
        if not chosen:
            continue
        if chosen != subset_shards:
            return None  # their share of the subset's videos is not recorded
        listed += subset["videos"]
        shards += sorted(chosen)
    if not shards or not names <= named:
        return None
    missing = tuple(shard for shard in shards if shard not in names)
    return ManifestVideos(Path(folder) / MANIFEST, listed, tuple(shards), missing)


def _counted(count, noun):
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclasses.dataclass(frozen=True)
class VideoShortfall:
    """Fewer videos read from ``data`` than its manifest lists: ``read`` of ``listed``;
    ``shards``: what each of the manifest's shards held, the suspects first."""

    data: object
    manifest: Path
    read: int
    listed: int
    shards: tuple

    @property
    def missing(self):
        return self.listed - self.read

    def description(self):
        """The shared start of the refusal and the warning."""
        named = ", ".join(self.shards[:SHARDS_NAMED])
        if len(self.shards) > SHARDS_NAMED:
            named += f" and {len(self.shards) - SHARDS_NAMED} more"
        return (
            f"read {_counted(self.read, 'video')} from {self.data!r} but its {self.manifest} lists "
            f"{self.listed} ({self.missing} missing) in {named}"
        )

    def refusal(self):
        if not self.read:
            return f"{self.description()}; re-run data/prepare.py for this dataset."
        return (
            f"{self.description()}; re-run data/prepare.py for this dataset, or pass "
            f"{ALLOW_MISSING_FLAG} to score the {_counted(self.read, 'video')} read."
        )

    def warning(self):
        return (
            f"{self.description()}; scored the {_counted(self.read, 'video')} read (re-run "
            "data/prepare.py for this dataset to score them all)."
        )


def _shard_states(folder, expected):
    """Per shard of ``expected``, what it holds, the damaged and missing ones first (reads
    each present shard whole: only once videos are known to be missing)."""
    suspects, whole = [], []
    for shard in expected.shards:
        if shard in expected.missing_shards:
            suspects.append(f"{shard} (missing)")
            continue
        scan = scan_shard(os.path.join(folder, shard))
        if scan.damage is not None:
            damage = scan.damage
            suspects.append(
                f"{shard} ({_counted(damage.records, 'whole record')}, then at byte offset "
                f"{damage.offset}: {damage.reason})"
            )
        else:
            whole.append(f"{shard} ({_counted(scan.records, 'record')})")
    return tuple(suspects + whole)


def check_videos_read(file_pattern, videos_read, *, allow_missing=False, files=None):
    """Compares the videos an evaluation of ``file_pattern`` read (``videos_read``, distinct
    videos scored) with its manifest (:func:`manifest_videos`).

    Returns the entries to add to the evaluation's report: ``{"missing_videos": k}`` (0 when
    every listed video was read, None when the manifest cannot tell), and with a shortfall
    and ``allow_missing`` also ``"warnings": [one line]``, which the caller should print.
    Only a shortfall costs anything beyond the manifest: each shard is read again to say
    what it holds.

    Raises:
        EvaluationError: fewer videos read than listed, and not ``allow_missing``; the line
            names the data, both counts, the shards and what to do.
    """
    files = list_files(file_pattern) if files is None else list(files)
    expected = manifest_videos(file_pattern, files)
    if expected is None:
        return {"missing_videos": None}
    if videos_read >= expected.listed:
        return {"missing_videos": 0}
    shortfall = VideoShortfall(
        file_pattern,
        expected.manifest,
        videos_read,
        expected.listed,
        _shard_states(os.path.dirname(files[0]), expected),
    )
    if not allow_missing:
        raise EvaluationError(shortfall.refusal())
    return {"missing_videos": shortfall.missing, "warnings": [shortfall.warning()]}
