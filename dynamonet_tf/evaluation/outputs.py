"""What ``evaluate.py`` writes and prints: a split's ``metrics.json``, ``predictions.csv`` and
``confusion.png``, the ``summary.json`` of several splits, and the printed accuracy table.

Files are written whole or not at all (:mod:`dynamonet_tf.atomic_files`).
"""

import csv
import io
import json
from pathlib import Path

from dynamonet_tf.atomic_files import atomic_write
from dynamonet_tf.evaluation.figures import confusion_image
from dynamonet_tf.evaluation.protocol import HEADLINE

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
    """The printed table: one row per split (and mean ± std), accuracies in percent."""
    _, first = results[0]
    spacing = f" {first['frame_stride']} apart" if first.get("frame_stride", 1) > 1 else ""
    protocol = (
        f"{first['crops']}-crop, clips of {first['num_frames']} frames{spacing} "
        f"every {first['clip_stride']}"
    )
    columns = ("video top-1", "video top-5", "clip top-1", "mean class")
    lines = [f"{dataset} ({protocol}), accuracy in %"]
    lines.append(f"{'':10s}{'videos':>8s}" + "".join(f"{c:>14s}" for c in columns))
    for split, metrics in results:
        cells = "".join(f"{100 * metrics[k]:14.1f}" for k in HEADLINE)
        lines.append(f"split {split:<4d}{metrics['videos']:8d}{cells}")
    if summary:
        cells = (
            f"{100 * summary['mean'][k]:.1f} ± {100 * summary['std'][k]:.1f}" for k in HEADLINE
        )
        lines.append(f"{'mean ± std':10s}{'':8s}" + "".join(f"{cell:>14s}" for cell in cells))
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
    image = io.BytesIO()
    confusion_image(metrics["confusion"], metrics["classes"]).save(image, format="PNG")
    atomic_write(out_dir / "confusion.png", image.getvalue())


def write_summary(summary_dir, summary):
    """``summary.json`` (:func:`~dynamonet_tf.evaluation.splits.summarise_splits`) in
    ``summary_dir``."""
    Path(summary_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(summary_dir) / "summary.json", json.dumps(summary, indent=2))
