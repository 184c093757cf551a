"""What ``evaluate.py`` runs: the data sets and their splits, each split's run and data found
and checked against each other, scored by the protocol
(:func:`~dynamonet_tf.evaluation.protocol.evaluate_clips`) and its files written
(:mod:`dynamonet_tf.evaluation.outputs`); several splits summarised by mean and std.

Every T-frame clip of each test video is classified (non-overlapping clips of the video's
frames 0, s, 2s, ..., ``s`` the run's ``data.frame_stride`` as in its training clips, covering
every kept frame, the last one padded by repeating the last kept frame, as
:func:`~dynamonet_tf.data.pipelines.eval_dataset` cuts them) at the centre crop, or at 3
crops along the long side. UCF101 and HMDB51 report the mean over their 3 splits.

Results written into the run's folder (the default ``eval_<dataset>_split<N>/``) are written
under the run's lock (:mod:`dynamonet_tf.run_lock`), held from before the checkpoint is read
until the files are written: a run that another process is training (or evaluating) is
refused, naming that process, rather than scored on a checkpoint that moves under it and
written beside a run that is still changing.

The data is checked where that is cheap: a shard that cannot be read stops the evaluation with
a :class:`~dynamonet_tf.data.integrity.ShardError` naming it and the record where reading
stopped, and fewer videos read than the manifest lists (a shard cut at a record boundary
reads without an error) is refused, or with ``allow_missing_videos`` scored with the
shortfall recorded (``missing_videos`` and ``warnings`` in ``metrics.json``).
"""

import contextlib
import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from dynamonet_tf.config import prepared_identity
from dynamonet_tf.data.demo_data import demo_test_files
from dynamonet_tf.data.integrity import ShardError, find_damaged_shard, reading_shards
from dynamonet_tf.data.pipelines import eval_dataset, list_files
from dynamonet_tf.data.prepare import read_manifest
from dynamonet_tf.evaluation.outputs import write_outputs
from dynamonet_tf.evaluation.protocol import (
    HEADLINE,
    EvaluationError,
    check_videos_read,
    evaluate_clips,
    manifest_class_names,
    manifest_videos,
    model_logits,
)
from dynamonet_tf.layout import (
    MANIFEST,
    SPLIT_PLACEHOLDER,
    default_run_dir,
    eval_subset,
    run_dir_of,
    run_layout,
    shards,
    splits_summary_dir,
)
from dynamonet_tf.names import DATASET_SPLITS
from dynamonet_tf.run_lock import RunLockError, lock_run_folder
from dynamonet_tf.runs import load_run, load_run_config, model_kind, resolve_checkpoint

DATASETS = tuple(DATASET_SPLITS)


# ---------------------------------------------------------------------------- data sets


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
        pattern = shards(data, eval_subset(dataset))
    try:
        return list_files(pattern), pattern
    except FileNotFoundError:
        example = f"prepared/{dataset}_split{split}"
        raise EvaluationError(
            f"{named} {pattern!r} matches no TFRecord files; pass --data with a prepared folder "
            f"(e.g. {example}) or a glob such as '{shards(example, eval_subset(dataset))}'."
        ) from None


def check_data(manifest, pattern, dataset, split, num_classes, source):
    """Refuses prepared data that does not fit the run or the options (see the messages)."""
    if manifest is None:
        return
    classes = len(manifest["classes"])
    if classes != num_classes:
        raise EvaluationError(
            f"the data {pattern!r} has {classes} classes (its {MANIFEST}) but the model of "
            f"{source} predicts {num_classes}; evaluate it on the data set it was trained for."
        )
    prepared_as, prepared_split = prepared_identity(manifest)
    if prepared_as and prepared_as != dataset:
        raise EvaluationError(
            f"the data {pattern!r} was prepared from {prepared_as} (its {MANIFEST}), not "
            f"{dataset}; pass the matching --dataset or --data."
        )
    if prepared_split is not None and prepared_split != split:
        raise EvaluationError(
            f"the data {pattern!r} is split {prepared_split} (its {MANIFEST}), not split "
            f"{split}; pass --split {prepared_split} or that split's --data."
        )


# ---------------------------------------------------------------------------- splits


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
    valid = DATASET_SPLITS[dataset]
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
    """Where ``evaluate.py`` looks without --model-dir, by train.py's rule
    (:func:`~dynamonet_tf.layout.default_run_dir`): a dataset's fine-tuned runs, one per
    split, when the first exists, else its joint run(s) (Kinetics-400's, or the demo's)."""
    split = SPLIT_PLACEHOLDER if len(DATASET_SPLITS[dataset]) > 1 else None
    finetuned = default_run_dir("finetune", dataset, split)
    first = str(finetuned).replace(SPLIT_PLACEHOLDER, str(DATASET_SPLITS[dataset][0]))
    if dataset != "kinetics400" and Path(first).exists():
        return finetuned
    return default_run_dir("joint", dataset, split)


