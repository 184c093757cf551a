"""Action recognition evaluation of trained runs: the paper's test protocol (§4.3, Table 5).

Every T-frame clip of each test video is classified (non-overlapping clips of the video's
frames 0, s, 2s, ..., ``s`` the run's ``data.frame_stride`` as in its training clips, covering
every kept frame, the last one padded by repeating the last kept frame, as
:func:`~dynamonet_tf.data.pipelines.eval_dataset` cuts them) at the centre crop, or at 3
crops along the long side; the softmax scores of all views of a video are averaged, and the
video counts as correct when its true class ranks first (top-1) or in the first five
(top-5) of that average. UCF101 and HMDB51 report the mean over their 3 splits.

- :func:`evaluate_clips` is the core: any callable from frames to logits, any dataset of
  ``(frames, info)`` batches. The trainer's end-of-run accuracy uses it too.
- :func:`plan_splits`, :func:`evaluate_split`, :func:`summarise_splits`, :func:`format_table`
  serve ``evaluate.py``: they find runs and data, check that they fit together, and write
  ``metrics.json``, ``predictions.csv``, ``confusion.png`` (and ``summary.json``).
"""

import csv
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from dynamonet_tf.atomic_files import atomic_write
from dynamonet_tf.data.pipelines import eval_dataset, list_files
from dynamonet_tf.data.prepare import MANIFEST_FILE, prepare_demo, read_manifest
from dynamonet_tf.names import LOGITS
from dynamonet_tf.runs import load_run, load_run_config, model_kind, resolve_checkpoint, run_dir_of
from dynamonet_tf.training.demo_data import DEMO_DATA_DIR
from dynamonet_tf.video_accuracy import accuracy_report, average_clip_scores

DATASETS = ("ucf101", "hmdb51", "kinetics400", "demo")
# The demo's labeled set is made by the HMDB51 reader, so its manifest says hmdb51.
PREPARED_AS = {"demo": "hmdb51"}
# UCF101, HMDB51 (and the demo) have 3 official splits; Kinetics-400 has one validation set.
SPLITS = {"ucf101": (1, 2, 3), "hmdb51": (1, 2, 3), "kinetics400": (1,), "demo": (1, 2, 3)}
SPLIT_PLACEHOLDER = "{split}"
# The numbers an evaluation is summarised by (and averaged over splits).
HEADLINE = ("video_top1", "video_top5", "clip_top1", "mean_class_accuracy")
TOP_K_SAVED = 5


class EvaluationError(Exception):
    """A run, data set or option that cannot be evaluated; the message names it and the way out."""


# ---------------------------------------------------------------------------- the core


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
    """
    clips = {}  # (media_id, clip_index) -> [label, summed probabilities, views]
    videos_seen = set()
    views = 0
    with tqdm(total=total_videos, unit="video", disable=not progress, dynamic_ncols=True) as bar:
        for frames, info in dataset:
            probabilities = softmax(predict(frames))
            media_ids, labels, clip_indices = (np.asarray(info[k]) for k in ("media_id", "label", "clip_index"))
            for media_id, label, clip_index, view in zip(media_ids, labels, clip_indices, probabilities):
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
    for prediction, probabilities, count in zip(report["predictions"], video_probabilities, clips_per_video):
        best = np.argsort(-probabilities, kind="stable")[:TOP_K_SAVED]
        prediction["clips"] = int(count)
        prediction["top5"] = [[class_names[c], float(probabilities[c])] for c in best]
    report["views"] = scores.views
    return report


# ---------------------------------------------------------------------------- data sets


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


def eval_subset(dataset):
    """The prepared subset a dataset is evaluated on: Kinetics' val, the others' test."""
    return "val" if dataset == "kinetics400" else "test"


def demo_test_files(split, data_dir=DEMO_DATA_DIR):
    """The demo's test shards of ``split``; generates and prepares the demo if absent."""
    folder = Path(data_dir) / f"labeled_split{split}"
    if not (folder / MANIFEST_FILE).exists():
        print(f"preparing the demo dataset, split {split}, in {data_dir} (once)")
        prepare_demo(data_dir, split=split)
    return str(folder / "test-*.tfrecord")


