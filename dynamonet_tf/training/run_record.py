"""A run folder that explains itself: ``run.json`` (who ran it, how, where, with what, and how
each session ended) and ``train.log`` (what the terminal showed, without progress bars).

A **session** is one process's hold on a run folder, from the moment its Trainer claims the
folder until it releases it. Each session appends an entry to ``run.json``'s ``sessions``
list, so a resumed run keeps its first start::

    {"stage": "pretrain", "model_dir": "/abs/runs/pretrain_demo",
     "start": <first session's start>, "end": <last session's end, null while running>,
     "status": <last session's status>,
     "sessions": [{"start", "end", "status", "command", "cwd", "resumed_from",
                   "initialised_from", "start_step", "end_step", "error", "host", "pid",
                   "git": {"commit", "dirty"}, "versions": {...}, "devices": [...],
                   "strategy", "replicas"}, ...]}

Times are ISO 8601 with the local time zone. A status is ``running`` (the session is under
way), ``finished``, ``failed`` (with ``error``), ``interrupted`` (Ctrl-C), ``closed`` (the
Trainer was released without training to the end) or ``killed`` (found still ``running`` by
a later session: that process ended without a word, ``kill -9`` or a power cut; its end is
unknown). ``git`` is the commit of the checkout the package runs from and whether its
tracked files differ from it (untracked files do not count); both are null when the package
is not in a git checkout or git cannot say within a few seconds. ``run.json`` is rewritten
whole (:func:`~dynamonet_tf.atomic_files.atomic_write`) at the start and end of a session.

``train.log`` is appended, a header line per session. Lines reach it two ways:
:meth:`RunSession.say` (the trainer's own messages: printed and logged) and
:func:`tee_to_log`, which duplicates what ``sys.stdout`` and ``sys.stderr`` are given while it
is active, minus progress bars (a line holding a carriage return or a backspace, as Keras'
progress bar and tqdm write, is a bar's update and not logged). A tee may start before the
run folder is claimed (train.py's lines before the Trainer is made): its lines are held in
memory and written only once a session of this process claims that folder, after the
session's header; a folder never claimed (the run was refused) gets nothing.
"""

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

from dynamonet_tf.atomic_files import atomic_write
from dynamonet_tf.layout import RunLayout

RUNNING, FINISHED, FAILED, INTERRUPTED, CLOSED, KILLED = (
    "running",
    "finished",
    "failed",
    "interrupted",
    "closed",
    "killed",
)
STATUSES = (RUNNING, FINISHED, FAILED, INTERRUPTED, CLOSED, KILLED)
# Seconds a git command may take before the commit is recorded as unknown.
GIT_TIMEOUT = 5.0
# The folder of the package, whose checkout's commit a run records.
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Lines a tee keeps while its run folder is not claimed yet (train.py's preamble).
PENDING_LINES = 1000
# A progress bar's update: it returns to the start of its line.
_PROGRESS = re.compile(r"[\r\b]")


def now() -> str:
    """The time, ISO 8601 to the second with the local time zone's offset."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# ------------------------------------------------------------------------ what is recorded


def git_state(directory=PACKAGE_DIR, timeout=GIT_TIMEOUT) -> dict:
    """``{"commit": <HEAD>, "dirty": <tracked files changed>}`` of the git checkout holding
    ``directory``'s ``__init__.py``; both None when git is missing, slow, or the package is
    not tracked by a checkout (an installed copy, even inside someone else's repository)."""
    unknown = {"commit": None, "dirty": None}
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}

    def git(*arguments):
        result = subprocess.run(
            ["git", "-C", str(directory), *arguments],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
            check=False,
        )
        return result.stdout.strip() if result.returncode == 0 else None

    try:
        if git("ls-files", "--error-unmatch", "__init__.py") is None:
            return unknown
        commit = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return unknown
    if not commit:
        return unknown
    try:
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        status = None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def versions() -> dict:
    """Python's, TensorFlow's, Keras' and NumPy's versions, and tf-models-official's (None
    when it is not installed)."""
    import keras
    import numpy
    import tensorflow as tf

    try:
        models = importlib.metadata.version("tf-models-official")
    except importlib.metadata.PackageNotFoundError:
        models = None
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "tf_models_official": models,
    }


