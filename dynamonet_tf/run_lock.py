"""One writer per run folder: the process writing a run holds an exclusive OS lock
(``fcntl.flock``) on the folder's lock file (:attr:`dynamonet_tf.layout.RunLayout.lock`).

A second process that claims the folder is refused at once (never made to wait) with
:class:`RunFolderInUse`, whose message names the holder: the holder writes its PID, host and
command into the lock file after taking the lock. The kernel drops the lock when the holder's
process ends, however it ends, so a ``kill -9`` never leaves a stale lock; the file itself
stays (deleting it would let two processes lock two different files of one name).

Claims are the process's: a process that claims a folder it already holds is given it again
(a count; the folder is free for other processes once every claim is released, or when the
process ends). The lock file is not inherited by programs the process starts, and a child
made by ``fork`` forgets the parent's claims (closing its copy of the file keeps the parent's
lock). On NFS, Linux emulates ``flock`` with byte-range locks, so the lock also holds across
hosts; hence the host in the message.
"""

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
import threading
import time
from pathlib import Path

from dynamonet_tf.layout import PathLike, run_layout

# What train.py tells a second process; commands with other flags pass their own advice.
DEFAULT_ADVICE = "wait for it to finish or use another --model-dir"
# How long a refused process waits for the holder to write its name (it does so right after
# taking the lock).
HOLDER_WAIT_SECONDS = 1.0
COMMAND_SHOWN = 120  # characters of the holder's command in the message

# The lock files this process holds: their real path -> [file descriptor, claims].
_held = {}
_guard = threading.Lock()


class RunLockError(Exception):
    """A run folder that cannot be locked (not writable, or a file system without locks)."""


class RunFolderInUse(RunLockError):
    """A run folder another process holds. ``holder``: what it wrote in the lock file
    (``pid``, ``host``, ``command``, ``since``), ``{}`` when it wrote nothing readable."""

    def __init__(self, message, holder):
        super().__init__(message)
        self.holder = holder


class RunLock:
    """One claim on a run folder, from :func:`lock_run_folder`; :meth:`release` (or leaving
    its ``with`` block) gives it back. Releasing twice is harmless."""

    def __init__(self, root: Path, key: str):
        self.root = root
        self._key = key

    @property
    def held(self) -> bool:
        return self._key is not None

    def release(self):
        key, self._key = self._key, None
        if key is None:
            return
        with _guard:
            entry = _held.get(key)
            if entry is None:  # forgotten in a forked child
                return
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                fd = entry[0]
                try:
                    os.ftruncate(fd, 0)  # no name left for a later reader to trust
                    fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        return f"RunLock({str(self.root)!r}, held={self.held})"


def holder_info() -> dict:
    """What this process writes in a lock file it takes."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    argv[0] = Path(argv[0]).name
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": shlex.join(argv),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def lock_run_folder(root: PathLike, *, advice: str = DEFAULT_ADVICE) -> RunLock:
    """Claims the run folder ``root`` (made if missing) for this process.

    Raises:
        RunFolderInUse: another process holds it; the message names that process and ends
            with ``advice``.
        RunLockError: the folder cannot be made or locked.
    """
    root = Path(root)
    path = run_layout(root).lock
    try:
        root.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(path)
        with _guard:
            if key in _held:
                _held[key][1] += 1
                return RunLock(root, key)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _read_holder(path)
                raise RunFolderInUse(_in_use_message(root, holder, advice), holder) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(holder_info()) + "\n").encode(), 0)
            except BaseException:
                os.close(fd)  # drops the lock
                raise
            _held[key] = [fd, 1]
            return RunLock(root, key)
    except RunFolderInUse:
        raise
    except OSError as error:
        raise RunLockError(
            f"cannot lock the run folder {root} ({path}): {error.strerror or error}; "
            "it must be a writable folder on a file system with file locks."
        ) from None


def held_by(root: PathLike):
    """What the holder of ``root`` wrote (``{}`` if nothing readable) while some process,
    this one included, holds it; None when it is free or has no lock file."""
    path = run_layout(root).lock
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(path)
    finally:
        os.close(fd)  # also drops the probe's lock
    return None


def _read_holder(path: Path) -> dict:
    """The holder's record; waits briefly for a holder that has just taken the lock."""
    deadline = time.monotonic() + HOLDER_WAIT_SECONDS
    while True:
        try:
            holder = json.loads(path.read_text())
            if isinstance(holder, dict) and "pid" in holder:
                return holder
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return {}
        time.sleep(0.05)


def _in_use_message(root: Path, holder: dict, advice: str) -> str:
    if not holder:
        lock = run_layout(root).lock
        return f"{root} is in use by another process (its {lock} names none); {advice}."
    command = " ".join(str(holder.get("command", "?")).split())  # one line
    if len(command) > COMMAND_SHOWN:
        command = command[: COMMAND_SHOWN - 3] + "..."
    return (
        f"{root} is in use by process {holder['pid']} ({command}) on host "
        f"{holder.get('host', '?')}; {advice}."
    )


def _forget_in_child():
    """After ``fork``: the child closes its copies of the lock files without unlocking (the
    parent's claims stay the parent's)."""
    global _guard
    _guard = threading.Lock()
    for fd, _ in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)
