"""What a training run keeps in its folder: its config, checkpoints, epoch log and reports.

The names and places are :class:`dynamonet_tf.layout.RunLayout`'s. Every file is written
whole or not at all (:mod:`dynamonet_tf.atomic_files`), so a run killed at any moment leaves
files a resumed run can read; and one process at a time writes a folder: claiming it takes its
lock (:mod:`dynamonet_tf.run_lock`) before anything in it is read or changed.
"""

import csv
import json
import shutil
from pathlib import Path

import tensorflow as tf
import yaml

from dynamonet_tf import checkpoint_files
from dynamonet_tf.atomic_files import atomic_write, atomic_write_csv
from dynamonet_tf.config import ConfigError, ExperimentConfig, load_config, save_config, to_dict
from dynamonet_tf.layout import RunLayout
from dynamonet_tf.ownership import describe, folder_kind
from dynamonet_tf.run_lock import RunLock, lock_run_folder

# Checkpoints of the last states kept in checkpoints/ (best/ keeps one). Both folders name
# a checkpoint by its optimizer step, ckpt-<step> (best/ of runs made before, by its epoch
# from 0: TensorFlow's index keeps them in the order saved, so a resumed old run's newer
# best is still the one read); steps.json and best.json give the epochs.
CHECKPOINTS_KEPT = 3


class RunFolderError(Exception):
    """A run folder that holds another run; the message names the differences."""


def config_differences(saved: dict, current: dict, prefix: str = ""):
    """``"section.key: old -> new"`` for every key whose value differs."""
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            yield from config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            yield f"{prefix}{key}: {a!r} -> {b!r}"


def claim_run_folder(run: RunLayout, config: ExperimentConfig, overwrite: bool = False) -> RunLock:
    """Makes ``run`` the folder of ``config``'s run and saves the config there; returns the
    folder's lock, held by this process until released (or the process ends).

    The lock is taken first, before the saved config is read or anything is removed. A
    folder holding a run of the same config is resumed as it is. One holding a run of
    another config is refused unless ``overwrite``, which removes that run's outputs
    (checkpoints, best/, TensorBoard, logs, reports and its run.json) first.

    Raises:
        RunFolderInUse: another process holds the folder (the message names it).
        RunLockError: the folder cannot be made or locked.
        RunFolderError: the folder holds a run of another config and not ``overwrite``.
    """
    kind = folder_kind(run.root)
    if kind in ("prepared", "export", "file"):
        # Checked before the lock, whose file would be left in a folder that is not a run.
        raise RunFolderError(
            f"--model-dir {run.root} holds {describe(run.root)}, not a training run; a run is "
            "never written into it (not even with --overwrite): choose another --model-dir."
        )
    lock = lock_run_folder(run.root)
    try:
        _claim_locked(run, config, overwrite)
    except BaseException:
        lock.release()
        raise
    return lock


def _claim_locked(run: RunLayout, config: ExperimentConfig, overwrite: bool):
    current = to_dict(config)
    if run.config.exists():
        saved = _saved_config(run.config)
        if saved is not None:
            differences = list(config_differences(saved, current))
        elif has_checkpoint(run):
            differences = [f"{run.config} is empty or not a YAML mapping"]
            if not overwrite:
                raise RunFolderError(
                    f"{differences[0]}, so the config of the checkpoints in {run.checkpoints} "
                    "is unknown: put back the config that trained them, or delete it to resume "
                    "them with the config given now (they are checked against its model); "
                    "--overwrite would delete them."
                )
        else:
            differences = []  # nothing was trained under the unreadable config
        if differences and not overwrite:
            raise RunFolderError(
                f"{run.root} holds a run with another config ({'; '.join(differences)}); "
                "use another --model-dir, or --overwrite to start it afresh."
            )
        if differences:
            for path in run.outputs:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
    run.root.mkdir(parents=True, exist_ok=True)
    save_config(config, run.config)


def _saved_config(path):
    """The config saved at ``path`` as a dict; None when it is empty or not a YAML mapping
    (the schema would read an empty file as the defaults)."""
    try:
        saved = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(saved, dict) or not saved:
        return None
    try:
        # Through the schema, so that a key added to it since (with its default) does not
        # count as a difference.
        return to_dict(load_config(path))
    except ConfigError:
        return saved


def checkpoint_managers(checkpoint: tf.train.Checkpoint, model, run: RunLayout):
    """``(last, best)``: the manager of the run's last states (model, optimizer, position)
    in ``checkpoints/`` and of its best weights (model only) in ``best/``."""
    last = tf.train.CheckpointManager(checkpoint, run.checkpoints, max_to_keep=CHECKPOINTS_KEPT)
    best = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), run.best, max_to_keep=1)
    return last, best


def checkpoint_name(step: int) -> str:
    """The name of the checkpoint of optimizer step ``step``, in checkpoints/ and best/."""
    return f"{checkpoint_files.CHECKPOINT_NAME}-{step}"


def record_checkpoint_step(run: RunLayout, step: int, epoch: int, epoch_complete: bool, kept):
    """Notes in ``checkpoints/steps.json`` that ``ckpt-<step>`` was saved in ``epoch``
    (counted from 1, as in log.csv) and whether it ended that epoch; the entries of
    checkpoints no longer kept (``kept``: the prefixes the manager keeps) are dropped."""
    steps = read_json(run.checkpoint_steps)
    steps = steps if isinstance(steps, dict) else {}
    steps[checkpoint_name(step)] = {
        "step": step,
        "epoch": epoch,
        "epoch_complete": epoch_complete,
    }
    names = {Path(prefix).name for prefix in kept}
    steps = {name: entry for name, entry in steps.items() if name in names}
    write_json(run.checkpoint_steps, dict(sorted(steps.items(), key=lambda item: _number(item[0]))))


def record_best(run: RunLayout, step: int, epoch: int, val_loss: float):
    """Writes ``best/best.json``: the checkpoint in best/ (``ckpt-<step>``), its step, its
    epoch (counted from 1: the log.csv row whose validation chose it) and its val_loss."""
    write_json(
        run.best_info,
        {"checkpoint": checkpoint_name(step), "step": step, "epoch": epoch, "val_loss": val_loss},
    )


def read_json(path):
    """The JSON at ``path``; None when it is missing or cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _number(name: str) -> int:
    tail = name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else -1


def has_checkpoint(run: RunLayout) -> bool:
    """Whether the run has checkpoint files (whatever its index says)."""
    return bool(checkpoint_files.present(run.checkpoints))


def write_json(path, content):
    """Writes ``content`` as indented JSON, atomically (reports)."""
    atomic_write(path, json.dumps(content, indent=2))


def read_epoch_log(path):
    """The rows of the CSV log at ``path`` (dicts of strings), ``[]`` when it is absent."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def append_epoch_log(path, row: dict):
    """Adds ``row`` (an epoch's logs) to the CSV log, replacing any row of that epoch or
    later: a run killed after logging an epoch but before checkpointing it redoes it.

    Columns measured only in some epochs (the loss balance every N steps) stay blank in the
    others.
    """
    rows = [r for r in read_epoch_log(path) if int(r["epoch"]) < row["epoch"]]
    rows.append(row)
    atomic_write_csv(path, rows)