def devices(strategy) -> dict:
    """The logical devices TensorFlow sees and the strategy's class and replica count."""
    import tensorflow as tf

    return {
        "devices": [
            {"name": device.name, "type": device.device_type}
            for device in tf.config.list_logical_devices()
        ],
        "strategy": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
    }


def describe_error(error: BaseException) -> str:
    """``"<type>: <message>"`` (the type alone when it says nothing more)."""
    message = str(error).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def status_of(error: BaseException) -> str:
    return INTERRUPTED if isinstance(error, KeyboardInterrupt) else FAILED


def read_record(path: Path):
    """``(record, problem)``: the saved run.json (``{}`` when there is none) and why it could
    not be read (None when it could)."""
    if not path.exists():
        return {}, None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return {}, f"{path} cannot be read ({error})"
    if not isinstance(record, dict) or not isinstance(record.get("sessions", []), list):
        return {}, f"{path} is not a run record"
    return record, None


# ----------------------------------------------------------------------------- train.log

_sinks = {}
_sinks_lock = threading.Lock()
# Set while RunSession.say prints what it has already logged, so that no tee logs it again.
_said = threading.local()


class _Sink:
    """The lines bound for one train.log, held until a session claims the folder."""

    def __init__(self, path: Path):
        self.path = path
        self.users = 0
        self.claimed = False
        self.pending = []
        self.file = None
        self.lock = threading.Lock()

    def lines(self, lines):
        with self.lock:
            if not self.claimed:
                self.pending.extend(lines[: max(0, PENDING_LINES - len(self.pending))])
                return
            if self.file is None:
                self.file = self.path.open("a", encoding="utf-8")
            for line in lines:
                self.file.write(line + "\n")
            self.file.flush()

    def claim(self, header):
        with self.lock:
            self.claimed = True
            pending, self.pending = self.pending, []
        if self.path.exists() and self.path.stat().st_size:
            header = ["", *header]
        self.lines([*header, *pending])

    def close(self):
        with self.lock:
            if self.file is not None:
                self.file.close()
                self.file = None


def _acquire(path) -> _Sink:
    key = Path(path).resolve()
    with _sinks_lock:
        sink = _sinks.setdefault(key, _Sink(key))
        sink.users += 1
        return sink


def _release(sink: _Sink):
    with _sinks_lock:
        sink.users -= 1
        if sink.users == 0:
            sink.close()
            _sinks.pop(sink.path, None)


class _TeeStream:
    """A text stream that also sends its complete lines, bars left out, to a sink."""

    def __init__(self, stream, sink: _Sink):
        self._stream = stream
        self._sink = sink
        self._partial = ""

    def write(self, text):
        written = self._stream.write(text)
        if self._sink is not None and not getattr(_said, "active", False):
            *complete, partial = (self._partial + text).split("\n")
            # A bar that never ends its line keeps only its latest update.
            self._partial = partial[partial.rfind("\r") :] if "\r" in partial else partial
            kept = [line for line in complete if not _PROGRESS.search(line)]
            if kept:
                self._sink.lines(kept)
        return written

    def detach(self):
        """Logs the unfinished line (unless a bar's) and stops logging."""
        if self._sink is not None and self._partial and not _PROGRESS.search(self._partial):
            self._sink.lines([self._partial])
        self._partial, self._sink = "", None

    def tees_to(self, sink) -> bool:
        stream = self
        while isinstance(stream, _TeeStream):
            if stream._sink is sink:
                return True
            stream = stream._stream
        return False

    def __getattr__(self, name):  # isatty, fileno, encoding, flush, ...
        return getattr(self._stream, name)


