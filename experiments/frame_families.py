"""Next-frame prediction by motion family: where one filter per frame helps, and where not.

A mean over the test videos mixes motions that one filter per frame can represent (a pan,
a translation of the whole frame) with those it cannot (a zoom, a rotation, a sprite moving
over a still background), and still videos, which copying the last frame predicts exactly.
This scores the runs that ``experiments/frame_prediction``'s results.json records and whose
folders are on this machine (or the run folders given) on their test videos, by motion
family, against copying the last frame, and prints a markdown table::

    python -m experiments.frame_families [RUN_DIR ...]

Each run is scored by :func:`dynamonet_tf.frame_prediction.evaluate_run` (its
data.eval_files: the benchmark's test videos) into ``<run>/frame_families/``, reused when it
holds the scores of the run's latest checkpoint. Without run folders, the scores are also
kept in ``families.json`` beside results.json and the table is written to ``families.md``
(its rendering): run folders are not in git, so a recorded run whose folder is not here
keeps the scores families.json holds for it (same arm, seed and config digest), and the
page names the recorded runs that have none.
"""

import argparse
import json
import sys
from pathlib import Path

from dynamonet_tf.atomic_files import atomic_write
from dynamonet_tf.data.demo import MOTION_FAMILIES
from dynamonet_tf.frame_metrics import PREDICTORS, psnr_of_mse
from dynamonet_tf.frame_prediction import METRICS_FILE, FramePredictionError, evaluate_run
from dynamonet_tf.markdown import markdown_table
from dynamonet_tf.runs import RunError, load_run, resolve_checkpoint
from experiments.claims import FRAME_PREDICTION, RESULTS_DIR, RESULTS_FILE
from experiments.common import recorded_runs

# Beside the frame-prediction experiment's results.json: the scores, and their rendering.
FAMILIES_FILE = "families.md"
FAMILIES_JSON = "families.json"
COMMAND = "python -m experiments.frame_families"
SCORES_SUBDIR = "frame_families"  # in each run folder: evaluate_run's output

# (scope, metric, header, format): "all" the T predicted frames of a clip, as RESULTS.md's
# numbers are; "future_frame" frame T + 1 alone, the one frame the model has not seen.
COLUMNS = (
    ("all", "ssim", "SSIM (RGB)", "{:.3f}"),
    ("future_frame", "ssim", "SSIM (RGB), frame T+1 alone", "{:.3f}"),
    ("all", "psnr", "PSNR (dB), mean over frames", "{:.1f}"),
    ("all", "psnr_of_mean_mse", "PSNR of the mean MSE (dB)", "{:.1f}"),
)


class FamilyError(Exception):
    """Scores that cannot be grouped by the benchmark's motion families."""


def _pooled(scores):
    """Frame-weighted means of ``scores`` (summaries with ``frames`` and per-predictor
    ``ssim`` / ``psnr`` / ``mse``), as the overall means are; the PSNR of their mean MSE."""
    frames = sum(score["frames"] for score in scores)
    pooled = {"frames": frames}
    for predictor in PREDICTORS:
        means = {
            metric: sum(score[predictor][metric] * score["frames"] for score in scores) / frames
            for metric in ("ssim", "psnr", "mse")
        }
        pooled[predictor] = {**means, "psnr_of_mean_mse": psnr_of_mse(means["mse"])}
    return pooled


def family_scores(per_class):
    """``{family: {"all": pooled, "future_frame": pooled}}`` from a ``metrics.json``'s
    ``per_class``, for the families present, in :data:`MOTION_FAMILIES`' order; each pooled
    holds ``frames`` and, per predictor, ``ssim``, ``psnr``, ``mse`` and ``psnr_of_mean_mse``.

    Raises:
        FamilyError: a class that is not one of the benchmark's.
    """
    known = {label for labels in MOTION_FAMILIES.values() for label in labels}
    unknown = sorted(set(per_class) - known)
    if unknown:
        raise FamilyError(
            f"classes {', '.join(unknown)} are not the motion benchmark's "
            f"({', '.join(sorted(known))}): only its runs group by motion family"
        )
    families = {}
    for family, labels in MOTION_FAMILIES.items():
        scores = [per_class[label] for label in labels if label in per_class]
        if scores:
            families[family] = {
                "all": _pooled(scores),
                "future_frame": _pooled([score["future_frame"] for score in scores]),
            }
    return families


def recorded_in_order(results_dir=RESULTS_DIR):
    """``[((arm, seed), run)]`` of the runs the frame-prediction experiment's results.json
    records (so, of its current config): by arm, in the claim's order, then seed."""
    recorded = recorded_runs(Path(results_dir) / FRAME_PREDICTION.name)
    order = {arm: index for index, arm in enumerate(FRAME_PREDICTION.arms)}
    return sorted(
        recorded.items(), key=lambda item: (order.get(item[0][0], len(order)), item[0][1])
    )


def recorded_run_dirs(results_dir=RESULTS_DIR):
    """The folders of :func:`recorded_in_order`'s runs that are on this machine."""
    return [
        Path(run["model_dir"])
        for _, run in recorded_in_order(results_dir)
        if Path(run["model_dir"]).is_dir()
    ]


