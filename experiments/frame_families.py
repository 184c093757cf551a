"""Next-frame prediction by motion family: where one filter per frame helps, and where not.

A mean over the test videos mixes motions that one filter per frame can represent (a pan,
a translation of the whole frame) with those it cannot (a zoom, a rotation, a sprite moving
over a still background), and still videos, which copying the last frame predicts exactly.
This scores the finished runs of ``experiments/frame_prediction`` that are on this machine
(or the run folders given) on the benchmark's test videos, by motion family, against copying
the last frame, and prints a markdown table::

    python -m experiments.frame_families [RUN_DIR ...]

Each run is scored by :func:`dynamonet_tf.frame_prediction.evaluate_run` into
``<run>/frame_prediction/`` (its data.eval_files: the test videos), reused when there.
Run folders are not in git, so the table covers the seeds whose folders this machine has.
"""

import argparse
import json
import sys
from pathlib import Path

from dynamonet_tf.data.demo import MOTION_FAMILIES
from dynamonet_tf.frame_metrics import psnr_of_mse
from dynamonet_tf.frame_prediction import (
    METRICS_FILE,
    RUN_SUBDIR,
    FramePredictionError,
    evaluate_run,
)
from dynamonet_tf.markdown import markdown_table
from dynamonet_tf.runs import RunError, load_run
from experiments.claims import FRAME_PREDICTION, RESULTS_DIR

PREDICTORS = ("model", "copy_last_frame")
COLUMNS = (
    ("ssim", "SSIM (RGB)", "{:.3f}"),
    ("psnr", "PSNR (dB), mean over frames", "{:.1f}"),
    ("psnr_of_mean_mse", "PSNR of the mean MSE (dB)", "{:.1f}"),
)


def family_scores(per_class):
    """``{family: {predictor: {"frames", "ssim", "psnr", "mse", "psnr_of_mean_mse"}}}`` from
    a ``metrics.json``'s ``per_class``: each family's means over all its classes' frames
    (frame-weighted, as the overall means are), for the families present."""
    families = {}
    for family, labels in MOTION_FAMILIES.items():
        scores = [per_class[label] for label in labels if label in per_class]
        frames = sum(score["frames"] for score in scores)
        if not frames:
            continue
        families[family] = {}
        for predictor in PREDICTORS:
            means = {
                metric: sum(score[predictor][metric] * score["frames"] for score in scores) / frames
                for metric in ("ssim", "psnr", "mse")
            }
            means["psnr_of_mean_mse"] = psnr_of_mse(means["mse"])
            families[family][predictor] = {"frames": frames, **means}
    return families


def run_dirs(results_dir=RESULTS_DIR):
    """The finished run folders of the frame-prediction experiment under ``results_dir``,
    by arm (in the claim's order) and seed."""
    runs = Path(results_dir) / FRAME_PREDICTION.name / "runs"
    found = []
    for arm in FRAME_PREDICTION.arms:
        seeds = sorted((runs / arm).glob("seed*"), key=lambda path: int(path.name[4:]))
        found += [path for path in seeds if (path / "report.json").exists()]
    return found


def scored(model_dir):
    """The ``metrics.json`` of ``model_dir``'s next-frame scores, evaluated first if absent."""
    path = Path(model_dir) / RUN_SUBDIR / METRICS_FILE
    if not path.exists():
        evaluate_run(load_run(model_dir), figures=0, progress=False)
    return json.loads(path.read_text())


def table(rows):
    """``rows``: ``(run label, family_scores)``; a markdown table, a row per run and family."""
    header = ["run", "family", "frames"]
    for _, name, _ in COLUMNS:
        header += [f"{name}, model", f"{name}, copy", f"{name}, difference"]
    body = []
    for label, families in rows:
        for family, scores in families.items():
            model, copy = scores["model"], scores["copy_last_frame"]
            row = [label, family, str(model["frames"])]
            for key, _, form in COLUMNS:
                difference = model[key] - copy[key]
                # Rounded first, so that a tiny negative difference reads +0.000, not -0.000.
                rounded = float(form.format(difference)) + 0.0
                signed = form.replace("{:", "{:+").format(rounded)
                row += [form.format(model[key]), form.format(copy[key]), signed]
            body.append(row)
    return markdown_table(header, body, align="lll" + "r" * (len(header) - 3))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "run_dirs",
        nargs="*",
        type=Path,
        help="run folders (default: every finished frame_prediction run on this machine)",
    )
    args = parser.parse_args(argv)
    model_dirs = args.run_dirs or run_dirs()
    if not model_dirs:
        sys.exit(
            f"error: no finished run under {RESULTS_DIR / FRAME_PREDICTION.name / 'runs'}: "
            "train them with python -m experiments.frame_prediction, or name run folders."
        )
    rows = []
    for model_dir in model_dirs:
        try:
            metrics = scored(model_dir)
        except (RunError, FramePredictionError) as error:
            sys.exit(f"error: {error}")
        if not metrics.get("per_class"):
            sys.exit(f"error: {model_dir}: its test videos' ids name no class to group by.")
        label = f"{Path(model_dir).parent.name}, {Path(model_dir).name}"
        rows.append((label, family_scores(metrics["per_class"])))
    print(table(rows))


if __name__ == "__main__":
    main()
