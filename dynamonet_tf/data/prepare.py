"""Video datasets to sharded TFRecords of JPEG frames (the Model Garden video schema).

Each subset (train, test, ...) of a :class:`DatasetIndex` becomes shards
``<subset>-<k>-of-<n>.tfrecord`` holding one ``SequenceExample`` per video (see
:mod:`dynamonet_tf.data.schema`). Videos are decoded and JPEG-encoded by worker processes;
the parent writes the shards in a fixed order, so the same command always produces the
same files.

Before the shards are planned, :func:`split_holdout` moves a fixed, seeded part of each
class's train videos (``PrepareOptions.holdout_fraction``, 10 % by default) into the subset
"holdout": the videos that training validates on (the LR plateau, the ``best/`` checkpoint),
so that the test split is left for evaluation alone. The manifest's ``"holdout"`` entry
names them.

Interruptions lose nothing: every shard is written under a temporary name and renamed
when complete, and its record (videos written, failures) is saved in ``.progress/`` after
that. A re-run of the same command skips the recorded shards. ``manifest.json`` (counts per
subset and class, frames, fps, source, options and the holdout) and ``failures.json`` (every
video that could not be read or was missing, with the reason) are written at the end;
:func:`read_manifest` reads the manifest back for evaluation and inference.
"""

import dataclasses
import datetime
import fnmatch
import hashlib
import io
import json
import math
import multiprocessing
import re
import statistics
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from dynamonet_tf.atomic_files import TEMPORARY_PATTERN, atomic_write, atomic_write_with
from dynamonet_tf.data.datasets import DatasetIndex
from dynamonet_tf.data.video import VideoDecodeError, decode_video
from dynamonet_tf.layout import FAILURES, HOLDOUT, MANIFEST, PROGRESS_DIR, demo_layout, shard_name
from dynamonet_tf.ownership import PLAN_MARKER, OwnershipError, check_replaceable, folder_kind

PLAN_FILE = Path(PLAN_MARKER).name  # in .progress/: what marks a folder as being prepared


class PrepareError(Exception):
    """A preparation that cannot start; the message names the path and the way out."""


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """How videos are stored.

    short_side: frames are resized so the shorter side has this many pixels (the paper
        resizes to about 128 before cropping 112).
    jpeg_quality: 1-100.
    videos_per_shard: videos per TFRecord file.
    max_frames: keep at most this many frames per video (``None``: all).
    holdout_fraction: the share of each class's train videos moved to the subset "holdout"
        for validation, in [0, 1); 0: no holdout (see :func:`split_holdout`).
    holdout_seed: which videos are held out (an integer >= 0).
    """

    short_side: int = 128
    jpeg_quality: int = 90
    videos_per_shard: int = 64
    max_frames: int = None
    holdout_fraction: float = 0.1
    holdout_seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "holdout_fraction", _check_holdout_fraction(self.holdout_fraction))
        for name, low, high in (
            ("short_side", 1, None),
            ("jpeg_quality", 1, 100),
            ("videos_per_shard", 1, None),
            ("max_frames", 1, None),
            ("holdout_seed", 0, None),
        ):
            value = getattr(self, name)
            if value is None and name == "max_frames":
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < low
                or (high is not None and value > high)
            ):
                valid = f"an integer from {low} to {high}" if high else f"an integer >= {low}"
                raise PrepareError(f"{name} must be {valid}; got {value!r}.")


def _check_holdout_fraction(fraction):
    """``fraction`` as a float after checking that it lies in [0, 1)."""
    number = isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
    if not number or not 0 <= fraction < 1:
        raise PrepareError(
            "holdout_fraction must be a number in [0, 1): the share of each class's train "
            f"videos held out for validation, 0 for none; got {fraction!r}."
        )
    return float(fraction)


def holdout_count(videos, fraction):
    """How many of a class's ``videos`` train videos :func:`split_holdout` holds out:
    ``fraction * videos`` rounded to the nearest whole number (halves up), at least 1 when
    ``fraction > 0`` and the class has 2 or more, and never all of them."""
    if fraction <= 0 or videos < 2:
        return 0
    return min(videos - 1, max(1, math.floor(fraction * videos + 0.5)))


