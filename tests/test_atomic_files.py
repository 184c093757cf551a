"""Atomic file writes (dynamonet_tf/atomic_files.py)."""

import csv
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dynamonet_tf.atomic_files import (
    TEMPORARY_PATTERN,
    atomic_directory,
    atomic_write,
    atomic_write_csv,
    atomic_write_with,
    hidden_temporary_path,
    remove_abandoned_staging,
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


# Runs atomic_directory(<target>) in a child process that SIGKILLs itself at a chosen moment:
# "block" inside the block, after half of the new folder is written; "renamed_aside" when the
# existing target has been renamed aside and the new folder is not yet in place;
# "deleting_old" when the new folder is in place and the old one is being deleted; "wait"
# after printing the staging folder, until its stdin closes (then it finishes).
KILLED_WRITER = textwrap.dedent(
    """
    import os, shutil, signal, sys
    from pathlib import Path
    from dynamonet_tf.atomic_files import atomic_directory

    target, moment = sys.argv[1], sys.argv[2]
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    rename, rmtree = os.rename, shutil.rmtree

    def rename_then_die(source, destination):
        rename(source, destination)
        if moment == "renamed_aside" and ".old-" in os.fspath(destination):
            die()

    def rmtree_dying(path, *args, **kwargs):
        if moment == "deleting_old" and ".old-" in os.fspath(path):
            (Path(path) / os.path.basename(target) / "old.txt").unlink()
            die()  # part of the old folder deleted
        rmtree(path, *args, **kwargs)

    os.rename, shutil.rmtree = rename_then_die, rmtree_dying
    with atomic_directory(target) as staging:
        (Path(staging) / "new.txt").write_text("new")
        if moment == "block":
            (Path(staging) / "half.pb").write_text("half")
            die()
        if moment == "wait":
            print(staging, flush=True)
            sys.stdin.read()
    """
)


def killed_writer(target, moment):
    """Runs KILLED_WRITER; returns its return code (-9: killed)."""
    return subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(target), moment], timeout=60
    ).returncode


def staging_names(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def old_directory(target):
    target.mkdir()
    (target / "old.txt").write_text("old")
    return target


def test_a_killed_writer_leaves_a_named_staging_folder_that_the_next_write_removes(tmp_path):
    target = tmp_path / "export"
    assert killed_writer(target, "block") == -signal.SIGKILL
    (leftover,) = staging_names(tmp_path)  # and no target, half-written or not
    assert re.fullmatch(r"\.export\.partial-[0-9a-f]{8}", leftover)
    assert sorted(p.name for p in (tmp_path / leftover).iterdir()) == ["half.pb", "new.txt"]
    with atomic_directory(target) as staging:
        (Path(staging) / "saved_model.pb").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    assert [p.name for p in target.iterdir()] == ["saved_model.pb"]


def test_a_kill_between_the_two_renames_keeps_the_old_folder_and_the_next_write_restores_it(
    tmp_path,
):
    target = old_directory(tmp_path / "export")
    assert killed_writer(target, "renamed_aside") == -signal.SIGKILL
    # The one moment without a target: the old folder is whole, moved aside.
    assert not target.exists()
    old, new = staging_names(tmp_path)
    assert old.startswith(".export.old-") and new.startswith(".export.partial-")
    assert (tmp_path / old / "export" / "old.txt").read_text() == "old"
    assert sorted(remove_abandoned_staging(target)) == [str(tmp_path / old), str(tmp_path / new)]
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    assert [p.name for p in target.iterdir()] == ["old.txt"]


def test_a_kill_while_deleting_the_old_folder_keeps_the_new_one_and_the_rest_is_removed(tmp_path):
    target = old_directory(tmp_path / "export")
    assert killed_writer(target, "deleting_old") == -signal.SIGKILL
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    (old,) = staging_names(tmp_path)
    assert old.startswith(".export.old-")
    # The target is there: the old folder is not put back over it, only deleted.
    assert remove_abandoned_staging(target) == [str(tmp_path / old)]
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_a_staging_folder_of_a_live_process_is_never_removed(tmp_path):
    target = old_directory(tmp_path / "export")
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target), "wait"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        staging = Path(writer.stdout.readline().strip())
        assert staging.parent == tmp_path and staging.is_dir()
        assert remove_abandoned_staging(target) == []
        # Another writer of the same target goes ahead beside it and leaves it alone.
        with atomic_directory(target) as other:
            (Path(other) / "other.txt").write_text("other")
        assert (staging / "new.txt").read_text() == "new"
    finally:
        writer.stdin.close()
        assert writer.wait(timeout=60) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_only_unlocked_folders_named_as_this_module_names_them_are_removed(tmp_path):
    target = tmp_path / "export"
    kept = [
        ".export.partial-0123abcz",  # not hex
        ".export.partial-0123abcd.bak",
        ".export.backup-0123abcd",  # a tag this module does not use
        ".exports.partial-0123abcd",  # another target's
        "export.partial-0123abcd",  # not hidden
    ]
    for name in kept:
        (tmp_path / name).mkdir()
    (tmp_path / ".export.old-00000000").write_text("a file, not a folder")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (tmp_path / ".export.partial-11111111").symlink_to(elsewhere)
    leftover = sibling_staging_dir(target, "partial")  # unlocked: as a killed process leaves it
    assert remove_abandoned_staging(target) == [leftover]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*kept, ".export.old-00000000", ".export.partial-11111111", "elsewhere"]
    )
    assert (elsewhere / "keep.txt").exists()
    assert remove_abandoned_staging(tmp_path / "missing" / "export") == []