def resolve_data(data, dataset, split, config, source):
    """The TFRecord files to evaluate on and the pattern they came from.

    ``data``: a prepared folder (its test subset; val for Kinetics) or a glob; None takes
    the demo's split for ``dataset == "demo"`` and the run's ``data.eval_files`` otherwise.
    """
    if data is None and dataset == "demo":
        data, named = demo_test_files(split), "the demo data"
    elif data is None:
        data, named = config.data.eval_files, f"data.eval_files of {source}"
        if not data:
            raise EvaluationError(f"{source} has no data.eval_files in its config; pass --data.")
    else:
        named = "--data"
    pattern = str(data)
    if Path(data).is_dir():
        pattern = str(Path(data) / f"{eval_subset(dataset)}-*.tfrecord")
    try:
        return list_files(pattern), pattern
    except FileNotFoundError:
        raise EvaluationError(
            f"{named} {pattern!r} matches no TFRecord files; pass --data with a prepared folder "
            f"(e.g. prepared/{dataset}_split{split}) or a glob such as "
            f"'prepared/{dataset}_split{split}/{eval_subset(dataset)}-*.tfrecord'."
        ) from None


def check_data(manifest, pattern, dataset, split, num_classes, source):
    """Refuses prepared data that does not fit the run or the options (see the messages)."""
    if manifest is None:
        return
    classes = len(manifest["classes"])
    if classes != num_classes:
        raise EvaluationError(
            f"the data {pattern!r} has {classes} classes (its {MANIFEST_FILE}) but the model of "
            f"{source} predicts {num_classes}; evaluate it on the data set it was trained for."
        )
    prepared_as = manifest.get("dataset")
    expected = PREPARED_AS.get(dataset, dataset)
    if prepared_as and prepared_as != expected:
        raise EvaluationError(
            f"the data {pattern!r} was prepared from {prepared_as} (its {MANIFEST_FILE}), not "
            f"{dataset}; pass the matching --dataset or --data."
        )
    prepared_split = manifest.get("source", {}).get("split")
    if len(SPLITS[dataset]) > 1 and prepared_split is not None and prepared_split != split:
        raise EvaluationError(
            f"the data {pattern!r} is split {prepared_split} (its {MANIFEST_FILE}), not split "
            f"{split}; pass --split {prepared_split} or that split's --data."
        )


# ---------------------------------------------------------------------------- evaluate.py


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """What to evaluate for one split. ``source``: a model dir or checkpoint prefix;
    ``data``: a folder or glob (None: the run's own eval data, or the demo's);
    ``out_dir``: None for the default ``<model dir>/eval_<dataset>_split<N>``."""

    split: int
    source: Path
    is_checkpoint: bool
    data: str = None
    out_dir: Path = None


def parse_splits(dataset, split):
    """``"1"``, ``"2"``, ``"3"`` or ``"all"`` -> the split numbers to evaluate."""
    if dataset not in DATASETS:
        raise EvaluationError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}.")
    valid = SPLITS[dataset]
    if str(split) == "all":
        if len(valid) == 1:
            raise EvaluationError(
                f"{dataset} has a single test set; --split all is for ucf101, hmdb51 and demo."
            )
        return list(valid)
    if str(split) not in {str(s) for s in valid}:
        choices = ", ".join(map(str, valid)) + (" or all" if len(valid) > 1 else "")
        raise EvaluationError(f"{dataset} has no split {split!r}; valid: {choices}.")
    return [int(split)]


def default_model_dir(dataset):
    """Where ``evaluate.py`` looks without --model-dir: the demo's and Kinetics' joint run
    in ``runs/joint`` (where ``train.py`` puts it), a fine-tuned run per split otherwise."""
    if dataset in ("demo", "kinetics400"):
        return "runs/joint"
    return f"runs/finetune_{dataset}_split{SPLIT_PLACEHOLDER}"


def plan_splits(dataset, split, *, source=None, is_checkpoint=False, data=None, out=None):
    """The :class:`SplitPlan` of each split, and the folder of ``summary.json`` (None for one split).

    ``source`` (a model dir, or a checkpoint prefix with ``is_checkpoint``; None:
    :func:`default_model_dir`) and ``data`` may hold a ``{split}`` placeholder, replaced by
    each split's number; with several splits, the run's must. With several splits, ``out``
    (default ``eval_<dataset>_splits`` beside the split-1 run) receives ``summary.json`` and a
    ``split<N>`` folder per split.
    """
    splits = parse_splits(dataset, split)
    template = str(source or default_model_dir(dataset))
    several = len(splits) > 1
    if several and SPLIT_PLACEHOLDER not in template:
        flag = "--checkpoint" if is_checkpoint else "--model-dir"
        raise EvaluationError(
            f"--split all evaluates one run per split: {flag} {template!r} needs a {SPLIT_PLACEHOLDER} "
            f"placeholder, e.g. --model-dir 'runs/finetune_{dataset}_split{SPLIT_PLACEHOLDER}'."
        )
    if several and data is not None and SPLIT_PLACEHOLDER not in str(data):
        raise EvaluationError(
            f"--split all needs a {SPLIT_PLACEHOLDER} placeholder in --data {str(data)!r}, e.g. "
            f"--data 'prepared/{dataset}_split{SPLIT_PLACEHOLDER}' (or leave --data out to use "
            "each run's data.eval_files)."
        )

    def for_split(text, number):
        return None if text is None else str(text).replace(SPLIT_PLACEHOLDER, str(number))

    plans = [
        SplitPlan(
            split=number,
            source=Path(for_split(template, number)),
            is_checkpoint=is_checkpoint,
            data=for_split(data, number),
            out_dir=(Path(out) / f"split{number}" if several else Path(out)) if out else None,
        )
        for number in splits
    ]
    summary_dir = None
    if several:
        summary_dir = Path(out) if out else run_dir_of(plans[0].source).parent / f"eval_{dataset}_splits"
    return plans, summary_dir


