"""``tf.data`` pipelines over prepared TFRecords (paper §4.3; docs/DESIGN.md §4.3).

Both pipelines read the TFRecord schema of :mod:`dynamonet_tf.data.schema` (one
``SequenceExample`` of JPEG frames per video) and yield RAW frames in [0, 1]: the models
normalise frames themselves, and the frame-prediction targets are raw frames.

- :func:`train_dataset`: one random clip of ``num_frames + 1`` frames per video visit, one of
  the paper's 5 crop positions (4 corners + centre) chosen at random per clip, a random
  horizontal flip, the same crop and flip for every frame of the clip. Yields
  ``(frames, {"predicted_frames": next_frames, "logits": label})``: the model input
  (frames 1..T) and its targets (frames 2..T+1, and the label when ``labeled``).
- :func:`eval_dataset`: every non-overlapping ``num_frames`` clip of each video's frames
  ``0, s, 2s, ...`` (``s = frame_stride``, the training clips' spacing), centre crop (or 3
  crops along the long side), in file order, with the video id so that scores can be
  averaged per video.

The evaluation clips (which frames each holds) and the evaluation preprocessing (resize, centre
or 3 crops) are defined in :mod:`dynamonet_tf.data.clips`, shared with the export's serving
signatures, whole-video inference and frame-prediction evaluation; the training clips share
its resize.

Model Garden's framework-neutral video ops (``official.vision.ops.preprocess_ops_3d``) decode,
resize and centre-crop. Random choices are made here instead, with stateless random ops
keyed on the seed and the element's position in the stream, because Model Garden's draw from
stateful ops, whose values depend on the order in which parallel map calls run and so are not
reproducible.

Distribution: pass the ``tf.distribute.InputContext`` that
``strategy.distribute_datasets_from_function`` gives, and the GLOBAL batch size::

    dataset = strategy.distribute_datasets_from_function(
        lambda context: train_dataset(pattern, batch_size=64, input_context=context))

Each input pipeline then reads its own files (or every n-th video when there are fewer files
than pipelines) and batches ``input_context.get_per_replica_batch_size(64)`` clips.
"""

import secrets
from collections.abc import Sequence
from typing import Optional, Union

import tensorflow as tf
from official.vision.ops import preprocess_ops_3d

from dynamonet_tf.config import DataConfig, with_options
from dynamonet_tf.data.clips import (
    clip_indices,
    eval_frames,
    resize_frames,
    split_clip,
    subsample_frames,
    valid_frames,
)
from dynamonet_tf.data.schema import parse_video_example
from dynamonet_tf.names import LOGITS, PREDICTED_FRAMES

# A TFRecord path or glob, or a list of them.
FilePattern = Union[str, Sequence[str]]

AUTOTUNE = tf.data.AUTOTUNE

# Files read at once by the training interleave. Fixed rather than AUTOTUNE (which follows
# the core count) so that a seeded deterministic run gives the same batches on any machine.
MAX_INTERLEAVED_FILES = 16


# What the training pipeline's check says when a labeled stage meets an unlabeled video.
UNLABELED_MESSAGE = "labeled=True but a video has no label (index -1)"


