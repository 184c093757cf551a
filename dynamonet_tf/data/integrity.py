"""Damaged TFRecord shards named by path and record: a one-line :class:`ShardError` instead of
a ``DataLossError`` traceback that names no file.

``tf.data`` reports a damaged shard as ``DataLossError: truncated record at 71549`` (or
``corrupted record at 0 (Is this even a TFRecord file?)``), and a record that is not a video
``SequenceExample`` as an ``InvalidArgumentError`` from the parse op, neither with the file's
name. Reading is not slowed down to find out: only when such an error comes out of a pipeline
are the shards read again, one by one, to name the first damaged one.

Use it around the iteration of any ``tf.data`` pipeline over prepared shards (``model.fit``,
a ``for`` loop over :func:`~dynamonet_tf.data.pipelines.eval_dataset`, ...)::

    from dynamonet_tf.data.integrity import ShardError, reading_shards

    with reading_shards(config.data.train_files):  # a glob, a path, or a list of them
        model.fit(train_dataset(config.data.train_files, config.data, batch_size=8), ...)

    # -> ShardError: data/x/train-00003-of-00008.tfrecord: unreadable at record 12 (byte
    #    offset 431024) — the file ends inside this record (truncated); re-run
    #    data/prepare.py for this dataset or remove the shard

Catch :class:`ShardError` where the command's other one-line errors are caught. An error that
the shards do not explain (every shard reads whole) is re-raised unchanged.

- :func:`reading_shards`: the context manager above.
- :func:`find_damaged_shard`: the first damaged shard of a list or pattern, as a
  :class:`ShardDamage` (path, whole records before the damage, byte offset, reason), or None.
- :func:`scan_shard`: one file read record by record (:class:`ShardScan`).
- :func:`check_shards`: raises :class:`ShardError` for the first damaged shard (reads every
  shard whole: a check before a run, where the data is small enough to read twice).

The byte offset is computed from the TFRecord framing: each record is an 8-byte length, a
4-byte CRC of the length, the data and a 4-byte CRC of the data, so record ``N`` starts at the
sum of ``16 + len(data)`` over records ``0 .. N-1``. A file that ends inside a record's 12-byte
header is read by ``tf.data`` as if it ended cleanly (its last records silently lost); the
scan compares the bytes read with the file's size and names that too.
"""

import contextlib
import dataclasses
import re

import tensorflow as tf

from dynamonet_tf.data.pipelines import list_files
from dynamonet_tf.data.schema import parse_video_example

# The framing of one TFRecord record around its data: length (8), CRC of length (4), CRC of
# data (4).
RECORD_FRAMING_BYTES = 16
RECORD_HEADER_BYTES = 12

ADVICE = "re-run data/prepare.py for this dataset or remove the shard"

# Only parse errors of the video schema send an InvalidArgumentError to the shards: the same
# class is raised by unrelated ops (check_numerics, shapes), which a rescan of every shard
# would not explain.
_PARSE_ERROR = re.compile(r"ParseSequenceExample|ParseSingleSequenceExample|protocol message")


class ShardError(Exception):
    """A TFRecord shard that cannot be read; the one-line message names the file, the record
    and byte offset where reading stopped, the reason and what to do."""


@dataclasses.dataclass(frozen=True)
class ShardDamage:
    """Where reading ``path`` stopped: after ``records`` whole records, at byte ``offset``
    (the start of the record that could not be read), and why."""

    path: str
    records: int
    offset: int
    reason: str

    def message(self):
        """The one-line :class:`ShardError` message."""
        return (
            f"{self.path}: unreadable at record {self.records} (byte offset {self.offset}) — "
            f"{self.reason}; {ADVICE}"
        )


@dataclasses.dataclass(frozen=True)
class ShardScan:
    """One file read whole: ``records`` whole records in its first ``bytes_read`` bytes of
    ``size``; ``damage`` None when every byte belongs to a whole video record."""

    path: str
    records: int
    bytes_read: int
    size: int
    damage: ShardDamage = None