def plan_splits(dataset, split, *, source=None, is_checkpoint=False, data=None, out=None):
    """The :class:`SplitPlan` of each split, and the folder of ``summary.json`` (None for one
    split).

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
            f"--split all evaluates one run per split: {flag} {template!r} needs a "
            f"{SPLIT_PLACEHOLDER} placeholder, e.g. --model-dir "
            f"'runs/finetune_{dataset}_split{SPLIT_PLACEHOLDER}'."
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
        summary_dir = Path(out) if out else splits_summary_dir(plans[0].source, dataset)
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
    plan,
    dataset,
    *,
    best=False,
    num_crops=1,
    clip_stride=None,
    batch_size=None,
    progress=True,
    allow_missing_videos=False,
):
    """Evaluates one split's run and writes its files; returns ``(metrics, out_dir)``.

    Clips hold every ``data.frame_stride``-th frame of a video, as the run's training clips;
    ``clip_stride`` counts those kept frames and defaults to the run's T (non-overlapping
    clips), ``batch_size`` (views per batch) to its ``train.batch_size``. Raises
    :class:`EvaluationError` or :class:`~dynamonet_tf.runs.RunError` on a run or data that
    does not fit, :class:`~dynamonet_tf.data.prepare.PrepareError` on an unreadable
    manifest and :class:`~dynamonet_tf.data.integrity.ShardError` on an unreadable shard.

    Fewer videos read than the data's manifest lists raise :class:`EvaluationError`; with
    ``allow_missing_videos`` the videos read are scored and ``metrics`` holds
    ``missing_videos`` (always: 0, or None without a manifest that can tell) and
    ``warnings`` (the one-line shortfall, for the caller to print).
    """
    if clip_stride is not None and clip_stride < 1:
        raise EvaluationError(f"--clip-stride must be >= 1; got {clip_stride}.")
    if num_crops not in (1, 3):
        raise EvaluationError(f"--crops must be 1 or 3; got {num_crops}.")
    if batch_size is not None and batch_size < 1:
        raise EvaluationError(f"--batch-size must be >= 1; got {batch_size}.")
    with _writing_into_run(plan):
        return _evaluate_split(
            plan, dataset, best, num_crops, clip_stride, batch_size, progress, allow_missing_videos
        )


def _writing_into_run(plan):
    """The run folder's lock when the results go inside it (the default), else nothing.

    Exclusive, as a trainer's: a run being trained is refused (its checkpoints, best/ and
    config change under a reader), and so is a second evaluation writing the same folder.
    """
    run_dir = run_dir_of(plan.source)
    if not run_layout(run_dir).config.is_file():
        return contextlib.nullcontext()  # not a run: load_classifier_run names the mistake
    out_dir = plan.out_dir
    if out_dir is not None and not out_dir.resolve().is_relative_to(run_dir.resolve()):
        return contextlib.nullcontext()
    try:
        return lock_run_folder(
            run_dir, advice="wait for it to finish, or write the results elsewhere with --out"
        )
    except RunLockError as error:
        raise EvaluationError(str(error)) from None


def _evaluate_split(
    plan, dataset, best, num_crops, clip_stride, batch_size, progress, allow_missing_videos
):
    run = load_classifier_run(plan.source, is_checkpoint=plan.is_checkpoint, best=best)
    data = run.config.data
    files, pattern = resolve_data(plan.data, dataset, plan.split, run.config, plan.source)
    manifest = read_manifest(files)
    check_data(manifest, pattern, dataset, plan.split, data.num_classes, plan.source)
    names = manifest_class_names(manifest, data.num_classes)
    clip_stride = clip_stride or data.num_frames
    clips = eval_dataset(
        files,
        data,
        batch_size=batch_size or run.config.train.batch_size,
        clip_stride=clip_stride,
        num_crops=num_crops,
    )
    predict = tf.function(model_logits(run.model), reduce_retracing=True)
    expected = manifest_videos(pattern, files) if manifest else None
    total_videos = expected.listed if expected else None
    try:
        with reading_shards(files):
            report = evaluate_clips(
                predict, clips, names, total_videos=total_videos, progress=progress
            )
    except ValueError as error:  # labels outside the model's classes, unlabeled videos
        raise EvaluationError(f"cannot score {pattern!r} with {run.checkpoint}: {error}") from None
    except EvaluationError:  # no video read: say why when the shards or manifest can
        _refuse_unread_data(pattern, files)
        raise
    shortfall = check_videos_read(
        pattern, report["videos"], allow_missing=allow_missing_videos, files=files
    )
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
        **{
            key: report[key]
            for key in ("videos", "clips", "views", *HEADLINE, "video_top5_trivial", "per_class")
        },
        "classes": names,
        "confusion": report["confusion"],  # [true class][predicted class], video counts
        **shortfall,  # missing_videos, and warnings when some are missing
    }
    out_dir = plan.out_dir or run_layout(run.model_dir).eval_dir(dataset, plan.split)
    write_outputs(out_dir, metrics, predictions)
    return metrics, out_dir


def _refuse_unread_data(pattern, files):
    """Data from which no video was read: a damaged shard (:class:`ShardError`), or the
    manifest's videos all missing (:class:`EvaluationError`); returns when neither explains
    it."""
    damage = find_damaged_shard(files)
    if damage is not None:
        raise ShardError(damage.message()) from None
    check_videos_read(pattern, 0, files=files)


def summarise_splits(results):
    """``{"splits": {N: headline numbers}, "mean": ..., "std": ...}`` over ``(split, metrics)``
    pairs; the standard deviation is the population one (ddof 0) over the splits."""
    kept = ("checkpoint", "videos", "clips", *HEADLINE)
    table = {str(split): {key: metrics[key] for key in kept} for split, metrics in results}
    values = {key: np.array([metrics[key] for _, metrics in results]) for key in HEADLINE}
    summary = {
        "splits": table,
        "mean": {key: float(v.mean()) for key, v in values.items()},
        "std": {key: float(v.std()) for key, v in values.items()},
    }
    warnings = [
        f"split {split}: {warning}"
        for split, metrics in results
        for warning in metrics.get("warnings", ())
    ]
    if warnings:
        summary["warnings"] = warnings  # a mean over splits scored on incomplete data
    return summary