@contextlib.contextmanager
def tee_to_log(path):
    """While active, what is written to ``sys.stdout`` and ``sys.stderr`` is also appended to
    the train.log at ``path``, line by line, progress bars left out.

    Nothing is written before a :class:`RunSession` of this process claims that run folder:
    the lines wait in memory (the first :data:`PENDING_LINES`), and are dropped if it never
    does. Tees of one file nest without logging a line twice.
    """
    sink = _acquire(path)
    saved = sys.stdout, sys.stderr
    installed = []
    try:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if not (isinstance(stream, _TeeStream) and stream.tees_to(sink)):
                tee = _TeeStream(stream, sink)
                setattr(sys, name, tee)
                installed.append((name, tee))
        yield
    finally:
        for name, tee in installed:
            tee.detach()
            if getattr(sys, name) is tee:
                setattr(sys, name, dict(stdout=saved[0], stderr=saved[1])[name])
        _release(sink)


# ------------------------------------------------------------------------------ sessions


class RunSession:
    """One process's session of the run in ``run``: its entry in ``run.json`` and its part
    of ``train.log``. Made by the process that has claimed the folder (it holds its lock)."""

    def __init__(self, run: RunLayout, *, stage: str, command, strategy):
        self.run = run
        record, problem = read_record(run.record)
        if problem is not None:
            run.record.replace(run.record.with_name(run.record.name + ".unreadable"))
        sessions = list(record.get("sessions", []))
        for earlier in sessions:
            if isinstance(earlier, dict) and earlier.get("status") == RUNNING:
                earlier["status"] = KILLED
        self.number = len(sessions) + 1
        self.entry = {
            "start": now(),
            "end": None,
            "status": RUNNING,
            "command": [str(argument) for argument in command],
            "cwd": os.getcwd(),
            "resumed_from": None,
            "initialised_from": None,
            "start_step": None,
            "end_step": None,
            "error": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "git": git_state(),
            "versions": versions(),
            **devices(strategy),
        }
        sessions.append(self.entry)
        first = sessions[0] if isinstance(sessions[0], dict) else {}
        self.record = {
            "stage": stage,
            "model_dir": str(run.root.absolute()),
            "start": first.get("start") or self.entry["start"],
            "end": None,
            "status": RUNNING,
            "sessions": sessions,
        }
        self._write()
        self.ended = False
        self._sink = _acquire(run.train_log)
        self._sink.claim(
            [
                f"=== session {self.number} started {self.entry['start']} on "
                f"{self.entry['host']} (pid {self.entry['pid']}) ===",
                f"command: {shlex.join(self.entry['command'])}",
            ]
        )
        if problem is not None:
            self.say(
                f"warning: {problem}; moved it to {run.record.name}.unreadable and began a "
                "new record",
                stderr=True,
            )

    def _write(self):
        atomic_write(self.run.record, json.dumps(self.record, indent=2) + "\n")

    def update(self, **fields):
        """Sets fields of this session's entry and rewrites run.json."""
        self.entry.update(fields)
        self._write()

    def say(self, message, *, stderr=False):
        """Prints ``message`` (to stderr with ``stderr``) and appends it to train.log."""
        if not self.ended:
            self._sink.lines(str(message).split("\n"))
        _said.active = True
        try:
            print(message, file=sys.stderr if stderr else sys.stdout, flush=True)
        finally:
            _said.active = False

    def tee(self):
        """:func:`tee_to_log` on this run's train.log."""
        return tee_to_log(self.run.train_log)

    def end(self, error: BaseException = None, *, status: str = None, step: int = None):
        """Ends the session: ``status`` (by default finished, or failed / interrupted by
        ``error``), the time, the step reached and the error, in run.json and train.log.
        Ending twice does nothing. A run.json that cannot be written is warned about, not
        raised: the session's own outcome (its error, its report) counts more."""
        if self.ended:
            return
        status = status or (FINISHED if error is None else status_of(error))
        self.entry.update(
            end=now(),
            status=status,
            end_step=step,
            error=None if error is None else describe_error(error),
        )
        self.record.update(end=self.entry["end"], status=status)
        try:
            self._write()
        except OSError as problem:
            print(f"warning: cannot write {self.run.record}: {problem}", file=sys.stderr)
        ending = f"=== session {self.number} {status} {self.entry['end']}"
        ending += f" at step {step}" if step is not None else ""
        ending += f": {self.entry['error']}" if error is not None else ""
        try:
            self._sink.lines([ending + " ==="])
        except OSError:
            pass
        finally:
            self.ended = True
            _release(self._sink)
