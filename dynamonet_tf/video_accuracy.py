"""Video-level action recognition accuracy from clip scores (the paper's test protocol, §4.3).

Every clip of a test video is classified; the softmax scores of a video's clips are averaged
and the video is counted correct when the true class ranks in the top k of that average.
"""

import collections

import numpy as np


def video_score(clip_probabilities):
    """A video's class probabilities from its clips' ``(clips, classes)`` softmax scores: their
    mean, in float64."""
    return np.asarray(clip_probabilities, np.float64).mean(axis=0)


def average_clip_scores(media_ids, labels, clip_probabilities):
    """Averages clip probabilities per video.

    Args:
        media_ids: ``(clips,)`` video id of each clip (str or bytes).
        labels: ``(clips,)`` true class of each clip.
        clip_probabilities: ``(clips, classes)`` softmax scores.

    Returns:
        ``(video_ids, video_labels, video_probabilities, clips_per_video)``, videos in order
        of first appearance.

    Raises:
        ValueError: the clips of one video disagree on its label.
    """
    clip_probabilities = np.asarray(clip_probabilities, np.float64)
    groups = collections.OrderedDict()
    for index, (media_id, label) in enumerate(zip(media_ids, labels)):
        media_id = media_id.decode() if isinstance(media_id, bytes) else str(media_id)
        entry = groups.setdefault(media_id, {"label": int(label), "clips": []})
        if entry["label"] != int(label):
            raise ValueError(
                f"clips of video {media_id!r} carry different labels: "
                f"{entry['label']} and {int(label)}"
            )
        entry["clips"].append(index)
    video_ids = list(groups)
    video_labels = np.array([groups[v]["label"] for v in video_ids], np.int64)
    video_probabilities = np.stack(
        [video_score(clip_probabilities[groups[v]["clips"]]) for v in video_ids]
    )
    clips_per_video = np.array([len(groups[v]["clips"]) for v in video_ids])
    return video_ids, video_labels, video_probabilities, clips_per_video


def top_k_correct(labels, probabilities, k):
    """Boolean ``(n,)``: the true class is among the ``k`` highest scores (ties: lower index)."""
    k = min(k, probabilities.shape[1])
    ranked = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return (ranked == np.asarray(labels)[:, None]).any(axis=1)


def top_k_is_trivial(k, num_classes):
    """Whether top-``k`` accuracy says nothing: with ``k`` or fewer classes every true class
    is among the ``k`` best, so top-``k`` is 100 % whatever the model."""
    return k >= num_classes


def format_top_k(accuracy, k, num_classes, digits=1, percent=True):
    """A top-``k`` accuracy for printing: ``"n/a (≤5 classes)"`` when
    :func:`top_k_is_trivial`, else the number (in percent when ``percent``), at ``digits``
    decimals."""
    if top_k_is_trivial(k, num_classes):
        return f"n/a (≤{k} classes)"
    return f"{100 * accuracy if percent else accuracy:.{digits}f}"


def accuracy_report(media_ids, labels, clip_probabilities, class_names):
    """The numbers an action recognition paper prints, as a JSON-ready dict.

    Keys: ``videos``, ``clips``, ``video_top1``, ``video_top5``, ``video_top5_trivial``
    (:func:`top_k_is_trivial`: 5 classes or fewer), ``clip_top1``, ``mean_class_accuracy``
    (mean over classes with test videos of their video-level top-1),
    ``per_class`` (``{name: {"videos", "correct", "accuracy"}}``), ``confusion``
    (``[true][predicted]`` video counts) and ``predictions`` (per video: id, label,
    predicted class, its probability).
    """
    clip_probabilities = np.asarray(clip_probabilities, np.float64)
    labels = np.asarray(labels, np.int64)
    num_classes = len(class_names)
    if clip_probabilities.ndim != 2 or clip_probabilities.shape[1] != num_classes:
        raise ValueError(
            f"clip_probabilities must be (clips, {num_classes}) for {num_classes} class names; "
            f"got shape {clip_probabilities.shape}."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}); got {labels.min()}..{labels.max()}."
        )
    video_ids, video_labels, video_probabilities, _ = average_clip_scores(
        media_ids, labels, clip_probabilities
    )
    predicted = video_probabilities.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (video_labels, predicted), 1)
    per_class = {}
    for index, name in enumerate(class_names):
        videos = int(confusion[index].sum())
        correct = int(confusion[index, index])
        per_class[name] = {
            "videos": videos,
            "correct": correct,
            "accuracy": correct / videos if videos else None,
        }
    present = [c["accuracy"] for c in per_class.values() if c["accuracy"] is not None]
    return {
        "videos": len(video_ids),
        "clips": int(len(labels)),
        "video_top1": float(top_k_correct(video_labels, video_probabilities, 1).mean()),
        "video_top5": float(top_k_correct(video_labels, video_probabilities, 5).mean()),
        # Kept in the report (a mean over splits still has a value), but flagged.
        "video_top5_trivial": top_k_is_trivial(5, num_classes),
        "clip_top1": float(top_k_correct(labels, clip_probabilities, 1).mean()),
        "mean_class_accuracy": float(np.mean(present)),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "predictions": [
            {
                "media_id": media_id,
                "label": class_names[label],
                "predicted": class_names[guess],
                "probability": float(probabilities[guess]),
            }
            for media_id, label, guess, probabilities in zip(
                video_ids, video_labels, predicted, video_probabilities
            )
        ],
    }
