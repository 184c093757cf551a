"""Where things are on disk, defined once: a run's folder, a prepared dataset, the demo.

A **run** (``train.py --model-dir``) holds ``config.yaml`` (the resolved config),
``checkpoints/`` (the last states, with optimizer), ``best/`` (the weights of the lowest
validation loss), ``tensorboard/``, ``log.csv`` (a row per epoch), ``report.json`` (the
end-of-run report) and, for a run started from another, ``init_report.json``; evaluate.py
adds ``eval_<dataset>_split<N>/``. ``run.json`` records each session of the run (command,
start and end, status, git commit, versions, devices, host) and ``train.log`` what the
terminal showed, without progress bars (:mod:`dynamonet_tf.training.run_record`).
Checkpoints are numbered by optimizer step in both folders, ``ckpt-<step>``:
``checkpoints/steps.json`` gives each kept one's epoch (and whether it ended it) and
``best/best.json`` the epoch, step and validation loss of the one in ``best/``. (Runs made
before that numbered ``best/`` by epoch from 0; they load and resume as they are.)
The process writing a run holds an OS lock on its ``.lock`` (which names that process):
:mod:`dynamonet_tf.run_lock`.

A **prepared dataset** (``data/prepare.py --out``) holds ``<subset>-<k>-of-<n>.tfrecord``
shards (subsets ``train``, ``holdout``, ``val``, ``test``), ``manifest.json`` and
``failures.json``, and while it is being written, ``.progress/``.

The **demo** (:data:`DEMO_DATA_DIR`: ``data/demo`` of the checkout) holds the generated
videos in ``videos/`` and two prepared datasets: ``unlabeled/`` (for pretraining) and
``labeled_split<N>/``.

Paths here are relative to the working directory unless made absolute by the caller.
"""

import dataclasses
import os
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
RUN_RECORD = "run.json"
TRAIN_LOG = "train.log"
# Inside checkpoints/ and best/: what epoch each checkpoint's step belongs to.
CHECKPOINT_STEPS = "steps.json"
BEST_INFO = "best.json"
# Locked by the one process writing the run (dynamonet_tf.run_lock); never deleted.
LOCK = ".lock"
# Where train.py puts a run when no --model-dir is given: default_run_dir.
RUNS_DIR = Path("runs")
# In a path of a config or a command, replaced by a split's number (1, 2, 3).
SPLIT_PLACEHOLDER = "{split}"


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
    def record(self) -> Path:
        """run.json: the sessions of the run (:mod:`dynamonet_tf.training.run_record`)."""
        return self.root / RUN_RECORD

    @property
    def train_log(self) -> Path:
        """train.log: what the run's terminal showed, without progress bars."""
        return self.root / TRAIN_LOG

    @property
    def checkpoint_steps(self) -> Path:
        """``{"ckpt-<step>": {"step", "epoch", "epoch_complete"}}`` of checkpoints/."""
        return self.checkpoints / CHECKPOINT_STEPS

    @property
    def best_info(self) -> Path:
        """``{"checkpoint", "step", "epoch", "val_loss"}`` of the checkpoint in best/."""
        return self.best / BEST_INFO

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
            # A replaced run's record and log go with it: they describe the old config.
            self.record,
            self.train_log,
        )


def run_layout(model_dir: PathLike) -> RunLayout:
    return RunLayout(Path(model_dir))


def splits_summary_dir(first_run: PathLike, dataset: str) -> Path:
    """Where ``evaluate.py --split all`` writes its summary by default: beside the runs."""
    return run_dir_of(first_run).parent / f"eval_{dataset}_splits"


def default_run_dir(stage: str, dataset: str = None, split=None) -> Path:
    """``runs/<stage>[_<dataset>][_split<N>]``: where train.py writes a run by default, and
    where evaluate.py, export.py and the presets' comments look for it; e.g.
    ``runs/pretrain_demo``, ``runs/joint_kinetics400``, ``runs/finetune_ucf101_split2``.
    ``split`` may be :data:`SPLIT_PLACEHOLDER`, for a template of the three splits' runs."""
    name = stage + (f"_{dataset}" if dataset else "") + (f"_split{split}" if split else "")
    return RUNS_DIR / name


# Where export.py writes a run's SavedModel when no --out is given: default_export_dir.
EXPORTS_DIR = Path("exported")


def default_export_dir(run_dir: PathLike) -> Path:
    """``exported/<run folder's name>/1``: version 1 of a model named after its run, the
    folder layout TensorFlow Serving reads (``--model_base_path=exported/<name>``)."""
    return EXPORTS_DIR / Path(run_dir).name / "1"


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

# Overrides where the demo lives (an absolute path or one relative to the working directory).
DEMO_DIR_VARIABLE = "DYNAMONET_DEMO_DIR"


def _demo_data_dir() -> Path:
    """The one place of the demo, whatever the working directory: ``$DYNAMONET_DEMO_DIR``;
    else ``data/demo`` of the checkout when the package runs from one (an editable
    install, as the README's); else ``dynamonet_tf/demo`` in the user's cache folder
    (``$XDG_CACHE_HOME``, default ``~/.cache``)."""
    if os.environ.get(DEMO_DIR_VARIABLE):
        return Path(os.environ[DEMO_DIR_VARIABLE]).absolute()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists() and (checkout / "data").is_dir():
        return checkout / "data" / "demo"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache.absolute() / "dynamonet_tf" / "demo"


DEMO_DATA_DIR = _demo_data_dir()


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
