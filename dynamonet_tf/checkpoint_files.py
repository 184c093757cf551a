"""Checkpoint folders that survive damage: a lost or garbled index, a truncated or unreadable
checkpoint, the temporary folder of an interrupted save.

A folder written by ``tf.train.CheckpointManager`` holds ``ckpt-<N>.index`` and
``ckpt-<N>.data-*`` per checkpoint and a text index, ``checkpoint``, naming them. TensorFlow
trusts the index alone: when it is garbled, or names a checkpoint whose files are gone, the
folder looks empty, and a resumed run would start from step 0 and rotate the good
checkpoints away. And a checkpoint cut short (a full disk, a copy interrupted) fails only
when it is restored, with ``IndexError: Read less bytes than requested`` naming no file.

So the readers here go by the files present: :func:`newest_first` orders what is on disk
(the index's order when it can be read), :func:`restore_newest_readable` restores the
newest checkpoint that reads and reports every one it had to skip, and the one process
that writes a run (it holds the run's lock) can :func:`repair_index`, :func:`set_aside`
damaged checkpoints into ``damaged/`` (kept, never deleted) and
:func:`remove_interrupted_saves`.
"""

import re
import shutil
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import tensorflow as tf

# CheckpointManager's names: its checkpoint_name default and its index file.
CHECKPOINT_NAME = "ckpt"
INDEX = "checkpoint"
# Where a run's writer moves checkpoints that cannot be read, inside their folder.
DAMAGED = "damaged"
_NUMBERED_INDEX = re.compile(rf"^{CHECKPOINT_NAME}-(\d+)\.index$")
# A save writes ckpt-<N>_temp/ and renames its files into place; a kill leaves the folder.
_INTERRUPTED_SAVE = re.compile(rf"^{CHECKPOINT_NAME}-\d+_temp$")
# What restoring a damaged checkpoint raises: a truncated data file (IndexError), a garbled
# or missing file (an OpError: DataLossError, NotFoundError, ...).
DAMAGE_ERRORS = (IndexError, tf.errors.OpError)


class CheckpointDamaged(Exception):
    """No checkpoint of a folder can be read; the message names each one and why."""


def _number(prefix: Path) -> int:
    return int(prefix.name.rpartition("-")[2])