def list_files(file_pattern: FilePattern) -> list:
    """The sorted TFRecord paths matching ``file_pattern``: a glob or path, or a list of them.

    Resolved in Python (not ``tf.data.Dataset.list_files``) because choosing between file
    and element sharding needs the number of files.
    """
    patterns = [file_pattern] if isinstance(file_pattern, (str, bytes)) else list(file_pattern)
    files = sorted({path for pattern in patterns for path in tf.io.gfile.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"No TFRecord files match {file_pattern!r}.")
    return files


def first_video(file_pattern: FilePattern):
    """The first video of the first file of ``file_pattern`` (:func:`parse_video_example`'s
    dict, eager), or None when that file holds none: a cheap look at what the files hold
    before a run commits to them."""
    first = list_files(file_pattern)[0]
    for serialized in tf.data.TFRecordDataset(first).take(1):
        return parse_video_example(serialized)
    return None


def train_dataset(
    file_pattern: FilePattern,
    config: Optional[DataConfig] = None,
    *,
    batch_size: int,
    labeled: bool = True,
    seed: Optional[int] = None,
    deterministic: bool = False,
    input_context: Optional[tf.distribute.InputContext] = None,
    repeat: bool = True,
    **options,
) -> tf.data.Dataset:
    """Random training clips, batched, as ``(frames, targets)`` for ``keras.Model.fit``.

    Each clip is a random window of ``num_frames + 1`` frames, ``frame_stride`` apart, of one
    video (a video too short for the window is looped: frame indices are taken modulo its
    length). Only the sampled JPEGs are decoded. Frames are resized so that their short side
    is ``short_side`` (nothing is done if it already is), cropped to ``crop_size`` at one of 5
    positions (4 corners + centre), and flipped left-right with probability 1/2: the same
    crop and flip for the whole clip.

    Args:
        file_pattern: TFRecord path or glob, or a list of them.
        config: the clip geometry, a :class:`~dynamonet_tf.config.DataConfig` (None: the
            defaults): ``num_frames`` (T, the frames the model sees), ``frame_stride``
            (distance between sampled frames of the source video), ``crop_size`` (side of
            the square crop), ``short_side`` (frames are resized to this short side before
            cropping) and ``shuffle_buffer`` (videos in the shuffle buffer; each holds a
            whole encoded video in memory). Its file patterns are not read.
        options: ``DataConfig`` fields replacing those of ``config`` (``num_frames=8``).
        batch_size: the GLOBAL batch size; with ``input_context`` each pipeline batches
            ``input_context.get_per_replica_batch_size(batch_size)`` clips.
        labeled: add the label as the ``"logits"`` target. Records must then be labeled
            (label index >= 0); iterating fails on an unlabeled one.
        seed: fixes file order, shuffling, windows, crops and flips. None draws a fresh seed.
        deterministic: keep the element order of parallel reads and maps. With a seed, two
            runs then give identical batches (given the same TF global seed, if one is set,
            since ``Dataset.shuffle`` combines it with ``seed``).
        input_context: a ``tf.distribute.InputContext``: shard by file when there are at
            least as many files as input pipelines, else by video.
        repeat: cycle through the files forever (reshuffled each epoch). Without it the
            dataset ends after one pass, dropping the last partial batch.

    Returns:
        A ``tf.data.Dataset`` of ``(frames, targets)``: ``frames`` float32 in [0, 1],
        ``(batch, num_frames, crop_size, crop_size, 3)``; ``targets`` a dict with
        ``"predicted_frames"``, the same clip one frame later (same shape: input frame
        ``t + 1`` is target ``t``), and with ``labeled``, ``"logits"``: int64 ``(batch,)``.
    """
    config = with_options(config or DataConfig(), **options)
    num_frames, frame_stride = config.num_frames, config.frame_stride
    crop_size, short_side = config.crop_size, config.short_side
    if seed is None:
        seed = secrets.randbits(31)
    files = list_files(file_pattern)
    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    per_replica_batch = (
        input_context.get_per_replica_batch_size(batch_size) if input_context else batch_size
    )

    records = _training_records(files, num_pipelines, pipeline_id, seed, repeat)
    records = records.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    # Pipelines sharing a seed must still crop and flip their videos independently.
    base_key = tf.constant([seed, pipeline_id], tf.int64)

    def make_clip(index, serialized):
        key = tf.random.experimental.stateless_fold_in(base_key, index)
        return _training_clip(
            serialized, key, num_frames, frame_stride, crop_size, short_side, labeled
        )

    def make_inputs_and_targets(clips, labels):
        frames, next_frames = split_clip(clips)
        targets = {PREDICTED_FRAMES: next_frames}
        if labeled:
            targets[LOGITS] = labels
        return frames, targets

    # Enumerating before the parallel map ties each video's random key to its position in
    # the (seeded) stream, not to which map call happens to run first.
    dataset = records.enumerate().map(make_clip, num_parallel_calls=AUTOTUNE)
    dataset = dataset.batch(per_replica_batch, drop_remainder=True)
    dataset = dataset.map(make_inputs_and_targets, num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    return dataset.prefetch(AUTOTUNE).with_options(options)


def eval_dataset(
    file_pattern: FilePattern,
    config: Optional[DataConfig] = None,
    *,
    batch_size: int,
    clip_stride: Optional[int] = None,
    num_crops: int = 1,
    **options,
) -> tf.data.Dataset:
    """All clips of every video, centre crop (or 3), no flip, in file order: ``(frames, info)``.

    Each video is first subsampled to its frames ``0, s, 2s, ...`` (``s = frame_stride``,
    :func:`~dynamonet_tf.data.clips.subsample_frames`), the spacing of :func:`train_dataset`'s
    clips; clips are then cut from those kept frames, so a clip holds ``num_frames`` frames
    ``frame_stride`` apart in the source video. Clips start every ``clip_stride`` kept frames
    (default ``num_frames``: non-overlapping) until one reaches the last kept frame, so they
    cover every kept frame; the final clip is padded by repeating the last kept frame, and a
    video of fewer than ``num_frames`` kept frames gives one clip
    (:func:`~dynamonet_tf.data.clips.clip_indices`). A video of ``n`` frames thus gives
    ``ceil(ceil(n / frame_stride) / num_frames)`` non-overlapping clips. Only the kept JPEGs
    are decoded. Frames are resized to ``short_side`` and centre-cropped to ``crop_size``
    (:func:`~dynamonet_tf.data.clips.eval_frames`). No shuffling, no repetition; the last
    batch may be smaller.

    The geometry (``num_frames``, ``frame_stride``, ``short_side``, ``crop_size``) is that of
    ``config``, a :class:`~dynamonet_tf.config.DataConfig` (None: the defaults), with the
    fields in ``options`` replaced (``num_frames=17`` for clips of T + 1 frames).

    With ``num_crops=3`` every clip is cut at 3 positions along the longer side of the
    resized frame: left, centre, right for landscape and square frames; top, centre, bottom
    for portrait ones (Feichtenhofer et al.'s 3-crop testing). The other side is centred as
    in the single crop, so the middle crop equals the ``num_crops=1`` crop. The 3 crops of a
    clip are consecutive elements, in that order, and share the clip's ``info``.

    Returns:
        A ``tf.data.Dataset`` of ``(frames, info)``: ``frames`` float32 in [0, 1],
        ``(batch, num_frames, crop_size, crop_size, 3)``; ``info`` a dict of ``(batch,)``
        tensors: ``media_id`` (string), ``label`` (int64, -1 when unlabeled),
        ``clip_index`` (int32, 0-based within the video) and ``valid_frames`` (int32, how
        many of the clip's frames are real kept frames rather than padding).
    """
    config = with_options(config or DataConfig(), **options)
    num_frames, frame_stride = config.num_frames, config.frame_stride
    crop_size, short_side = config.crop_size, config.short_side
    clip_stride = num_frames if clip_stride is None else clip_stride
    if clip_stride < 1:
        raise ValueError(f"clip_stride must be >= 1; got {clip_stride}.")
    if num_crops not in (1, 3):
        raise ValueError(
            f"num_crops must be 1 (centre) or 3 (along the long side); got {num_crops!r}."
        )
    # Read in file order; parallelism goes to decoding, which is the cost.
    videos = tf.data.TFRecordDataset(list_files(file_pattern)).map(
        parse_video_example, num_parallel_calls=AUTOTUNE
    )

    def clips_of(video):
        # Subsampled before cutting; the JPEGs of skipped frames are never decoded.
        video = {**video, "frames": subsample_frames(video["frames"], frame_stride)}
        return _video_clips(video, num_frames, clip_stride)

    clips = videos.flat_map(clips_of)

    def decode_clip(clip):
        frames = eval_frames(
            _decode(clip.pop("jpegs")),
            short_side=short_side,
            crop_size=crop_size,
            num_crops=num_crops,
        )
        if num_crops == 3:
            # Decoded once, cut three times; unbatched below into 3 elements.
            frames.set_shape((3, num_frames, crop_size, crop_size, 3))
            return frames, {name: tf.fill([3], value) for name, value in clip.items()}
        frames.set_shape((num_frames, crop_size, crop_size, 3))
        return frames, clip

    dataset = clips.map(decode_clip, num_parallel_calls=AUTOTUNE)
    if num_crops == 3:
        dataset = dataset.unbatch()
    dataset = dataset.batch(batch_size)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.prefetch(AUTOTUNE).with_options(options)


def _training_records(files, num_pipelines, pipeline_id, seed, repeat):
    """Serialised videos of this input pipeline's share of ``files``, in a seeded order."""
    dataset = tf.data.Dataset.from_tensor_slices(files)
    shard_by_file = len(files) >= num_pipelines
    if shard_by_file:
        dataset = dataset.shard(num_pipelines, pipeline_id)
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    records = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), MAX_INTERLEAVED_FILES),
        num_parallel_calls=AUTOTUNE,
        # Sharding by element is a partition only if every pipeline sees the same order.
        deterministic=None if shard_by_file else True,
    )
    if not shard_by_file:
        records = records.shard(num_pipelines, pipeline_id)
    return records