def _holdout_order(seed, media_id):
    # "holdout/" keeps this order apart from other seeded choices over the same media ids.
    return hashlib.sha256(f"holdout/{seed}/{media_id}".encode()).hexdigest(), media_id


def split_holdout(index, fraction, seed):
    """``index`` with :func:`holdout_count` of each class's train videos moved to "holdout".

    Each class (all unlabeled videos together are one group) is split on its own: its train
    videos are ordered by ``sha256("holdout/<seed>/<media id>")`` and the first ones are held
    out, so the choice depends only on the seed and the media ids, not on the order of the
    index or on the other classes. Other subsets are untouched. Returns a new
    ``DatasetIndex`` (videos in the readers' order: subset, then media id).

    Raises:
        PrepareError: a bad ``fraction`` or ``seed``, or an index that already has holdout
            videos while ``fraction > 0``.
    """
    fraction = _check_holdout_fraction(fraction)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PrepareError(f"holdout_seed must be an integer >= 0; got {seed!r}.")
    if fraction > 0 and any(video.subset == HOLDOUT for video in index.videos):
        raise PrepareError(
            f"{index.name} already has {HOLDOUT} videos; prepare it with holdout_fraction 0."
        )
    by_class = {}  # label -> positions in index.videos of the class's train videos
    for position, video in enumerate(index.videos):
        if video.subset == "train":
            by_class.setdefault(video.label, []).append(position)
    held_out = set()
    for positions in by_class.values():
        ordered = sorted(positions, key=lambda p: _holdout_order(seed, index.videos[p].media_id))
        held_out.update(ordered[: holdout_count(len(positions), fraction)])
    videos = [
        dataclasses.replace(video, subset=HOLDOUT) if position in held_out else video
        for position, video in enumerate(index.videos)
    ]
    videos.sort(key=lambda video: (video.subset, video.media_id))
    return DatasetIndex(index.name, list(index.classes), videos, list(index.missing))


def read_manifest(files):
    """The ``manifest.json`` of the prepared folder holding ``files``, or None: there is none,
    or the files lie in several folders, which no one manifest describes.

    Raises:
        PrepareError: a manifest that cannot be read as JSON.
    """
    folders = {Path(path).parent for path in files}
    if len(folders) != 1:
        return None
    path = folders.pop() / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PrepareError(f"{path}: unreadable ({type(error).__name__}: {error}).") from None


def _encode_video(task):
    """Worker: one video to a list of JPEG bytes, or the reason it failed."""
    path, short_side, quality, max_frames = task
    try:
        frames, fps = decode_video(path, short_side=short_side, max_frames=max_frames)
        jpegs = []
        for frame in frames:
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
            jpegs.append(buffer.getvalue())
    except VideoDecodeError as error:
        return {"ok": False, "reason": str(error)}
    except Exception as error:  # noqa: BLE001 - one odd file must never abort the run
        return {"ok": False, "reason": f"{type(error).__name__}: {error}"}
    return {
        "ok": True,
        "jpegs": jpegs,
        "fps": fps,
        "frames": len(jpegs),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
    }


@dataclasses.dataclass
class _Shard:
    name: str
    subset: str
    videos: list


def _plan(index, options):
    shards = []
    for subset in sorted({video.subset for video in index.videos}):
        videos = index.subset(subset)
        count = math.ceil(len(videos) / options.videos_per_shard)
        for k in range(count):
            chunk = videos[k * options.videos_per_shard : (k + 1) * options.videos_per_shard]
            shards.append(_Shard(shard_name(subset, k, count), subset, chunk))
    return shards


def _plan_description(index, options, source):
    videos = hashlib.sha256(
        "\n".join(f"{v.subset}\t{v.media_id}\t{v.label}\t{v.path}" for v in index.videos).encode()
    ).hexdigest()
    return {
        "dataset": index.name,
        "source": source,
        "options": dataclasses.asdict(options),
        "videos_sha256": videos,
    }


