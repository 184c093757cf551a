"""Files written whole or not at all: under a temporary name beside the target, then renamed.

A rename within one folder is atomic, so a reader, or a run resumed after a crash, finds the
old file or the new one and never half of one. The temporary name carries the process id,
so two processes writing the same file never write into one temporary file.
"""

import os
from pathlib import Path

# What an interrupted write leaves behind (see temporary_path), for clearing it on a re-run.
TEMPORARY_PATTERN = "*.tmp-*"


def temporary_path(path):
    """The name ``path`` is written under until it is complete: ``<path>.tmp-<pid>``."""
    return Path(f"{path}.tmp-{os.getpid()}")


def atomic_write(path, content):
    """Writes ``content`` (bytes, or str as UTF-8) to ``path`` through :func:`temporary_path`."""
    if isinstance(content, str):
        content = content.encode()
    temporary = temporary_path(path)
    temporary.write_bytes(content)
    os.replace(temporary, path)
