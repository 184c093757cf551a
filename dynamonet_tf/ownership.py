"""What a folder is, and whether a command may replace it: nothing a user owns is destroyed.

A command that writes a folder or a file replaces only what it can prove it wrote:

- :func:`folder_kind` names what a path holds, by the marker each writer leaves: a **run**
  (``config.yaml`` or ``checkpoints/``, :class:`~dynamonet_tf.layout.RunLayout`), an
  **export** (``assets/dynamonet_export.json``), **prepared** data (``manifest.json`` or
  ``.progress/plan.json``); otherwise ``"empty"``, ``"other"`` (a folder holding anything
  else), ``"file"`` or ``"missing"``.
- :func:`check_replaceable` lets a command write into a missing or empty folder, and replace
  a folder of its own kind only when asked to (``--overwrite``); it never replaces a folder of
  another kind, or one whose contents carry no marker.
- :func:`check_outputs_not_inputs` refuses an output path that is one of the command's inputs
  (after resolving symlinks), or a folder that contains one, before any work starts.

Each refusal is an :class:`OwnershipError`, a :class:`ValueError` with a one-line message
naming the path and what it holds; command lines print it as ``error: <message>``.
"""

import os
from pathlib import Path

from dynamonet_tf.layout import CHECKPOINTS, MANIFEST, PROGRESS_DIR, RUN_CONFIG, RunLayout

# The marker an export leaves (dynamonet_tf.export.METADATA_FILE in its assets/ folder).
EXPORT_MARKER = os.path.join("assets", "dynamonet_export.json")
# The marker a preparation leaves while it runs (dynamonet_tf.data.prepare.PLAN_FILE).
PLAN_MARKER = os.path.join(PROGRESS_DIR, "plan.json")

KINDS = ("run", "export", "prepared", "empty", "other", "file", "missing")
_DESCRIPTIONS = {
    "run": "a training run",
    "export": "an export",
    "prepared": "prepared data",
}


# The names whose presence marks each kind ("/": a folder).
_MARKERS = {
    "run": [RUN_CONFIG, CHECKPOINTS + "/"],
    "export": [EXPORT_MARKER],
    "prepared": [MANIFEST, PLAN_MARKER],
}


class OwnershipError(ValueError):
    """An output that would destroy something the command did not write; one line."""


def folder_kind(path) -> str:
    """What ``path`` holds: ``"run"``, ``"export"``, ``"prepared"``, ``"empty"``, ``"other"``,
    ``"file"`` (not a folder) or ``"missing"``."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if not path.is_dir():
        return "file"
    run = RunLayout(path)
    if run.config.exists() or run.checkpoints.is_dir():
        return "run"
    if (path / EXPORT_MARKER).is_file():
        return "export"
    if (path / MANIFEST).is_file() or (path / PLAN_MARKER).is_file():
        return "prepared"
    return "other" if any(path.iterdir()) else "empty"


def markers(path, kind):
    """The names that mark ``path`` as ``kind`` (for messages): ``["config.yaml", ...]``."""
    return [name for name in _MARKERS.get(kind, []) if (Path(path) / name.rstrip("/")).exists()]


def describe(path, limit=3) -> str:
    """What ``path`` holds, in a few words: ``a training run (config.yaml, checkpoints/)``,
    ``2 entries (notes.txt, walk.mp4)``, ``a file``, ``nothing``."""
    path = Path(path)
    kind = folder_kind(path)
    if kind in _DESCRIPTIONS:
        return f"{_DESCRIPTIONS[kind]} ({', '.join(markers(path, kind))})"
    if kind == "file":
        return "a file"
    if kind in ("missing", "empty"):
        return "nothing"
    names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in path.iterdir())
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"{len(names)} {'entry' if len(names) == 1 else 'entries'} ({shown})"


def check_replaceable(path, kind, overwrite, *, option="--overwrite", name=None) -> str:
    """Refuses to write the folder ``path`` unless it is missing or empty, or holds ``kind``
    and ``overwrite`` is set; returns its :func:`folder_kind`.

    ``option`` is how the caller's user asks to overwrite (``--overwrite``,
    ``overwrite=True``), ``name`` how the message names ``path`` (default: the path itself).

    Raises:
        OwnershipError: ``path`` is a file, a folder of another kind, a folder holding
            anything but ``kind`` (files without a marker), or ``kind`` without ``overwrite``.
    """
    found = folder_kind(path)
    label = name or str(path)
    if found in ("missing", "empty"):
        return found
    if found == "file":
        raise OwnershipError(
            f"{label} is a file, not a folder; {option} replaces only {_DESCRIPTIONS[kind]} "
            "folder: choose another path."
        )
    if found != kind:
        unmarked = f" and no {' or '.join(_MARKERS[kind])}" if found == "other" else ""
        raise OwnershipError(
            f"{label} holds {describe(path)}{unmarked}, not {_DESCRIPTIONS[kind]}; it is never "
            f"replaced (not even with {option}): choose another path, or empty it yourself."
        )
    if not overwrite:
        raise OwnershipError(
            f"{label} already holds {describe(path)}; pass {option} to replace it, or choose "
            "another path."
        )
    return found


def _resolved(path):
    return Path(os.path.expanduser(os.fspath(path))).resolve()


def _labelled(paths):
    """``[(label, path)]`` from paths or ``(label, path)`` pairs; None entries are dropped."""
    pairs = []
    for entry in paths:
        label, path = entry if isinstance(entry, tuple) else (None, entry)
        if path is not None:
            pairs.append((f"{label} {path}" if label else str(path), Path(path)))
    return pairs


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)  # hard links too
    except OSError:
        return False


def check_outputs_not_inputs(outputs, inputs) -> None:
    """Refuses an output that is an input, or a folder that contains one.

    ``outputs`` and ``inputs`` are paths or ``(label, path)`` pairs (``("--out", path)``),
    the label naming the path in the message; ``None`` paths are skipped. Paths are compared
    after resolving symlinks (:meth:`pathlib.Path.resolve`), and existing ones as files too
    (a hard link). An output inside an input folder is allowed.

    Raises:
        OwnershipError: naming the output and the input.
    """
    inputs = [(label, path, _resolved(path)) for label, path in _labelled(inputs)]
    for out_label, out_path in _labelled(outputs):
        out_resolved = _resolved(out_path)
        for in_label, in_path, in_resolved in inputs:
            if out_resolved == in_resolved or _same_file(out_path, in_path):
                raise OwnershipError(
                    f"{out_label} is the input {in_label}; writing it would destroy the "
                    "input: choose another output path."
                )
            if out_resolved in in_resolved.parents:
                raise OwnershipError(
                    f"{out_label} contains the input {in_label}; replacing it would destroy "
                    "the input: choose another output path."
                )
