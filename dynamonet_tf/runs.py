"""A training run on disk: its resolved config, the model that config builds, its checkpoints.

A run's model dir (written by ``train.py``) holds ``config.yaml``, ``checkpoints/`` (the
last states, with optimizer) and ``best/`` (the weights of the lowest validation loss).
Evaluation, export and inference load models from it with :func:`load_run`; their command
lines name the run with the options of :func:`add_run_arguments`, read by :func:`run_source`.
"""

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Optional

import keras
import tensorflow as tf

from dynamonet_tf import checkpoint_files
from dynamonet_tf.config import ExperimentConfig, load_config
from dynamonet_tf.layout import RUN_CONFIG, PathLike, run_dir_of, run_layout
from dynamonet_tf.models import build_dynamonet
from dynamonet_tf.names import kind_of_stage


class RunError(Exception):
    """A model dir or checkpoint that cannot be loaded; the message names the path."""


def model_kind(config: ExperimentConfig) -> str:
    """``"pretrain"``, ``"joint"`` or ``"classifier"``: the model ``config`` trains."""
    return kind_of_stage(config.train.stage, config.train.classifier_only)


def build_model(config: ExperimentConfig) -> keras.Model:
    """The Keras model that ``config`` trains (fresh weights)."""
    return build_dynamonet(
        model_kind(config),
        config.model,
        input_shape=config.data.clip_shape,
        num_classes=config.data.num_classes if config.train.labeled else None,
    )


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """``config``: the run's resolved config; ``model``: its Keras model with the
    checkpoint's weights; ``checkpoint``: the checkpoint prefix they came from;
    ``model_dir``: the run's folder."""

    config: ExperimentConfig
    model: keras.Model
    checkpoint: str
    model_dir: Path


def resolve_checkpoint(source: PathLike, *, best: bool = False) -> str:
    """The checkpoint prefix ``source`` names (the newest present, for a model dir; whether
    it can be read is found when it is restored, :func:`restore_weights`).

    Args:
        source: a model dir (its latest checkpoint, or its best one with ``best=True``) or a
            checkpoint prefix such as ``runs/joint_demo_split1/checkpoints/ckpt-200``.
        best: for a model dir, take ``best/`` (lowest validation loss) instead of the final state.

    Raises:
        RunError: nothing loadable at ``source``.
    """
    return str(_checkpoints_of(source, best)[0])


def _checkpoints_of(source: PathLike, best: bool) -> list:
    """The prefixes :func:`restore_weights` may load for ``source``, in the order it tries
    them: a model dir's checkpoints present on disk, newest first (so a garbled index does
    not hide them), or the one prefix given."""
    source = _existing(source)
    if source.is_dir():
        run = run_layout(source)
        folder = run.best if best else run.checkpoints
        prefixes = checkpoint_files.newest_first(folder)
        if not prefixes:
            raise RunError(
                f"{source}: no checkpoint in {folder}; expected the model dir of a train.py run."
            )
        return prefixes
    if not Path(f"{source}.index").exists():
        raise RunError(
            f"{source}: neither a model dir nor a checkpoint prefix (no {source}.index); pass a "
            "run's model dir or a prefix such as runs/joint_demo_split1/checkpoints/ckpt-200."
        )
    return [source]


def _existing(source: PathLike) -> Path:
    """``source`` as a path, refused by name when neither it nor a checkpoint prefix of that
    name exists (before its run's config is looked for)."""
    source = Path(source)
    if source.exists() or Path(f"{source}.index").exists():
        return source
    nearby = checkpoint_files.newest_first(source.parent)
    hint = (
        f"checkpoints in {source.parent}: {', '.join(p.name for p in nearby)}"
        if nearby
        else "pass a train.py run's model dir or a checkpoint prefix such as "
        "runs/joint_demo_split1/checkpoints/ckpt-200"
    )
    raise RunError(
        f"{source} does not exist (neither a folder nor a checkpoint prefix with "
        f"{source.name}.index); {hint}."
    )


