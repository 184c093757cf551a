import numpy as np
import pytest

from dynamonet_tf.video_accuracy import (
    accuracy_report,
    average_clip_scores,
    format_top_k,
    top_k_correct,
    top_k_is_trivial,
)

CLASSES = ["a", "b", "c", "d", "e", "f"]


def random_clips(seed, videos=20, classes=6):
    rng = np.random.default_rng(seed)
    media_ids, labels, probabilities = [], [], []
    for v in range(videos):
        label = rng.integers(classes)
        for _ in range(rng.integers(1, 5)):
            logits = rng.normal(size=classes)
            logits[label] += 1.0
            media_ids.append(f"video{v}".encode())
            labels.append(label)
            probabilities.append(np.exp(logits) / np.exp(logits).sum())
    return media_ids, np.array(labels), np.array(probabilities)


def test_report_equals_naive_loops():
    media_ids, labels, probabilities = random_clips(0)
    report = accuracy_report(media_ids, labels, probabilities, CLASSES)
    videos = {}
    for m, label, p in zip(media_ids, labels, probabilities):
        videos.setdefault(m, (label, []))[1].append(p)
    top1 = top5 = 0
    per_class = {c: [0, 0] for c in range(6)}
    for label, scores in videos.values():
        mean = np.mean(scores, axis=0)
        order = sorted(range(6), key=lambda c: -mean[c])
        top1 += order[0] == label
        top5 += label in order[:5]
        per_class[label][0] += 1
        per_class[label][1] += order[0] == label
    assert report["videos"] == len(videos) and report["clips"] == len(labels)
    assert report["video_top1"] == pytest.approx(top1 / len(videos))
    assert report["video_top5"] == pytest.approx(top5 / len(videos))
    assert report["clip_top1"] == pytest.approx(np.mean(probabilities.argmax(1) == labels))
    accuracies = [c / n for n, c in per_class.values() if n]
    assert report["mean_class_accuracy"] == pytest.approx(np.mean(accuracies))
    assert sum(map(sum, report["confusion"])) == len(videos)
    for index, name in enumerate(CLASSES):
        assert report["per_class"][name]["videos"] == per_class[index][0]
        assert report["confusion"][index][index] == per_class[index][1]


def test_averaging_can_overturn_a_single_clip():
    ids = ["v", "v", "v"]
    probabilities = [[0.6, 0.4], [0.1, 0.9], [0.45, 0.55]]
    video_ids, video_labels, video_probabilities, counts = average_clip_scores(
        ids, [1, 1, 1], probabilities
    )
    assert video_ids == ["v"] and counts.tolist() == [3]
    np.testing.assert_allclose(video_probabilities[0], [0.38333333, 0.61666667])
    report = accuracy_report(ids, [1, 1, 1], probabilities, ["x", "y"])
    assert report["video_top1"] == 1.0 and report["clip_top1"] == pytest.approx(2 / 3)
    assert report["predictions"] == [
        {"media_id": "v", "label": "y", "predicted": "y", "probability": pytest.approx(0.6166667)}
    ]


def test_top_k_with_fewer_classes_than_k():
    assert top_k_correct(np.array([1]), np.array([[0.9, 0.1]]), 5).tolist() == [True]


def test_top_5_of_5_classes_or_fewer_is_flagged_and_not_printed_as_a_number():
    assert [top_k_is_trivial(5, n) for n in (2, 5, 6, 101)] == [True, True, False, False]
    assert format_top_k(1.0, 5, 4) == "n/a (≤5 classes)"
    assert format_top_k(0.8123, 5, 101) == "81.2"
    assert format_top_k(0.8123, 5, 101, digits=3, percent=False) == "0.812"

    media_ids, labels, probabilities = random_clips(0, classes=4)
    report = accuracy_report(media_ids, labels, probabilities, CLASSES[:4])
    assert report["video_top5"] == 1.0 and report["video_top5_trivial"] is True  # value kept
    media_ids, labels, probabilities = random_clips(0)
    assert accuracy_report(media_ids, labels, probabilities, CLASSES)["video_top5_trivial"] is False


def test_inconsistent_labels_and_bad_shapes_are_named():
    with pytest.raises(ValueError, match="video 'v' carry different labels: 0 and 1"):
        average_clip_scores(["v", "v"], [0, 1], [[1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match=r"must be \(clips, 6\)"):
        accuracy_report(["v"], [0], [[1.0, 0.0]], CLASSES)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 6\)"):
        accuracy_report(["v"], [6], np.eye(6)[:1], CLASSES)
