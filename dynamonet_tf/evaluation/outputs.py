"""What ``evaluate.py`` writes and prints: a split's ``metrics.json``, ``predictions.csv`` and
``confusion.png``, the ``summary.json`` of several splits, and the printed accuracy table.

Files are written whole or not at all (:mod:`dynamonet_tf.atomic_files`).
"""

import csv
import io
import json
from pathlib import Path

from dynamonet_tf.atomic_files import atomic_write
from dynamonet_tf.evaluation.protocol import HEADLINE
from dynamonet_tf.plots import confusion_figure, figure_to_png
from dynamonet_tf.text_table import text_table
from dynamonet_tf.video_accuracy import format_top_k, top_k_is_trivial

PREDICTION_COLUMNS = (
    "media_id",
    "label",
    "predicted",
    "probability",
    "clips",
    "top5_classes",
    "top5_probabilities",
)


def format_table(dataset, results, summary=None):
    """The printed table: one row per split (and mean ± std), accuracies in percent; columns
    two spaces apart at least; top-5 "n/a" with 5 classes or fewer (every video's class is
    then in its top 5: :func:`~dynamonet_tf.video_accuracy.top_k_is_trivial`)."""
    _, first = results[0]
    spacing = f" {first['frame_stride']} apart" if first.get("frame_stride", 1) > 1 else ""
    protocol = (
        f"{first['crops']}-crop, clips of {first['num_frames']} frames{spacing} "
        f"every {first['clip_stride']}"
    )
    header = ("", "videos", "video top-1", "video top-5", "clip top-1", "mean class")

    def cell(key, value, metrics, std=None):
        classes = len(metrics.get("classes", ())) or None  # unknown: the number is shown
        if key == "video_top5" and classes and top_k_is_trivial(5, classes):
            return format_top_k(value, 5, classes)  # "n/a (≤5 classes)"
        return f"{100 * value:.1f}" + ("" if std is None else f" ± {100 * std:.1f}")

    rows = [
        [f"split {split}", metrics["videos"], *(cell(k, metrics[k], metrics) for k in HEADLINE)]
        for split, metrics in results
    ]
    if summary:
        rows.append(
            ["mean ± std", ""]
            + [cell(k, summary["mean"][k], first, summary["std"][k]) for k in HEADLINE]
        )
    lines = [f"{dataset} ({protocol}), accuracy in %", text_table(header, rows, indent=0)]
    for split, metrics in results:
        if metrics.get("missing_videos"):
            lines.append(
                f"split {split}: {metrics['missing_videos']} of the videos its manifest lists "
                "were not read; these numbers score the rest (warnings in metrics.json)"
            )
    return "\n".join(lines)


def write_outputs(out_dir, metrics, predictions):
    """``metrics.json``, ``predictions.csv`` (one row per video) and ``confusion.png`` in
    ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(PREDICTION_COLUMNS)
    for p in predictions:
        writer.writerow(
            [
                p["media_id"],
                p["label"],
                p["predicted"],
                f"{p['probability']:.6f}",
                p["clips"],
                "|".join(name for name, _ in p["top5"]),
                "|".join(f"{probability:.6f}" for _, probability in p["top5"]),
            ]
        )
    atomic_write(out_dir / "predictions.csv", table.getvalue())
    confusion = confusion_figure(
        metrics["confusion"],
        metrics["classes"],
        dataset=metrics["dataset"],
        split=metrics["split"],
        checkpoint=metrics["checkpoint"],
        top1=metrics["video_top1"],
    )
    atomic_write(out_dir / "confusion.png", figure_to_png(confusion))


def write_summary(summary_dir, summary):
    """``summary.json`` (:func:`~dynamonet_tf.evaluation.splits.summarise_splits`) in
    ``summary_dir``."""
    Path(summary_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(summary_dir) / "summary.json", json.dumps(summary, indent=2))