def load_classifier_run(source, *, is_checkpoint, best):
    """:func:`~dynamonet_tf.runs.load_run` with the user's mistakes named first."""
    if is_checkpoint:
        resolve_checkpoint(source)  # a missing prefix, named before its run's config is read
    elif not source.is_dir():
        raise EvaluationError(
            f"model dir {str(source)!r} does not exist; pass --model-dir with the folder of a "
            "train.py run (config.yaml, checkpoints/) or --checkpoint with a checkpoint prefix."
        )
    config = load_run_config(source)
    if model_kind(config) == "pretrain":
        raise EvaluationError(
            f"{source} is a pretrain run (frame prediction only, no classifier); evaluate a "
            "joint or finetune run."
        )
    return load_run(source, best=best)


def evaluate_split(
    plan, dataset, *, best=False, num_crops=1, clip_stride=None, batch_size=None, progress=True
):
    """Evaluates one split's run and writes its files; returns ``(metrics, out_dir)``.

    Clips hold every ``data.frame_stride``-th frame of a video, as the run's training clips;
    ``clip_stride`` counts those kept frames and defaults to the run's T (non-overlapping
    clips), ``batch_size`` (views per batch) to its ``train.batch_size``. Raises
    :class:`EvaluationError` or :class:`~dynamonet_tf.runs.RunError` on a run or data that
    does not fit, and :class:`~dynamonet_tf.data.prepare.PrepareError` on an unreadable
    manifest.
    """
    if clip_stride is not None and clip_stride < 1:
        raise EvaluationError(f"--clip-stride must be >= 1; got {clip_stride}.")
    if num_crops not in (1, 3):
        raise EvaluationError(f"--crops must be 1 or 3; got {num_crops}.")
    if batch_size is not None and batch_size < 1:
        raise EvaluationError(f"--batch-size must be >= 1; got {batch_size}.")
    run = load_classifier_run(plan.source, is_checkpoint=plan.is_checkpoint, best=best)
    data = run.config.data
    files, pattern = resolve_data(plan.data, dataset, plan.split, run.config, plan.source)
    manifest = read_manifest(files)
    check_data(manifest, pattern, dataset, plan.split, data.num_classes, plan.source)
    names = manifest_class_names(manifest, data.num_classes)
    clip_stride = clip_stride or data.num_frames
    clips = eval_dataset(
        files,
        num_frames=data.num_frames,
        frame_stride=data.frame_stride,
        crop_size=data.crop_size,
        short_side=data.short_side,
        batch_size=batch_size or run.config.train.batch_size,
        clip_stride=clip_stride,
        num_crops=num_crops,
    )
    predict = tf.function(model_logits(run.model), reduce_retracing=True)
    total_videos = videos_in(files, manifest)
    try:
        report = evaluate_clips(predict, clips, names, total_videos=total_videos, progress=progress)
    except ValueError as error:  # labels outside the model's classes, unlabeled videos
        raise EvaluationError(f"cannot score {pattern!r} with {run.checkpoint}: {error}") from None
    predictions = report.pop("predictions")
    metrics = {
        "dataset": dataset,
        "split": plan.split,
        "checkpoint": run.checkpoint,
        "data": pattern,
        "num_frames": data.num_frames,
        "frame_stride": data.frame_stride,
        "crop_size": data.crop_size,
        "crops": num_crops,
        "clip_stride": clip_stride,
        **{key: report[key] for key in ("videos", "clips", "views", *HEADLINE, "per_class")},
        "classes": names,
        "confusion": report["confusion"],  # [true class][predicted class], video counts
    }
    out_dir = plan.out_dir or run.model_dir / f"eval_{dataset}_split{plan.split}"
    write_outputs(out_dir, metrics, predictions)
    return metrics, out_dir