def _tf_reason(error):
    """The first line of a ``tf.errors.OpError`` without its op and function decorations."""
    text = getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text).strip().splitlines()[0]
    text = re.sub(r"^Error in user-defined function .*?Iterator::\S+: ", "", text)
    text = re.sub(r"\s*\[Op:\w+\].*$", "", text)
    # The parse op's filler: no example names are given, and its advice is about its options.
    text = re.sub(r"^Name: <unknown>, |, example id: <unknown>|\s+Did you mean .*$", "", text)
    return text.strip().rstrip(".")


def _damage_reason(error):
    text = _tf_reason(error)
    if isinstance(error, tf.errors.DataLossError):
        if "truncated record" in text:
            return "the file ends inside this record (truncated)"
        if "corrupted record" in text:
            return "its length or checksum does not match (not a TFRecord file, or damaged)"
    if isinstance(error, tf.errors.InvalidArgumentError):
        return f"not a video SequenceExample ({text})"
    return text


def scan_shard(path):
    """Reads the TFRecord file ``path`` record by record and parses each record as a video
    ``SequenceExample`` (:func:`~dynamonet_tf.data.schema.parse_video_example`); a
    :class:`ShardScan`. Reads the whole file: for locating damage, not for every run."""
    path = str(path)
    try:
        size = tf.io.gfile.stat(path).length
    except tf.errors.OpError as error:  # gone, unreadable
        return ShardScan(path, 0, 0, 0, ShardDamage(path, 0, 0, _tf_reason(error)))
    # Sequential map (no parallel calls): the n-th element, or the n-th error, is record n.
    records = tf.data.TFRecordDataset(path).map(
        lambda record: (tf.strings.length(record), parse_video_example(record)["label"])
    )
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_optimization.map_parallelization = False
    records = records.with_options(options)
    count = offset = 0
    try:
        for length, _ in records:
            count += 1
            offset += RECORD_FRAMING_BYTES + int(length)
    except tf.errors.OpError as error:
        return ShardScan(
            path, count, offset, size, ShardDamage(path, count, offset, _damage_reason(error))
        )
    if offset != size:
        # tf.data ends a file silently inside a record's 12-byte header.
        reason = (
            f"the file ends {size - offset} bytes into this record's "
            f"{RECORD_HEADER_BYTES}-byte header (truncated)"
        )
        return ShardScan(path, count, offset, size, ShardDamage(path, count, offset, reason))
    return ShardScan(path, count, offset, size)


def find_damaged_shard(file_pattern):
    """The first damaged shard of ``file_pattern`` (a glob or path, or a list of them; the
    files in :func:`~dynamonet_tf.data.pipelines.list_files` order) as a :class:`ShardDamage`,
    or None when every shard reads whole (or nothing matches)."""
    try:
        files = list_files(file_pattern)
    except FileNotFoundError:
        return None
    for path in files:
        damage = scan_shard(path).damage
        if damage is not None:
            return damage
    return None


def check_shards(file_pattern):
    """Raises :class:`ShardError` for the first damaged shard of ``file_pattern``; reads every
    shard whole."""
    damage = find_damaged_shard(file_pattern)
    if damage is not None:
        raise ShardError(damage.message())


def _explained_by_shards(error):
    if isinstance(error, tf.errors.DataLossError):
        return True
    return isinstance(error, tf.errors.InvalidArgumentError) and bool(
        _PARSE_ERROR.search(str(error))
    )


@contextlib.contextmanager
def reading_shards(file_pattern):
    """Turns a read error of a pipeline over ``file_pattern``'s shards into a one-line
    :class:`ShardError` naming the damaged shard (see the module's docstring).

    On a ``DataLossError``, or an ``InvalidArgumentError`` of the video schema's parse, inside
    the block, the shards are scanned (:func:`find_damaged_shard`); when one is damaged,
    :class:`ShardError` is raised from None, else the original error propagates.
    """
    try:
        yield
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
        if not _explained_by_shards(error):
            raise
        damage = find_damaged_shard(file_pattern)
        if damage is None:
            raise
        raise ShardError(damage.message()) from None


__all__ = [
    "ShardDamage",
    "ShardError",
    "ShardScan",
    "check_shards",
    "find_damaged_shard",
    "reading_shards",
    "scan_shard",
]
