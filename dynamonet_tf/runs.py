"""A training run on disk: its resolved config, the model that config builds, its checkpoints.

A run's model dir (written by ``train.py``) holds ``config.yaml``, ``checkpoints/`` (the
last states, with optimizer) and ``best/`` (the weights of the lowest validation loss).
Evaluation, export and inference load models from it with :func:`load_run`; their command
lines name the run with the options of :func:`add_run_arguments`, read by :func:`run_source`.
"""

import argparse
import dataclasses
from pathlib import Path
from typing import Optional

import keras
import tensorflow as tf

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
    """The checkpoint prefix ``source`` names.

    Args:
        source: a model dir (its latest checkpoint, or its best one with ``best=True``) or a
            checkpoint prefix such as ``runs/joint/checkpoints/ckpt-200``.
        best: for a model dir, take ``best/`` (lowest validation loss) instead of the final state.

    Raises:
        RunError: nothing loadable at ``source``.
    """
    source = Path(source)
    if source.is_dir():
        run = run_layout(source)
        folder = run.best if best else run.checkpoints
        prefix = tf.train.latest_checkpoint(folder)
        if prefix is None:
            raise RunError(
                f"{source}: no checkpoint in {folder}; expected the model dir of a train.py run."
            )
        return prefix
    if not Path(f"{source}.index").exists():
        raise RunError(
            f"{source}: neither a model dir nor a checkpoint prefix (no {source}.index); pass a "
            "run's model dir or a prefix such as runs/joint/checkpoints/ckpt-200."
        )
    return str(source)


def load_run_config(source: PathLike) -> ExperimentConfig:
    """The resolved config saved in the run that ``source`` belongs to."""
    run_dir = run_dir_of(source)
    config_path = run_layout(run_dir).config
    if not config_path.exists():
        raise RunError(
            f"{source}: no {RUN_CONFIG} in {run_dir}; expected the model dir of a train.py run."
        )
    return load_config(config_path)


def load_run(source: PathLike, *, best: bool = False) -> "LoadedRun":
    """Builds a run's model and restores its weights: a :class:`LoadedRun`.

    Only the model is restored (optimizer slots are left out), so a run of any stage loads.
    """
    config = load_run_config(source)
    checkpoint = resolve_checkpoint(source, best=best)
    model = build_model(config)
    status = tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        raise RunError(f"{checkpoint} does not match the model of {RUN_CONFIG}: {error}") from None
    return LoadedRun(
        config=config, model=model, checkpoint=checkpoint, model_dir=run_dir_of(source)
    )


def add_run_arguments(
    parser,
    *,
    model_dir_help: str = "a train.py run (its latest checkpoint)",
    checkpoint_help: str = "a checkpoint prefix of a run, e.g. runs/joint/checkpoints/ckpt-200",
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