def summarise_splits(results):
    """``{"splits": {N: headline numbers}, "mean": ..., "std": ...}`` over ``(split, metrics)``
    pairs; the standard deviation is the population one (ddof 0) over the splits."""
    kept = ("checkpoint", "videos", "clips", *HEADLINE)
    table = {str(split): {key: metrics[key] for key in kept} for split, metrics in results}
    values = {key: np.array([metrics[key] for _, metrics in results]) for key in HEADLINE}
    return {
        "splits": table,
        "mean": {key: float(v.mean()) for key, v in values.items()},
        "std": {key: float(v.std()) for key, v in values.items()},
    }


def format_table(dataset, results, summary=None):
    """The printed table: one row per split (and mean ± std), accuracies in percent."""
    _, first = results[0]
    spacing = f" {first['frame_stride']} apart" if first.get("frame_stride", 1) > 1 else ""
    protocol = f"{first['crops']}-crop, clips of {first['num_frames']} frames{spacing} every {first['clip_stride']}"
    columns = ("video top-1", "video top-5", "clip top-1", "mean class")
    lines = [f"{dataset} ({protocol}), accuracy in %"]
    lines.append(f"{'':10s}{'videos':>8s}" + "".join(f"{c:>14s}" for c in columns))
    for split, metrics in results:
        cells = "".join(f"{100 * metrics[k]:14.1f}" for k in HEADLINE)
        lines.append(f"split {split:<4d}{metrics['videos']:8d}{cells}")
    if summary:
        cells = (f"{100 * summary['mean'][k]:.1f} ± {100 * summary['std'][k]:.1f}" for k in HEADLINE)
        lines.append(f"{'mean ± std':10s}{'':8s}" + "".join(f"{cell:>14s}" for cell in cells))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- files


def write_outputs(out_dir, metrics, predictions):
    """``metrics.json``, ``predictions.csv`` (one row per video) and ``confusion.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(
        ["media_id", "label", "predicted", "probability", "clips", "top5_classes", "top5_probabilities"]
    )
    for p in predictions:
        writer.writerow([
            p["media_id"],
            p["label"],
            p["predicted"],
            f"{p['probability']:.6f}",
            p["clips"],
            "|".join(name for name, _ in p["top5"]),
            "|".join(f"{probability:.6f}" for _, probability in p["top5"]),
        ])
    atomic_write(out_dir / "predictions.csv", table.getvalue())
    image = io.BytesIO()
    confusion_image(metrics["confusion"], metrics["classes"]).save(image, format="PNG")
    atomic_write(out_dir / "confusion.png", image.getvalue())


def write_summary(summary_dir, summary):
    Path(summary_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(summary_dir) / "summary.json", json.dumps(summary, indent=2))


# Colour of a row fraction of 1 (matplotlib's "Blues" at its darkest); 0 is white.
FULL_CELL = np.array([8, 48, 107], np.float64)


def confusion_image(confusion, names):
    """The confusion matrix as an RGB image: rows true classes, columns predicted classes,
    each cell shaded by its share of the row's videos (white 0 to dark blue 1).

    Cells are sized so the matrix is at most about 800 pixels wide; when they are at least
    12 pixels, rows are labelled with their class names, columns with class indices, and the
    diagonal is outlined.
    """
    counts = np.asarray(confusion, np.float64)
    num_classes = len(counts)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    cell = int(np.clip(800 // num_classes, 1, 40))
    colours = 255 - shares[..., None] * (255 - FULL_CELL)
    matrix = np.repeat(np.repeat(colours.round().astype(np.uint8), cell, axis=0), cell, axis=1)
    if cell < 12:
        return Image.fromarray(matrix)
    font = ImageFont.load_default()
    labels = [f"{i} {name}" for i, name in enumerate(names)]
    left = 8 + max(int(font.getlength(label)) for label in labels)
    top = 36
    image = Image.new("RGB", (left + matrix.shape[1] + 4, top + matrix.shape[0] + 4), "white")
    image.paste(Image.fromarray(matrix), (left, top))
    draw = ImageDraw.Draw(image)
    draw.text((left, 2), "true (rows) vs predicted (columns)", fill="black", font=font)
    for i, label in enumerate(labels):
        # The diagonal (correct videos) outlined, so that an empty one still shows.
        corner = (left + i * cell, top + i * cell)
        draw.rectangle([corner, (corner[0] + cell - 1, corner[1] + cell - 1)], outline=(160, 160, 160))
        draw.text((4, top + i * cell + cell // 2), label, fill="black", font=font, anchor="lm")
        draw.text((left + i * cell + cell // 2, top - 2), str(i), fill="black", font=font, anchor="mb")
    return image
