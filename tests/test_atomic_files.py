"""Atomic file writes (dynamonet_tf/atomic_files.py)."""

import csv
import os
from pathlib import Path

import pytest

from dynamonet_tf.atomic_files import (
    TEMPORARY_PATTERN,
    atomic_directory,
    atomic_write,
    atomic_write_csv,
    atomic_write_with,
    hidden_temporary_path,
    replace_directory,
    sibling_staging_dir,
    temporary_path,
)


def test_writes_bytes_and_text_and_replaces_what_was_there(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    atomic_write(path, "é\n")
    assert path.read_bytes() == "é\n".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_failed_write_leaves_the_old_file_and_a_temporary_that_the_pattern_finds(
    tmp_path, monkeypatch
):
    path = tmp_path / "manifest.json"
    atomic_write(path, "old")

    def fail(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, "new")
    assert path.read_text() == "old"
    assert list(tmp_path.glob(TEMPORARY_PATTERN)) == [temporary_path(path)]


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "clip.avi"
    path.write_bytes(b"old")

    def half_then_fail(target):
        target.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_with(path, half_then_fail)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.avi"] and path.read_bytes() == b"old"


def test_a_writer_gets_the_temporary_name_asked_for_and_the_result_is_renamed(tmp_path):
    path = tmp_path / "videos" / "clip.avi"
    path.parent.mkdir()
    seen = []

    def write(target):
        seen.append(target)
        target.write_bytes(b"video %d" % len(seen))
        # Until the rename, readers see the earlier file (none at first) and not this one.
        assert path.read_bytes() == b"video 1" if len(seen) == 2 else not path.exists()

    atomic_write_with(path, write)
    atomic_write_with(path, write, temporary=hidden_temporary_path(path))
    assert seen == [temporary_path(path), path.parent / ".clip.avi.partial"]
    assert seen[1].suffix not in (".avi", ".mp4")  # readers listing by extension skip it
    assert [p.name for p in path.parent.iterdir()] == ["clip.avi"]
    assert path.read_bytes() == b"video 2"


def test_csv_columns_are_every_rows_keys_and_missing_cells_are_blank(tmp_path):
    path = tmp_path / "log.csv"
    atomic_write_csv(path, [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "share": 0.1, "loss": 0.4}])
    assert path.read_bytes() == b"epoch,loss,share\r\n1,0.5,\r\n2,0.4,0.1\r\n"
    with path.open(newline="") as file:
        assert [row["share"] for row in csv.DictReader(file)] == ["", "0.1"]
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]


def test_a_directory_is_created_whole_beside_the_target(tmp_path):
    target = tmp_path / "export"
    with atomic_directory(target) as staging:
        assert os.path.dirname(staging) == str(tmp_path)
        assert os.path.basename(staging).startswith(".export.partial-") and not target.exists()
        (Path(staging) / "saved_model.pb").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    assert (target / "saved_model.pb").read_text() == "new"


def test_replacing_a_directory_swaps_it_and_removes_the_old_one(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staging = sibling_staging_dir(target, "partial")
    (Path(staging) / "new.txt").write_text("new")
    replace_directory(staging, target)
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_a_failed_block_or_rename_keeps_the_old_directory_and_no_staging(tmp_path, monkeypatch):
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_directory(target) as staging:
            (Path(staging) / "half.pb").write_text("half")
            raise OSError("disk full")
    assert [p.name for p in tmp_path.iterdir()] == ["export"]

    rename = os.rename

    def rename_failing_for_the_new_directory(source, destination):
        if ".partial-" in os.fspath(source):
            raise OSError("busy")
        rename(source, destination)

    monkeypatch.setattr(os, "rename", rename_failing_for_the_new_directory)
    with pytest.raises(OSError, match="busy"):
        with atomic_directory(target) as staging:
            (Path(staging) / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    assert [p.name for p in target.iterdir()] == ["old.txt"]


def test_staging_directories_are_hidden_new_and_honour_the_umask(tmp_path):
    first, second = (sibling_staging_dir(tmp_path / "export", "partial") for _ in range(2))
    assert first != second
    assert all(os.path.basename(d).startswith(".export.partial-") for d in (first, second))
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(first).st_mode & 0o777 == 0o777 & ~umask
