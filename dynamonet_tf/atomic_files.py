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
folder is deleted on any failure; a killed process (``kill -9``, a power cut) leaves it as a
hidden ``.<name>.partial-<8 hex>`` or ``.<name>.old-<8 hex>`` folder beside the target, and the
next :func:`atomic_directory` on that target removes it (:func:`remove_abandoned_staging`).

Which leftovers are removed, exactly: a folder is removed only when its name is one this module
gives (``.<name>.partial-`` or ``.<name>.old-`` and 8 hex digits, :data:`STAGING_TAGS`) *and*
no live process is writing it. The second is decided by the kernel, not guessed from ages or
process ids (which other hosts and PID namespaces reuse): :func:`atomic_directory` and
:func:`replace_directory` hold an exclusive ``flock`` on each staging folder they create for as
long as they use it, and the kernel drops it when the process ends, however it ends. A cleaner
that can take that lock without waiting knows the creator is gone; one that cannot (the folder
is in use, or the file system has no directory locks, as on NFS) leaves the folder alone. The
cleaner removes the folder while holding the lock, so two cleaners never race. A folder from
:func:`sibling_staging_dir` called directly is not locked: whoever calls it owns its removal.

Replacing an existing folder takes two renames (the old one aside, the new one in); a process
killed between them leaves no target and the complete old folder in ``.<name>.old-*/<name>``.
The next :func:`atomic_directory` on the target puts it back before writing its own, so the old
folder is never lost: a reader finds the old folder, the new one, or (in that instant) neither,
never a half-written one.
"""

import contextlib
import csv
import fcntl
import io
import os
import re
import shutil
import uuid
from pathlib import Path

# What an interrupted write leaves behind (see temporary_path), for clearing it on a re-run.
TEMPORARY_PATTERN = "*.tmp-*"
# The tags of the staging folders atomic_directory and replace_directory create: the new
# folder being written, and the old one moved aside to be deleted.
STAGING_TAGS = ("partial", "old")


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


def _staging_pattern(name):
    tags = "|".join(STAGING_TAGS)
    return re.compile(rf"\.{re.escape(name)}\.(?:{tags})-[0-9a-f]{{8}}")


def _open_directory(path):
    # O_NOFOLLOW: a symlink of a staging name is not this module's folder.
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _names(fd, path):
    """Whether ``path`` still names the directory open as ``fd`` (a cleaner may have deleted
    it between opening and locking)."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


@contextlib.contextmanager
def _locked_staging_dir(path, tag):
    """A new :func:`sibling_staging_dir` whose lock this process holds while the block runs,
    so that :func:`remove_abandoned_staging` leaves it alone; yields its path. The folder is
    not deleted on leaving: the caller renames or deletes it."""
    while True:
        staging = sibling_staging_dir(path, tag)
        try:
            fd = _open_directory(staging)
        except FileNotFoundError:
            continue  # a cleaner deleted it between mkdir and open: take another name
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a cleaner holds it and is deleting it
            continue
        except OSError:
            break  # no directory locks on this file system (NFS): no cleaner can lock it either
        if _names(fd, staging):
            break
        os.close(fd)
    try:
        yield staging
    finally:
        os.close(fd)  # drops the lock


def remove_abandoned_staging(target):
    """Removes the staging folders beside ``target`` that a killed process left (see the
    module docstring for which exactly); returns their paths.

    An ``old`` folder still holding the previous ``target`` while ``target`` is missing (a
    process killed between the two renames of :func:`replace_directory`) is renamed back to
    ``target`` first. A folder that cannot be put back or deleted is left as it is.
    """
    target = os.path.abspath(os.fspath(target))
    parent, name = os.path.split(target)
    pattern = _staging_pattern(name)
    try:
        entries = sorted(os.listdir(parent))
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        if not pattern.fullmatch(entry):
            continue
        staging = os.path.join(parent, entry)
        try:
            fd = _open_directory(staging)
        except OSError:
            continue  # gone, a file or a symlink: not a folder this module left
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # in use by a live process, or no directory locks: no way to tell
            if not _names(fd, staging):
                continue  # another cleaner deleted it meanwhile
            moved = os.path.join(staging, name)
            if entry.startswith(f".{name}.old-") and os.path.isdir(moved):
                if not os.path.lexists(target):
                    os.rename(moved, target)
            shutil.rmtree(staging)
            removed.append(staging)
        except OSError:
            continue  # kept: never fail the caller's write over a leftover
        finally:
            os.close(fd)
    return removed


def replace_directory(staging, target):
    """Renames the finished directory ``staging`` to ``target``, replacing what is there.

    An existing ``target`` is renamed aside first (into a locked :func:`sibling_staging_dir`
    tagged ``old``) and deleted last, so a failed rename leaves it in place, and a killed
    process leaves it where :func:`remove_abandoned_staging` puts it back.
    """
    if not os.path.isdir(target):
        os.rename(staging, target)
        return
    with _locked_staging_dir(target, "old") as old:
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
    """Yields a new staging directory (:func:`sibling_staging_dir` tagged ``partial``, locked
    while in use) to fill; on leaving the block it replaces ``target``
    (:func:`replace_directory`).

    First removes what killed processes left beside ``target``
    (:func:`remove_abandoned_staging`). If the block or the rename fails, the staging
    directory is deleted and an existing ``target`` is kept.
    """
    remove_abandoned_staging(target)
    with _locked_staging_dir(target, "partial") as staging:
        try:
            yield staging
            replace_directory(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
