"""A fixed half of each class's training videos, as TFRecord shards of their own (Table 2).

Each class keeps ``max(1, n // 2)`` of its ``n`` videos: half, rounded down, and never none.
Which ones is decided by a hash of the seed and the video's media id, so the subset depends
on neither the order of the shards nor the machine. The records are copied byte for byte.

The output folder is a prepared dataset like the ones ``data/prepare.py`` writes: shards
``train-<k>-of-<n>.tfrecord`` and a ``manifest.json`` (the source's classes and options,
this subset's counts, and what was kept and how). Every file is written under a temporary
name and renamed when complete, the manifest last: a folder with a manifest is complete, and
one for the same source and seed is reused, never rewritten.
"""

import hashlib
import json
import statistics
from pathlib import Path

import tensorflow as tf

from dynamonet_tf.atomic_files import atomic_write, atomic_write_with
from dynamonet_tf.data.pipelines import list_files
from dynamonet_tf.data.prepare import PrepareError, read_manifest
from dynamonet_tf.data.schema import IMAGE_KEY, LABEL_INDEX_KEY, LABEL_TEXT_KEY, MEDIA_ID_KEY
from dynamonet_tf.layout import MANIFEST, TRAIN, shard_name

RULE = "max(1, n // 2) of each class's n videos: half, rounded down, at least one"
VIDEOS_PER_SHARD = 64


def half_count(videos):
    """How many of a class's ``videos`` the half subset keeps."""
    return max(1, videos // 2)


def _video(serialized):
    """``(label, label name, media id, frames)`` of one serialised video."""
    example = tf.train.SequenceExample.FromString(serialized)
    context = example.context.feature
    return (
        context[LABEL_INDEX_KEY].int64_list.value[0],
        context[LABEL_TEXT_KEY].bytes_list.value[0].decode(),
        context[MEDIA_ID_KEY].bytes_list.value[0].decode(),
        len(example.feature_lists.feature_list[IMAGE_KEY].feature),
    )


def _order(seed, media_id):
    return hashlib.sha256(f"{seed}/{media_id}".encode()).hexdigest()


def _half_of_each_class(videos, seed):
    """``(kept, by_class)``: the ``(label, media id)`` pairs kept, and every class's media
    ids as ``{(label, name): [media id, ...]}``."""
    by_class = {}
    for label, name, media_id, _ in videos:
        if label < 0:
            raise PrepareError(f"{media_id} is unlabeled; a label subset needs labeled videos")
        by_class.setdefault((label, name), []).append(media_id)
    kept = set()
    for (label, _), media_ids in by_class.items():
        chosen = sorted(media_ids, key=lambda media_id: _order(seed, media_id))[
            : half_count(len(media_ids))
        ]
        kept.update((label, media_id) for media_id in chosen)
    return kept, by_class


def _write_shard(path, records):
    def write(temporary):
        with tf.io.TFRecordWriter(str(temporary)) as writer:
            for record in records:
                writer.write(record)

    atomic_write_with(path, write)


def write_half_subset(train_files, out_dir, *, seed=0):
    """Writes half of each class's videos of ``train_files`` (a glob) to ``out_dir``.

    Returns the manifest (a dict); its ``half_of`` entry names the source, the rule, the
    seed and the media ids kept. Raises PrepareError for unlabeled videos, or when
    ``out_dir`` holds another subset.
    """
    out_dir, train_files = Path(out_dir), str(train_files)
    files = list_files(train_files)
    source = {"files": train_files, "seed": seed, "rule": RULE}
    manifest_path = out_dir / MANIFEST
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if {key: manifest["half_of"][key] for key in source} == source:
            return manifest
        raise PrepareError(
            f"{out_dir} holds a subset of {manifest['half_of']['files']}; use another folder"
        )

    records = [bytes(r.numpy()) for r in tf.data.TFRecordDataset(files)]
    videos = [_video(record) for record in records]
    kept, by_class = _half_of_each_class(videos, seed)
    selected = [(r, video) for r, video in zip(records, videos) if (video[0], video[2]) in kept]

    out_dir.mkdir(parents=True, exist_ok=True)
    count = -(-len(selected) // VIDEOS_PER_SHARD)
    shards = [shard_name(TRAIN, k, count) for k in range(count)]
    for k, shard in enumerate(shards):
        chunk = selected[k * VIDEOS_PER_SHARD : (k + 1) * VIDEOS_PER_SHARD]
        _write_shard(out_dir / shard, [record for record, _ in chunk])

    frames = [video[3] for _, video in selected]
    original = read_manifest(files) or {}
    manifest = {
        "dataset": original.get("dataset"),
        # The source's dataset and split (config.prepared_identity): the subset is of them,
        # so a run on it is checked against the same test videos.
        "source": original.get("source"),
        "options": original.get("options"),
        "classes": original.get("classes") or [name for _, name in sorted(by_class)],
        "subsets": {
            "train": {
                "videos": len(selected),
                "frames": sum(frames),
                "failures": 0,
                "shards": shards,
                "per_class": {
                    name: half_count(len(ids)) for (_, name), ids in sorted(by_class.items())
                },
            }
        },
        "frames_per_video": {
            "min": min(frames),
            "median": statistics.median(frames),
            "max": max(frames),
        },
        "half_of": {
            **source,
            "per_class_source": {name: len(ids) for (_, name), ids in sorted(by_class.items())},
            "media_ids": sorted(media_id for _, media_id in kept),
        },
    }
    atomic_write(manifest_path, json.dumps(manifest, indent=2))
    return manifest