def restore_weights(model: keras.Model, source: PathLike, *, best: bool = False) -> str:
    """Restores ``model``'s weights from the run or checkpoint ``source``; returns the
    checkpoint prefix they came from.

    For a model dir, a newest checkpoint that cannot be read (truncated, garbled) is named in
    a warning and the newest readable one is used; a prefix given explicitly is used or
    refused, never replaced. Only the model is restored (optimizer slots are left out), so
    a run of any stage loads.

    Raises:
        RunError: nothing readable at ``source``, or a checkpoint of another model.
    """
    candidates = _checkpoints_of(source, best)

    def restore(prefix):
        status = tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
        try:
            status.assert_existing_objects_matched()
        except AssertionError as error:
            raise RunError(f"{prefix} does not match the model of {RUN_CONFIG}: {error}") from None

    if not Path(source).is_dir():
        try:
            restore(str(candidates[0]))
        except checkpoint_files.DAMAGE_ERRORS as error:
            others = [p.name for p in checkpoint_files.newest_first(candidates[0].parent)]
            raise RunError(
                f"{candidates[0]}: the checkpoint cannot be read "
                f"({checkpoint_files.reason(error)}); checkpoints in its folder: "
                f"{', '.join(others) or 'none'}."
            ) from None
        return str(candidates[0])
    try:
        prefix, skipped = checkpoint_files.restore_newest_readable(candidates[0].parent, restore)
    except checkpoint_files.CheckpointDamaged as error:
        raise RunError(str(error)) from None
    for damaged, why in skipped:
        print(
            f"warning: {damaged} cannot be read ({why}); using {Path(prefix).name}, the newest "
            "checkpoint that can.",
            file=sys.stderr,
        )
    return prefix


def load_run_config(source: PathLike) -> ExperimentConfig:
    """The resolved config saved in the run that ``source`` belongs to."""
    run_dir = run_dir_of(_existing(source))
    config_path = run_layout(run_dir).config
    if not config_path.exists():
        raise RunError(
            f"{source}: no {RUN_CONFIG} in {run_dir}; expected the model dir of a train.py run."
        )
    return load_config(config_path)


def load_run(source: PathLike, *, best: bool = False) -> "LoadedRun":
    """Builds a run's model and restores its weights (:func:`restore_weights`): a
    :class:`LoadedRun`."""
    config = load_run_config(source)
    model = build_model(config)
    checkpoint = restore_weights(model, source, best=best)
    return LoadedRun(
        config=config, model=model, checkpoint=checkpoint, model_dir=run_dir_of(source)
    )


def add_run_arguments(
    parser,
    *,
    model_dir_help: str = "a train.py run (its latest checkpoint)",
    checkpoint_help: str = "a checkpoint prefix, e.g. runs/joint_demo_split1/checkpoints/ckpt-200",
) -> None:
    """Adds ``--model-dir``, ``--checkpoint`` and ``--best`` to an argparse parser; see
    :func:`run_source` for what they load."""
    parser.add_argument("--model-dir", type=Path, help=model_dir_help)
    parser.add_argument("--checkpoint", help=checkpoint_help)
    parser.add_argument(
        "--best",
        action="store_true",
        help="the model dir's best/ checkpoint (lowest validation loss), not its latest",
    )


def run_inputs(args: argparse.Namespace) -> list:
    """``(option, path)`` of the run folders the options of :func:`add_run_arguments` read,
    for checking that no output of a command is one of its inputs."""
    checkpoint_run = run_dir_of(args.checkpoint) if args.checkpoint else None
    return [("--model-dir", args.model_dir), ("the run of --checkpoint", checkpoint_run)]


def run_source(args: argparse.Namespace, *, required: bool = True) -> Optional[PathLike]:
    """The ``source`` of :func:`load_run` (with ``best=args.best``) that the options of
    :func:`add_run_arguments` name: ``--checkpoint`` when given, else ``--model-dir``; None
    when neither is given and not ``required``.

    Raises:
        RunError: ``--best`` with ``--checkpoint``, a checkpoint of another run than
            ``--model-dir``, or neither option when ``required``.
    """
    model_dir, checkpoint = args.model_dir, args.checkpoint
    if checkpoint is None:
        if model_dir is None and required:
            raise RunError("pass --model-dir DIR (a train.py run) or --checkpoint PREFIX.")
        return model_dir
    if args.best:
        raise RunError(
            "--best picks a model dir's best/ checkpoint; it cannot go with --checkpoint."
        )
    # Both given: allowed when they agree, so that a command can name the run and its checkpoint.
    if model_dir is not None and run_dir_of(checkpoint).resolve() != Path(model_dir).resolve():
        raise RunError(
            f"--checkpoint {checkpoint} is not a checkpoint of --model-dir {model_dir}; pass one "
            "of its checkpoints/ or best/ prefixes, or only --checkpoint."
        )
    return checkpoint