# What a preparation writes in its folder besides .progress/, manifest.json and failures.json.
_SHARD_NAME = re.compile(r"[A-Za-z0-9_]+-\d{5}-of-\d{5}\.tfrecord")


def _written_by_prepare(name):
    return (
        name in (MANIFEST, FAILURES, PROGRESS_DIR)
        or _SHARD_NAME.fullmatch(name) is not None
        or fnmatch.fnmatch(name, TEMPORARY_PATTERN)
    )


# The fields of a plan (_plan_description), which a manifest repeats.
_PLAN_KEYS = ("dataset", "source", "options", "videos_sha256")


def _recorded_plan(out_dir):
    """The plan a prepared folder records: ``.progress/plan.json``, else the plan fields of
    its ``manifest.json`` (a copy without the hidden ``.progress/``); None when unreadable."""
    plan_path = out_dir / PROGRESS_DIR / PLAN_FILE
    try:
        if plan_path.exists():
            return json.loads(plan_path.read_text())
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return {key: manifest.get(key) for key in _PLAN_KEYS} if isinstance(manifest, dict) else None


def _killed_before_its_plan(out_dir):
    """Whether ``out_dir`` holds only what a preparation killed while saving its plan (the
    first thing it writes) leaves: ``.progress/`` holding nothing or temporary files only."""
    progress = out_dir / PROGRESS_DIR
    if [entry.name for entry in out_dir.iterdir()] != [PROGRESS_DIR] or progress.is_symlink():
        return False
    return progress.is_dir() and all(
        entry.is_file() and fnmatch.fnmatch(entry.name, TEMPORARY_PATTERN)
        for entry in progress.iterdir()
    )


def _claim_output(out_dir, plan, overwrite):
    """Makes ``out_dir`` this preparation's, deleting only what a preparation wrote.

    A missing or empty folder is started, as is one that a preparation killed before it saved
    its plan left (``.progress/`` and temporary files only); one of the same plan
    (``.progress/plan.json``, or the manifest of a finished copy) is resumed; prepared data of
    another plan is replaced only with ``overwrite``. Anything else is refused, deleting
    nothing: a run or an export, files without a ``manifest.json`` or ``.progress/plan.json``,
    and prepared data beside files a preparation does not write. Returns True when ``out_dir``
    is a finished preparation of ``plan`` whose shards are all there (nothing to do).
    """
    progress = out_dir / PROGRESS_DIR
    plan_path = progress / PLAN_FILE
    plan = json.loads(json.dumps(plan))  # as read back from JSON
    label = f"--out {out_dir}"
    if _killed_before_its_plan(out_dir):
        # Without a plan the folder would not count as prepared data and the same command
        # would refuse it for ever; nothing but this code's own temporaries is there.
        for leftover in progress.iterdir():
            leftover.unlink()
        progress.rmdir()
    try:
        if folder_kind(out_dir) != "prepared":
            check_replaceable(out_dir, "prepared", overwrite, name=label)
        else:
            foreign = sorted(e.name for e in out_dir.iterdir() if not _written_by_prepare(e.name))
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise OwnershipError(
                    f"{label} holds prepared data and {len(foreign)} other entries ({shown}); "
                    "nothing was deleted: move them out, or choose another --out."
                )
    except OwnershipError as error:
        raise PrepareError(str(error)) from error
    if folder_kind(out_dir) == "prepared":
        if _recorded_plan(out_dir) != plan:
            if not overwrite:
                where = plan_path if plan_path.exists() else out_dir / MANIFEST
                raise PrepareError(
                    f"{out_dir} holds a preparation with other options or videos "
                    f"({where}); use another --out, or --overwrite to replace it."
                )
            # Replaced: only what a preparation writes (nothing else is there, see above).
            for stale in [e for e in out_dir.iterdir() if e.is_file()] + list(progress.glob("*")):
                stale.unlink()
        elif not plan_path.exists():
            # A finished preparation of this plan without its .progress/ (a copy): reused
            # when every shard its manifest names is there, else written again over its own.
            subsets = json.loads((out_dir / MANIFEST).read_text()).get("subsets", {})
            named = [name for subset in subsets.values() for name in subset["shards"]]
            if all((out_dir / name).is_file() for name in named):
                return True
    progress.mkdir(parents=True, exist_ok=True)
    for leftover in list(out_dir.glob(TEMPORARY_PATTERN)) + list(progress.glob(TEMPORARY_PATTERN)):
        leftover.unlink()  # from an interrupted run
    atomic_write(plan_path, json.dumps(plan, indent=2))
    return False


