"""Where things are on disk, defined once: a run's folder, a prepared dataset, the demo.

A **run** (``train.py --model-dir``) holds ``config.yaml`` (the resolved config),
``checkpoints/`` (the last states, with optimizer), ``best/`` (the weights of the lowest
validation loss), ``tensorboard/``, ``log.csv`` (a row per epoch), ``report.json`` (the
end-of-run report) and, for a run started from another, ``init_report.json``; evaluate.py
adds ``eval_<dataset>_split<N>/``.
The process writing a run holds an OS lock on its ``.lock`` (which names that process):
:mod:`dynamonet_tf.run_lock`.

A **prepared dataset** (``data/prepare.py --out``) holds ``<subset>-<k>-of-<n>.tfrecord``
shards (subsets ``train``, ``holdout``, ``val``, ``test``), ``manifest.json`` and
``failures.json``, and while it is being written, ``.progress/``.

The **demo** (``data/demo`` by default) holds the generated videos in ``videos/`` and two
prepared datasets: ``unlabeled/`` (for pretraining) and ``labeled_split<N>/``.

Paths here are relative to the working directory unless made absolute by the caller.
"""

import dataclasses
from pathlib import Path
from typing import Union

PathLike = Union[str, Path]

# ---------------------------------------------------------------------------------- runs

RUN_CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"
BEST = "best"
TENSORBOARD = "tensorboard"
LOG = "log.csv"
REPORT = "report.json"
INIT_REPORT = "init_report.json"
# Locked by the one process writing the run (dynamonet_tf.run_lock); never deleted.
LOCK = ".lock"
# Where train.py puts a run of a stage when no --model-dir is given.
RUNS_DIR = Path("runs")


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """The paths of one run's folder ``root``."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / RUN_CONFIG

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def best(self) -> Path:
        return self.root / BEST

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD

    @property
    def log(self) -> Path:
        return self.root / LOG

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def init_report(self) -> Path:
        return self.root / INIT_REPORT

    @property
    def lock(self) -> Path:
        """The file the run's one writer holds locked (:mod:`dynamonet_tf.run_lock`)."""
        return self.root / LOCK

    def eval_dir(self, dataset: str, split: int) -> Path:
        """Where evaluate.py writes its results on one split by default."""
        return self.root / f"eval_{dataset}_split{split}"

    @property
    def outputs(self) -> tuple:
        """Everything a run writes besides its config, for replacing a run."""
        return (
            self.checkpoints,
            self.best,
            self.tensorboard,
            self.log,
            self.report,
            self.init_report,
        )


def run_layout(model_dir: PathLike) -> RunLayout:
    return RunLayout(Path(model_dir))


def splits_summary_dir(first_run: PathLike, dataset: str) -> Path:
    """Where ``evaluate.py --split all`` writes its summary by default: beside the runs."""
    return run_dir_of(first_run).parent / f"eval_{dataset}_splits"


def default_model_dir(stage: str) -> Path:
    """``runs/<stage>``: where train.py writes a stage's run by default."""
    return RUNS_DIR / stage


def run_dir_of(source: PathLike) -> Path:
    """The run folder of ``source``: a run folder itself, or a checkpoint prefix inside its
    ``checkpoints/`` or ``best/`` folder."""
    source = Path(source)
    return source if source.is_dir() else source.parent.parent


# ------------------------------------------------------------------------ prepared data

MANIFEST = "manifest.json"
FAILURES = "failures.json"
PROGRESS_DIR = ".progress"
TRAIN, VAL, TEST, HOLDOUT = "train", "val", "test", "holdout"
SHARD_SUFFIX = ".tfrecord"


def shard_name(subset: str, index: int, count: int) -> str:
    """``<subset>-<index>-of-<count>.tfrecord``, zero-padded to 5 digits."""
    return f"{subset}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def shards(folder: PathLike, subset: str = None) -> str:
    """The glob of a prepared folder's shards of ``subset`` (all of them when None)."""
    return str(Path(folder) / (f"{subset}-*{SHARD_SUFFIX}" if subset else f"*{SHARD_SUFFIX}"))


def eval_subset(dataset: str) -> str:
    """The prepared subset a dataset is evaluated on: Kinetics' val, the others' test."""
    return VAL if dataset == "kinetics400" else TEST


# --------------------------------------------------------------------------------- demo

DEMO_DATA_DIR = Path("data") / "demo"


@dataclasses.dataclass(frozen=True)
class DemoLayout:
    """The demo's folders under ``root``."""

    root: Path = DEMO_DATA_DIR

    @property
    def videos(self) -> Path:
        """The generated videos (the raw layout: :func:`dynamonet_tf.data.demo.demo_paths`)."""
        return self.root / "videos"

    @property
    def unlabeled(self) -> Path:
        """The prepared unlabeled clips."""
        return self.root / "unlabeled"

    def labeled(self, split: int = 1) -> Path:
        """The prepared labeled set of ``split``."""
        return self.root / f"labeled_split{split}"

    def is_prepared(self, split: int = 1) -> bool:
        """Whether both prepared datasets are complete (each has its manifest)."""
        return (self.unlabeled / MANIFEST).exists() and (self.labeled(split) / MANIFEST).exists()


def demo_layout(root: PathLike = DEMO_DATA_DIR) -> DemoLayout:
    return DemoLayout(Path(root))
