"""Files and folders written whole or not at all: under a temporary name beside the target,
then renamed. The one home of that contract: every module that writes results, logs, data or
exports atomically goes through these functions.

A rename within one folder is atomic, so a reader, or a run resumed after a crash, finds the
old file or the new one and never half of one.

- :func:`atomic_write` writes bytes or text; :func:`atomic_write_with` hands a temporary path
  to a writer that needs a file name (PyAV, PIL, ``csv`` on an open file, ...). The temporary
  name is :func:`temporary_path` by default, ``<path>.tmp-<pid>``: the process id keeps two
  processes writing the same file out of one temporary file, and :data:`TEMPORARY_PATTERN`
  finds what an interrupted write left. Files inside folders that readers scan by extension
  (a dataset's videos) take :func:`hidden_temporary_path` instead, a hidden name without the
  extension, ``.<name>.partial``. A writer that picks its format from the file name must be
  told the format (``av.open(..., format=...)``, ``Image.save(..., format=...)``): neither
  temporary name keeps the extension.
- :func:`atomic_write_csv` rewrites a CSV file (a log rewritten with each new row).
- :func:`atomic_directory` writes a folder (a SavedModel) under :func:`sibling_staging_dir`
  and renames it into place with :func:`replace_directory`, which swaps out an existing one.

What is left behind: when the writer raises, its half-written temporary file is deleted. A
temporary file that is complete but could not be renamed, or one a killed process was
writing, stays under its temporary name, which no reader opens; re-runs clear them
(``data/prepare.py`` by :data:`TEMPORARY_PATTERN`, the demo by clearing its folders). A staging
folder is deleted on any failure; a killed process leaves it as a hidden ``.<name>.partial-*``
folder beside the target.
"""

import contextlib
import csv
import io
import os
import shutil
import uuid
from pathlib import Path

# What an interrupted write leaves behind (see temporary_path), for clearing it on a re-run.
TEMPORARY_PATTERN = "*.tmp-*"


def temporary_path(path):
    """The name ``path`` is written under until it is complete: ``<path>.tmp-<pid>``."""
    return Path(f"{path}.tmp-{os.getpid()}")


def hidden_temporary_path(path):
    """Hidden, extension-less sibling of ``path``, ``.<name>.partial``: a reader globbing
    ``*.avi`` or filtering by suffix never sees it."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def atomic_write_with(path, write, *, temporary=None):
    """Calls ``write(temporary)``, which must create the complete file there, then renames it
    onto ``path``, replacing what was there.

    Args:
        path: the file to write.
        write: a callable taking the temporary :class:`~pathlib.Path` to write.
        temporary: the temporary path; default :func:`temporary_path` of ``path``.

    If ``write`` raises, its temporary file is deleted and ``path`` is left as it was.
    """
    temporary = temporary_path(path) if temporary is None else Path(temporary)
    try:
        write(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def atomic_write(path, content, *, temporary=None):
    """Writes ``content`` (bytes, or str as UTF-8) to ``path`` through :func:`atomic_write_with`."""
    if isinstance(content, str):
        content = content.encode()
    atomic_write_with(path, lambda target: target.write_bytes(content), temporary=temporary)


def atomic_write_csv(path, rows):
    """Writes ``rows`` (dicts) to the CSV file ``path`` through :func:`atomic_write`.

    The columns are the rows' keys in order of first appearance; a row without one of them
    leaves its cell blank. Lines end in ``\\r\\n``, as :mod:`csv` writes by default.
    """
    fieldnames = list(dict.fromkeys(name for row in rows for name in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fieldnames, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, text.getvalue())


def sibling_staging_dir(path, tag):
    """Creates and returns a new hidden directory beside ``path``,
    ``.<name>.<tag>-<8 hex digits>``.

    On the same file system as ``path``, so that renaming it there is atomic. Unlike
    ``tempfile.mkdtemp`` it honours the umask: a staging directory that becomes an export
    must be readable by servers running as other users.
    """
    parent, name = os.path.split(os.fspath(path))
    sibling = os.path.join(parent, f".{name}.{tag}-{uuid.uuid4().hex[:8]}")
    os.mkdir(sibling)
    return sibling


def replace_directory(staging, target):
    """Renames the finished directory ``staging`` to ``target``, replacing what is there.

    An existing ``target`` is renamed aside first (into a :func:`sibling_staging_dir` tagged
    ``old``) and deleted last, so a failed rename leaves it in place.
    """
    if not os.path.isdir(target):
        os.rename(staging, target)
        return
    old = sibling_staging_dir(target, "old")
    moved = os.path.join(old, os.path.basename(os.fspath(target)))
    os.rename(target, moved)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(moved, target)
        os.rmdir(old)
        raise
    shutil.rmtree(old)


@contextlib.contextmanager
def atomic_directory(target):
    """Yields a new staging directory (:func:`sibling_staging_dir` tagged ``partial``) to fill;
    on leaving the block it replaces ``target`` (:func:`replace_directory`).

    If the block or the rename fails, the staging directory is deleted and an existing
    ``target`` is kept.
    """
    staging = sibling_staging_dir(target, "partial")
    try:
        yield staging
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