def present(folder) -> List[Path]:
    """The checkpoint prefixes in ``folder`` that have an index and a data file, oldest
    (lowest number) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    prefixes = []
    for entry in folder.iterdir():
        if _NUMBERED_INDEX.match(entry.name):
            prefix = entry.with_suffix("")
            if any(folder.glob(f"{prefix.name}.data-*")):
                prefixes.append(prefix)
    return sorted(prefixes, key=_number)


def _listed(folder: Path) -> Optional[List[Path]]:
    """The checkpoints the index lists, oldest first; None when it is missing or unreadable."""
    if not (folder / INDEX).is_file():
        return None
    try:
        state = tf.train.get_checkpoint_state(str(folder))
    except (ValueError, tf.errors.OpError, UnicodeDecodeError):
        return None
    if state is None or not state.model_checkpoint_path:
        return None
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    return [folder / Path(path).name for path in paths]


def index_problem(folder) -> Optional[str]:
    """Why ``folder``'s index does not name the checkpoints present (None when it does, or
    when there are none): missing, unreadable, or naming checkpoints whose files are gone."""
    folder = Path(folder)
    on_disk = present(folder)
    if not on_disk:
        return None
    listed = _listed(folder)
    if listed is None:
        if (folder / INDEX).exists():
            return f"{folder / INDEX} cannot be read"
        return f"{folder / INDEX} is missing"
    gone = [path.name for path in listed if path not in on_disk]
    if gone:
        return f"{folder / INDEX} names checkpoints whose files are gone: {', '.join(gone)}"
    return None


def newest_first(folder) -> List[Path]:
    """Every checkpoint present in ``folder``, the index's latest first when the index can
    be read, then the rest by number, highest first."""
    on_disk = present(folder)
    listed = [path for path in (_listed(Path(folder)) or []) if path in on_disk]
    rest = [path for path in on_disk if path not in listed]
    return list(reversed(listed)) + list(reversed(rest))


def restore_newest_readable(
    folder, restore: Callable[[str], None]
) -> Tuple[str, List[Tuple[str, str]]]:
    """Calls ``restore(prefix)`` on ``folder``'s checkpoints, newest first, until one reads.

    Returns ``(prefix, skipped)``: the checkpoint restored and ``(prefix, reason)`` of each
    newer one that could not be read. Errors other than damage (a checkpoint of another
    model, say) propagate at once: an older checkpoint would not cure them.

    Raises:
        CheckpointDamaged: no checkpoint in ``folder`` reads (or there is none).
    """
    skipped = []
    for prefix in newest_first(folder):
        try:
            restore(str(prefix))
        except DAMAGE_ERRORS as error:
            skipped.append((str(prefix), reason(error)))
            continue
        return str(prefix), skipped
    if not skipped:
        raise CheckpointDamaged(f"no checkpoint in {folder}")
    raise CheckpointDamaged(
        f"no checkpoint in {folder} can be read: "
        + "; ".join(f"{Path(prefix).name} ({why})" for prefix, why in skipped)
    )


def reason(error: BaseException) -> str:
    """The first line of what TensorFlow said about an unreadable checkpoint."""
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0]


def repair_index(folder) -> Optional[str]:
    """Rewrites ``folder``'s index to name the checkpoints present, oldest first, when it
    does not (:func:`index_problem`); returns what was wrong, or None when nothing was.

    Only for the process that writes the folder (it holds the run's lock).
    """
    folder = Path(folder)
    problem = index_problem(folder)
    if problem is not None:
        _write_index(folder, present(folder))
    return problem


def _write_index(folder: Path, prefixes: List[Path]):
    if not prefixes:
        (folder / INDEX).unlink(missing_ok=True)
        return
    # TensorFlow's own writer of the index (CheckpointManager's), atomic, relative paths so
    # that the run folder can be moved.
    # Absolute paths in: TensorFlow makes them relative to the folder (a bare name would be
    # taken relative to the working directory and written as "../../ckpt-N").
    tf.__internal__.train.update_checkpoint_state(
        save_dir=str(folder.resolve()),
        model_checkpoint_path=str(prefixes[-1].resolve()),
        all_model_checkpoint_paths=[str(prefix.resolve()) for prefix in prefixes],
        all_model_checkpoint_timestamps=[
            (prefix.with_suffix(".index")).stat().st_mtime for prefix in prefixes
        ],
        save_relative_paths=True,
    )


def set_aside(prefixes) -> List[Path]:
    """Moves the files of the checkpoints ``prefixes`` into ``damaged/<time>/`` of their
    folder (kept for the user to inspect, never deleted) and rewrites the folder's index
    without them; returns the folders they went to.

    Only for the process that writes the folder (it holds the run's lock).
    """
    moved_to = []
    folders = set()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for prefix in map(Path, prefixes):
        target = prefix.parent / DAMAGED / stamp
        target.mkdir(parents=True, exist_ok=True)
        for file in prefix.parent.glob(f"{prefix.name}.*"):
            file.rename(target / file.name)
        moved_to.append(target)
        folders.add(prefix.parent)
    for folder in folders:
        _write_index(folder, present(folder))
    return moved_to


def remove_interrupted_saves(folder) -> List[Tuple[Path, int]]:
    """Removes the ``ckpt-<N>_temp/`` folders an interrupted save left in ``folder``;
    returns each with its size in bytes.

    Only for the process that writes the folder (it holds the run's lock, so no save of its
    own is under way): such a folder is TensorFlow's, half-written, and never read.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and _INTERRUPTED_SAVE.match(entry.name):
            size = sum(file.stat().st_size for file in entry.rglob("*") if file.is_file())
            shutil.rmtree(entry)
            removed.append((entry, size))
    return removed