def _training_clip(serialized, key, num_frames, frame_stride, crop_size, short_side, labeled):
    """One augmented clip ``(num_frames + 1, crop_size, crop_size, 3)`` and its label."""
    video = parse_video_example(serialized)
    window_key, crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(key, num=3))
    indices = _random_window(tf.shape(video["frames"])[0], num_frames + 1, frame_stride, window_key)
    frames = resize_frames(_decode(tf.gather(video["frames"], indices)), short_side)
    position = tf.random.stateless_uniform((), crop_key, minval=0, maxval=5, dtype=tf.int32)
    frames = _five_crop(frames, crop_size, position)
    flip = tf.random.stateless_uniform((), flip_key) < 0.5
    frames = tf.cond(flip, lambda: tf.image.flip_left_right(frames), lambda: frames)
    frames.set_shape((num_frames + 1, crop_size, crop_size, 3))
    label = video["label"]
    if labeled:
        check = tf.debugging.assert_non_negative(label, message=UNLABELED_MESSAGE)
        with tf.control_dependencies([check]):
            label = tf.identity(label)
    return frames, label


def _random_window(length, num_steps, stride, key):
    """Frame indices ``(num_steps,)`` of a random window; a short video is looped.

    The start follows Model Garden's ``sample_sequence``: uniform over the starts whose
    window fits in the video, or over all frames when none fits. That function is not used
    because it draws the start from a stateful op (see the module docstring).
    """
    span = (num_steps - 1) * stride
    num_starts = tf.where(length > span, length - span, length)
    start = tf.random.stateless_uniform((), key, minval=0, maxval=num_starts, dtype=tf.int32)
    return tf.math.floormod(start + tf.range(num_steps) * stride, length)


