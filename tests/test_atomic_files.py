"""Atomic file writes (dynamonet_tf/atomic_files.py)."""

import os

import pytest

from dynamonet_tf.atomic_files import TEMPORARY_PATTERN, atomic_write, temporary_path


def test_writes_bytes_and_text_and_replaces_what_was_there(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    atomic_write(path, "é\n")
    assert path.read_bytes() == "é\n".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_failed_write_leaves_the_old_file_and_a_temporary_that_the_pattern_finds(tmp_path, monkeypatch):
    path = tmp_path / "manifest.json"
    atomic_write(path, "old")

    def fail(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, "new")
    assert path.read_text() == "old"
    assert list(tmp_path.glob(TEMPORARY_PATTERN)) == [temporary_path(path)]