def scored(model_dir):
    """The ``metrics.json`` of ``model_dir``'s next-frame scores on its data.eval_files, in
    ``<model_dir>/frame_families/``: evaluated there unless it holds the scores, per class,
    of the run's latest checkpoint."""
    out_dir = Path(model_dir) / SCORES_SUBDIR
    path = out_dir / METRICS_FILE
    if path.exists():
        metrics = json.loads(path.read_text())
        if "per_class" in metrics and metrics["checkpoint"] == resolve_checkpoint(model_dir):
            return metrics
    metrics, _ = evaluate_run(load_run(model_dir), out_dir=out_dir, figures=0, progress=False)
    return metrics


def run_label(arm, seed):
    return f"{arm}, seed{seed}"


def table(rows):
    """``rows``: ``(run label, family_scores)``; a markdown table, a row per run and family."""
    header = ["run", "family", "frames"]
    for _, _, name, _ in COLUMNS:
        header += [f"{name}, model", f"{name}, copy", f"{name}, difference"]
    body = []
    for label, families in rows:
        for family, scopes in families.items():
            row = [label, family, str(scopes["all"]["frames"])]
            for scope, key, _, form in COLUMNS:
                model, copy = scopes[scope]["model"][key], scopes[scope]["copy_last_frame"][key]
                # Rounded first, so that a tiny negative difference reads +0.000, not -0.000.
                rounded = float(form.format(model - copy)) + 0.0
                row += [
                    form.format(model),
                    form.format(copy),
                    form.replace("{:", "{:+").format(rounded),
                ]
            body.append(row)
    return markdown_table(header, body, align="lll" + "r" * (len(header) - 3))


def _family_rows(model_dir):
    """:func:`family_scores` of the run in ``model_dir`` and its scored checkpoint's name;
    exits with one line on an error."""
    try:
        metrics = scored(model_dir)
        if not metrics["per_class"]:
            raise FamilyError("its test videos' ids name no class to group by")
        return family_scores(metrics["per_class"]), Path(metrics["checkpoint"]).name
    except (RunError, FramePredictionError) as error:
        sys.exit(f"error: {error}")
    except FamilyError as error:
        sys.exit(f"error: {model_dir}: {error}")


def collect(results_dir=RESULTS_DIR):
    """The contents of ``families.json``: ``{"command", "runs", "unscored"}``. ``runs``: per
    recorded run (:func:`recorded_in_order`) with scores, ``{"arm", "seed", "config_digest",
    "checkpoint", "families"}``, scored here when its folder is on this machine, else the
    earlier families.json's entry of the same arm, seed and config digest; ``unscored``:
    the labels of the recorded runs with neither."""
    path = Path(results_dir) / FRAME_PREDICTION.name / FAMILIES_JSON
    try:
        earlier = json.loads(path.read_text())["runs"] if path.exists() else []
        kept = {(run["arm"], run["seed"], run["config_digest"]): run for run in earlier}
    except (ValueError, KeyError, TypeError) as error:
        sys.exit(
            f"error: {path} is not the families.json this script writes ({error!r}): put the "
            "committed one back (git checkout), or delete it to keep only the runs on this machine."
        )
    runs, unscored = [], []
    for (arm, seed), run in recorded_in_order(results_dir):
        model_dir = Path(run["model_dir"])
        if model_dir.is_dir():
            families, checkpoint = _family_rows(model_dir)
            entry = {
                "arm": arm,
                "seed": seed,
                "config_digest": run.get("config_digest"),
                "checkpoint": checkpoint,
                "families": families,
            }
        else:
            entry = kept.get((arm, seed, run.get("config_digest")))
        if entry is None:
            unscored.append(run_label(arm, seed))
        else:
            runs.append(entry)
    return {"command": COMMAND, "runs": runs, "unscored": unscored}


def render(families):
    """``families.md``: the rendering of ``families.json``'s contents."""
    rows = [(run_label(run["arm"], run["seed"]), run["families"]) for run in families["runs"]]
    text = (
        "Next-frame scores by motion family against copying the last frame, of the runs that "
        f"results.json records, scored by `{families['command']}` on the machine that had "
        f"their folders and kept in {FAMILIES_JSON} (run folders are not in git).\n\n"
        f"{table(rows)}\n"
    )
    if families["unscored"]:
        text += (
            "\nRecorded runs without these scores (their folders were gone before the "
            f"scores were kept): {'; '.join(families['unscored'])}.\n"
        )
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "run_dirs",
        nargs="*",
        type=Path,
        help="run folders (default: those of the frame_prediction runs its results.json "
        f"records that are on this machine; then the scores are also kept in {FAMILIES_JSON} "
        f"and the table written to {FAMILIES_FILE})",
    )
    args = parser.parse_args(argv)
    if args.run_dirs:
        rows = []
        for model_dir in args.run_dirs:
            families, _ = _family_rows(model_dir)
            rows.append((f"{model_dir.parent.name}, {model_dir.name}", families))
        print(table(rows))
        return
    experiment = RESULTS_DIR / FRAME_PREDICTION.name
    families = collect(RESULTS_DIR)
    if not families["runs"]:
        sys.exit(
            f"error: no run recorded in {experiment / RESULTS_FILE} is on this machine or "
            f"scored in {experiment / FAMILIES_JSON}: train them with "
            "python -m experiments.frame_prediction, or name run folders."
        )
    text = render(families)
    print(text)
    atomic_write(experiment / FAMILIES_JSON, json.dumps(families, indent=1) + "\n")
    atomic_write(experiment / FAMILIES_FILE, text)


if __name__ == "__main__":
    main()