def _decode(jpegs):
    """JPEGs ``(time,)`` -> uint8 RGB frames ``(time, height, width, 3)``."""
    return preprocess_ops_3d.decode_jpeg(jpegs, channels=3)


def _five_crop(frames, crop_size, position):
    """Crops ``(time, height, width, channels)`` frames at one of the paper's 5 positions.

    ``position``: 0 centre, 1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right. Written
    here because Model Garden's ``crop_image`` offers random, centre and 3-crop (along the
    long side) positions, not the 4 corners. The centre offsets equal ``crop_image``'s.
    """
    shape = tf.shape(frames)
    bottom, right = shape[1] - crop_size, shape[2] - crop_size
    top = tf.gather(tf.stack([bottom // 2, 0, 0, bottom, bottom]), position)
    left = tf.gather(tf.stack([right // 2, 0, right, 0, right]), position)
    return tf.slice(frames, [0, top, left, 0], [-1, crop_size, crop_size, -1])


def _video_clips(video, num_frames, clip_stride):
    """A dataset of the evaluation clips of one parsed video (JPEGs, not yet decoded)."""
    length = tf.shape(video["frames"])[0]
    indices = clip_indices(length, num_frames, clip_stride)
    num_clips = tf.shape(indices)[0]
    return tf.data.Dataset.from_tensor_slices(
        {
            "jpegs": tf.gather(video["frames"], indices),
            "media_id": tf.fill([num_clips], video["media_id"]),
            "label": tf.fill([num_clips], video["label"]),
            "clip_index": tf.range(num_clips),
            "valid_frames": valid_frames(length, num_frames, clip_stride),
        }
    )