def _write_shards(out_dir, pending, options, workers, progress_bar):
    """Encodes the videos of ``pending`` shards and writes each shard and its record."""
    import tensorflow as tf  # the workers need only PyAV and Pillow

    from dynamonet_tf.data.schema import encode_video_example

    tasks = [
        (video.path, options.short_side, options.jpeg_quality, options.max_frames)
        for shard in pending
        for video in shard.videos
    ]
    if workers > 0:
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap(_encode_video, tasks, chunksize=1)
    else:
        pool = None
        results = map(_encode_video, tasks)
    try:
        for shard in pending:
            final = out_dir / shard.name
            record = {"shard": shard.name, "subset": shard.subset, "videos": [], "failures": []}

            def write_shard(temporary, shard=shard, record=record):
                with tf.io.TFRecordWriter(str(temporary)) as writer:
                    for video in shard.videos:
                        result = next(results)
                        if result["ok"]:
                            example = encode_video_example(
                                result["jpegs"], video.label, video.label_name, video.media_id
                            )
                            writer.write(example)
                            record["videos"].append(
                                {
                                    "media_id": video.media_id,
                                    "label": video.label,
                                    "label_name": video.label_name,
                                    "frames": result["frames"],
                                    "fps": result["fps"],
                                    "height": result["height"],
                                    "width": result["width"],
                                }
                            )
                        else:
                            record["failures"].append(
                                {
                                    "path": video.path,
                                    "media_id": video.media_id,
                                    "subset": shard.subset,
                                    "reason": result["reason"],
                                }
                            )
                        progress_bar.update(1)

            atomic_write_with(final, write_shard)
            if not record["videos"]:
                # A shard whose every video failed is not written: readers would see no file.
                final.unlink()
            atomic_write(out_dir / PROGRESS_DIR / f"{shard.name}.json", json.dumps(record))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _summary(values):
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _manifest(out_dir, index, options, plan, shards):
    records = [
        json.loads((out_dir / PROGRESS_DIR / f"{shard.name}.json").read_text()) for shard in shards
    ]
    subsets = {}
    for record in records:
        subset = subsets.setdefault(
            record["subset"],
            {"videos": 0, "frames": 0, "failures": 0, "shards": [], "per_class": {}},
        )
        subset["videos"] += len(record["videos"])
        subset["frames"] += sum(v["frames"] for v in record["videos"])
        subset["failures"] += len(record["failures"])
        if record["videos"]:
            subset["shards"].append(record["shard"])
        for video in record["videos"]:
            name = video["label_name"] or "(unlabeled)"
            subset["per_class"][name] = subset["per_class"].get(name, 0) + 1
    videos = [v for record in records for v in record["videos"]]
    failures = [f for record in records for f in record["failures"]] + [
        {"path": path, "media_id": None, "subset": None, "reason": f"missing on disk ({named})"}
        for named, path in index.missing
    ]
    manifest = dict(
        plan,
        classes=list(index.classes),
        subsets=subsets,
        holdout={
            "fraction": options.holdout_fraction,
            "seed": options.holdout_seed,
            "from": "train",
            "media_ids": sorted(v.media_id for v in index.videos if v.subset == HOLDOUT),
        },
        frames_per_video=_summary([v["frames"] for v in videos]),
        fps=_summary([v["fps"] for v in videos]),
        failures=len(failures),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    return manifest, failures


def prepare(
    index,
    out_dir,
    options=PrepareOptions(),
    *,
    workers=2,
    source=None,
    overwrite=False,
    progress=True,
):
    """Writes ``index`` to ``out_dir`` as TFRecord shards; returns the manifest (a dict).

    ``workers`` decoding processes (0: decode in this process). ``source`` (a dict, e.g. the
    video root and split file) is recorded in the manifest.

    First :func:`split_holdout` moves ``options.holdout_fraction`` of each class's train
    videos (seeded by ``options.holdout_seed``) to the subset "holdout", written as
    ``holdout-<k>-of-<n>.tfrecord`` beside the other shards. The manifest's ``"holdout"`` entry
    is ``{"fraction", "seed", "from": "train", "media_ids": [sorted ids moved]}``; with
    fraction 0 (or no class of 2 or more train videos) ``media_ids`` is empty and there is no
    holdout subset and no holdout shard. ``subsets["holdout"]`` counts the videos written,
    like the other subsets.
    """
    out_dir = Path(out_dir)
    index = split_holdout(index, options.holdout_fraction, options.holdout_seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = _plan_description(index, options, source or {})
    if _claim_output(out_dir, plan, overwrite):
        return json.loads((out_dir / MANIFEST).read_text())
    shards = _plan(index, options)
    pending = [s for s in shards if not (out_dir / PROGRESS_DIR / f"{s.name}.json").exists()]
    total = sum(len(s.videos) for s in shards)
    remaining = sum(len(s.videos) for s in pending)
    with tqdm(
        total=total,
        initial=total - remaining,
        unit="video",
        desc=f"{index.name} -> {out_dir.name}",
        disable=not progress,
        dynamic_ncols=True,
    ) as progress_bar:
        _write_shards(out_dir, pending, options, min(workers, remaining), progress_bar)
    manifest, failures = _manifest(out_dir, index, options, plan, shards)
    atomic_write(out_dir / FAILURES, json.dumps(failures, indent=2))
    atomic_write(out_dir / MANIFEST, json.dumps(manifest, indent=2))
    return manifest


def prepare_demo(
    out_dir,
    *,
    video_root=None,
    split=1,
    seed=0,
    options=PrepareOptions(),
    workers=2,
    overwrite=False,
    progress=True,
    demo_options=None,
):
    """Generates the demo videos (if absent) and prepares both of their flavours.

    Videos go to ``video_root`` (default ``<out_dir>/videos``), made by
    :func:`dynamonet_tf.data.demo.generate_demo` with ``seed`` and ``demo_options``; the
    unlabeled clips are prepared into ``<out_dir>/unlabeled`` and the labeled set, read
    through the HMDB51 reader, into ``<out_dir>/labeled_split<split>``, each with the holdout
    of ``options`` (10 % of each class's train videos by default). Returns both manifests.
    """
    from dynamonet_tf.data.datasets import read_folder, read_hmdb51
    from dynamonet_tf.data.demo import demo_paths, generate_demo

    demo = demo_layout(out_dir)
    video_root = Path(video_root) if video_root else demo.videos
    try:
        generate_demo(video_root, seed=seed, **(demo_options or {}))
    except (ValueError, FileExistsError) as error:
        raise PrepareError(f"cannot generate the demo videos: {error}") from error
    paths = demo_paths(video_root)
    unlabeled = prepare(
        read_folder(paths.unlabeled),
        demo.unlabeled,
        options,
        workers=workers,
        source={"demo": str(video_root), "seed": seed},
        overwrite=overwrite,
        progress=progress,
    )
    labeled = prepare(
        read_hmdb51(paths.videos, paths.splits, split),
        demo.labeled(split),
        options,
        workers=workers,
        source={"demo": str(video_root), "seed": seed, "split": split},
        overwrite=overwrite,
        progress=progress,
    )
    return {"unlabeled": unlabeled, "labeled": labeled}
