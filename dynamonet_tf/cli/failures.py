"""Failures of the machine rather than of the options — a full or read-only disk, a write
that is not permitted — ended as one line naming the path, for every command.

They can strike wherever a command writes: Python's own files (``OSError``) or TensorFlow's
checkpoints, SavedModels and summaries (an ``OpError`` whose message names the file).
"""

import errno
import functools
import re
import sys
from typing import Optional

# errno values that mean the disk, not the program, refused a write.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_NOT_PERMITTED = {errno.EACCES, errno.EPERM}
# How TensorFlow's file system layer says the same (the text after the path).
_TENSORFLOW_MARKERS = (
    "No space left on device",
    "Disk quota exceeded",
    "Read-only file system",
    "Permission denied",
)


def storage_failure(error: BaseException) -> Optional[str]:
    """The one-line message for ``error`` when the machine refused a read or write, else
    None (a program error, to be left as it is)."""
    if isinstance(error, OSError) and error.errno in _NO_ROOM | _NOT_PERMITTED:
        path = error.filename or "a file"
        if error.errno in _NO_ROOM:
            return f"cannot write {path}: {error.strerror}."
        return f"{path}: {error.strerror}; check the folder's permissions."
    # TensorFlow's errors only where TensorFlow is loaded: a command that does not import it
    # (prepare.py's parent process) should not pay its start-up for this check.
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, tf.errors.OpError):
        text = (error.message or "").strip().splitlines()
        if text and any(marker in text[0] for marker in _TENSORFLOW_MARKERS):
            return f"cannot write {_without_op_context(text[0])}."
    return None


def _without_op_context(text):
    """TensorFlow's message without the op's wrapping: ``{{function_node ...}}`` before the
    path, ``[Op:SaveV2]`` after, and the ``.tempstate<N>`` suffix of its temporary files."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text)
    return re.sub(r"\.tempstate\d+", "", text).rstrip(". ")


def storage_errors_in_one_line(main):
    """Decorates a command's ``main``: a :func:`storage_failure` exits with its one line
    (and the status 1) instead of a traceback."""

    @functools.wraps(main)
    def guarded(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Exception as error:
            message = storage_failure(error)
            if message is None:
                raise
            sys.exit(f"error: {message}")

    return guarded
