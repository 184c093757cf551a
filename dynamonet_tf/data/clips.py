"""Evaluation clips and the evaluation preprocessing, each defined once (paper §4.3).

Every path that turns a video into model inputs without augmentation goes through this module:
the evaluation pipeline over prepared TFRecords
(:func:`~dynamonet_tf.data.pipelines.eval_dataset`: ``tf.data``, graph mode), the serving
signatures of an export (:mod:`dynamonet_tf.export`), whole-video inference
(:mod:`dynamonet_tf.inference`, ``predict.py``) and frame-prediction evaluation
(:mod:`dynamonet_tf.frame_prediction`). The functions are written with TensorFlow ops, so they
run in a ``tf.data`` or ``tf.function`` graph as well as eagerly, on tensors or NumPy arrays.

Clips:

- :func:`subsample_frames`: a video's frames 0, s, 2s, ... (``s = frame_stride``, the spacing of
  the training clips' frames); clips are cut from these kept frames.
- :func:`clip_starts`, :func:`clip_indices`, :func:`valid_frames`: which kept frames each clip
  holds. Clips of ``num_frames`` frames start every ``clip_stride`` kept frames (default
  ``num_frames``: non-overlapping). With ``pad_last`` (evaluation, serving, inference) they go on
  until one reaches the last kept frame; that clip is padded by repeating the last kept frame,
  and a video shorter than one clip gives one padded clip, so every kept frame is seen. Without
  it (frame-prediction scoring, where a repeated frame would be a stillness predicted for free)
  only whole clips are cut and the remainder is dropped.
- :func:`video_clips`: the clips of a video (frames, JPEG strings, ...), by those indices.
- :func:`split_clip`: a clip of ``T + 1`` frames into the model input (frames 1..T) and the
  frame-prediction targets (frames 2..T+1).

Preprocessing, with Model Garden's ``official.vision.ops.preprocess_ops_3d`` ops in this order:
``uint8`` to float32 in [0, 1] (before resizing, so that resizing does not round to ``uint8``
levels), bilinear resize so that the short side is ``short_side`` (the long side becomes
``(long * short_side) // short``; nothing is done when the short side already is
``short_side``), centre crop to ``crop_size`` (or 3 crops along the long side).

- :func:`resize_frames`: the first two steps, which the training clips share
  (:func:`~dynamonet_tf.data.pipelines.train_dataset` crops at random positions instead).
- :func:`eval_frames`: all three, for frames ``(time, height, width, channels)``.
- :func:`preprocess_video`: :func:`subsample_frames` and :func:`eval_frames` for a batch of
  videos ``(batch, time, height, width, channels)``.

Video files (inference, frame-prediction evaluation of a folder of videos) are decoded first:
:func:`decode_short_side` is the short side to decode them at so that their frames take the
steps a prepared video's frames take before evaluation and training see them.
"""

import numbers
from typing import Any, Optional

import numpy as np
import tensorflow as tf
from official.vision.ops import preprocess_ops_3d

from dynamonet_tf.config import DataConfig
from dynamonet_tf.data.prepare import read_manifest

# A NumPy array or a tensor (the functions here take either).
ArrayLike = Any

# ---------------------------------------------------------------------- clips


def split_clip(clip: ArrayLike) -> tuple:
    """Splits a ``(batch, time + 1, ...)`` clip into model input and prediction targets.

    Returns ``(frames[:, :-1], frames[:, 1:])``: the model sees frames 1..T and predicts
    frames 2..T+1 (T - 1 reconstructed and one new future frame).
    """
    return clip[:, :-1], clip[:, 1:]


def check_frame_stride(frame_stride: int) -> None:
    """Raises ``ValueError`` unless ``frame_stride`` is a positive integer."""
    if (
        isinstance(frame_stride, bool)
        or not isinstance(frame_stride, numbers.Integral)
        or frame_stride < 1
    ):
        raise ValueError(f"frame_stride must be a positive integer; got {frame_stride!r}.")


def subsample_frames(frames: ArrayLike, frame_stride: int, axis: int = 0) -> ArrayLike:
    """Frames ``0, s, 2s, ...`` of ``frames`` along its time ``axis`` (``s = frame_stride``).

    The evaluation protocol's temporal subsampling (the training clips' frames are
    ``frame_stride`` apart too): a video of ``n`` frames keeps ``ceil(n / s)``, starting with
    its first. One strided slice, so it takes a NumPy array or a ``tf.Tensor`` (JPEG strings
    ``(time,)``, decoded frames, batches of clips with ``axis=1``) and, for a tensor, gives the
    static length ``ceil(time / s)`` when the time length is static.

    Raises:
        ValueError: ``frame_stride`` is not a positive integer.
    """
    check_frame_stride(frame_stride)
    return frames[(slice(None),) * axis + (slice(None, None, int(frame_stride)),)]


def clip_starts(
    length: ArrayLike, num_frames: int, clip_stride: Optional[int] = None, *, pad_last: bool = True
) -> tf.Tensor:
    """The first kept frame of each clip of a video of ``length`` kept frames: int32 ``(clips,)``.

    Clips start every ``clip_stride`` frames (default ``num_frames``), from frame 0. With
    ``pad_last``, until a clip reaches the last frame (at least one clip): ``1 + ceil(max(length
    - num_frames, 0) / clip_stride)`` clips. Without it, only the clips that fit whole:
    ``max(0, (length - num_frames) // clip_stride + 1)``.

    Args:
        length: frames of the (subsampled) video: a Python or NumPy integer, or a scalar
            tensor (``tf.shape(frames)[0]`` in a graph).
        num_frames: frames per clip.
        clip_stride: frames between clip starts; None: ``num_frames``, non-overlapping clips.
        pad_last: cut a last, padded clip (see the module docstring).

    Raises:
        ValueError: ``num_frames`` or ``clip_stride`` is not a positive integer, or a
            non-tensor ``length`` is below 1 with ``pad_last``.
    """
    clip_stride = _check_clip_lengths(length, num_frames, clip_stride, pad_last)
    length = tf.cast(length, tf.int32)
    if pad_last:
        num_clips = 1 + (tf.maximum(length - num_frames, 0) + clip_stride - 1) // clip_stride
    else:
        num_clips = tf.maximum((length - num_frames) // clip_stride + 1, 0)
    return tf.range(num_clips) * clip_stride


def clip_indices(
    length: ArrayLike, num_frames: int, clip_stride: Optional[int] = None, *, pad_last: bool = True
) -> tf.Tensor:
    """The kept frames of each clip, int32 ``(clips, num_frames)``: clip ``k`` holds frames
    ``clip_starts[k] + 0, 1, ..., num_frames - 1``, those past the last frame replaced by the
    last frame (padding; only with ``pad_last``). Arguments as in :func:`clip_starts`."""
    starts = clip_starts(length, num_frames, clip_stride, pad_last=pad_last)
    indices = starts[:, None] + tf.range(num_frames)[None, :]
    return tf.minimum(indices, tf.cast(length, tf.int32) - 1)


def valid_frames(
    length: ArrayLike, num_frames: int, clip_stride: Optional[int] = None, *, pad_last: bool = True
) -> tf.Tensor:
    """How many of each clip's frames are real frames rather than padding, int32 ``(clips,)``
    (``num_frames`` for all but a padded last clip). Arguments as in :func:`clip_starts`."""
    starts = clip_starts(length, num_frames, clip_stride, pad_last=pad_last)
    return tf.minimum(num_frames, tf.cast(length, tf.int32) - starts)


def video_clips(
    frames: ArrayLike,
    num_frames: int,
    frame_stride: int = 1,
    clip_stride: Optional[int] = None,
    *,
    pad_last: bool = True,
) -> ArrayLike:
    """The evaluation clips of one video: its frames ``0, s, 2s, ...`` (:func:`subsample_frames`,
    ``s = frame_stride``) cut at :func:`clip_indices`.

    Args:
        frames: ``(time, ...)``: a NumPy array (decoded frames) or a tensor (decoded frames,
            JPEG strings in a ``tf.data`` graph).
        num_frames: frames per clip.
        frame_stride: keep every ``frame_stride``-th frame first; ``clip_stride`` counts kept
            frames.
        clip_stride, pad_last: as in :func:`clip_starts`.

    Returns:
        ``(clips, num_frames, ...)``, of the type of ``frames`` (a NumPy array for a NumPy
        array, eagerly). With the defaults, ``clips = ceil(ceil(time / frame_stride) /
        num_frames)``.
    """
    kept = subsample_frames(frames, frame_stride)
    if tf.is_tensor(kept):
        indices = clip_indices(tf.shape(kept)[0], num_frames, clip_stride, pad_last=pad_last)
        return tf.gather(kept, indices)
    kept = np.asarray(kept)
    return kept[clip_indices(len(kept), num_frames, clip_stride, pad_last=pad_last).numpy()]


def _check_clip_lengths(length, num_frames, clip_stride, pad_last):
    """``clip_stride`` (default ``num_frames``) after checking the arguments."""
    clip_stride = num_frames if clip_stride is None else clip_stride
    for name, value in (("num_frames", num_frames), ("clip_stride", clip_stride)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if pad_last and not tf.is_tensor(length) and length < 1:
        raise ValueError(f"a video needs at least one frame to cut clips from; got {length}.")
    return int(clip_stride)


# ---------------------------------------------------------------------- preprocessing


def resize_frames(frames: ArrayLike, short_side: int) -> tf.Tensor:
    """``uint8`` frames ``(time, height, width, channels)`` -> float32 in [0, 1] with the short
    side ``short_side`` (bilinear; unchanged when the short side already is ``short_side``).

    Raises:
        TypeError: frames that are not ``uint8`` (float frames would be divided by 255 again).
    """
    frames = tf.convert_to_tensor(frames)
    if frames.dtype != tf.uint8:
        raise TypeError(
            f"the evaluation preprocessing takes uint8 frames; got {frames.dtype.name}."
        )
    frames = preprocess_ops_3d.normalize_image(frames, zero_centering_image=False)
    return preprocess_ops_3d.resize_smallest(frames, short_side)


def eval_frames(
    frames: ArrayLike, *, short_side: int, crop_size: int, num_crops: int = 1
) -> tf.Tensor:
    """``uint8`` frames ``(time, height, width, channels)`` -> the float32 model input in
    [0, 1]: :func:`resize_frames`, then the centre crop, ``(time, crop_size, crop_size,
    channels)``.

    With ``num_crops=3``: ``(3, time, crop_size, crop_size, channels)``, crops at the start,
    centre and end of the longer side of the resized frame (left, centre, right for landscape
    and square frames; top, centre, bottom for portrait ones), the other side centred as in the
    single crop, so the middle crop equals the single crop (Feichtenhofer et al.'s 3-crop
    testing).
    """
    frames = resize_frames(frames, short_side)
    if num_crops == 1:
        # Model Garden's centre crop has the same offsets as the training "centre" position.
        return preprocess_ops_3d.crop_image(frames, crop_size, crop_size)
    if num_crops == 3:
        return _three_crops(frames, crop_size)
    raise ValueError(f"num_crops must be 1 (centre) or 3 (along the long side); got {num_crops!r}.")


def preprocess_video(
    video: ArrayLike, *, short_side: int, crop_size: int, frame_stride: int = 1
) -> tf.Tensor:
    """Raw videos -> model input: :func:`subsample_frames` and :func:`eval_frames` (centre crop).

    Args:
        video: ``uint8`` ``(batch, time, height, width, channels)``, any height and width (a
            tensor or an array).
        frame_stride: keep every ``frame_stride``-th frame; 1 keeps them all.

    Returns:
        float32 ``(batch, ceil(time / frame_stride), crop_size, crop_size, channels)`` in
        [0, 1], with the static batch, time and channel sizes of ``video``.
    """
    video = subsample_frames(tf.convert_to_tensor(video), frame_stride, axis=1)
    shape = tf.shape(video)
    # The frames of all clips are one sequence (time, height, width, channels) for the ops.
    frames = tf.reshape(video, tf.concat([[-1], shape[2:]], axis=0))
    frames = eval_frames(frames, short_side=short_side, crop_size=crop_size)
    frames = tf.reshape(frames, tf.concat([shape[:2], [crop_size, crop_size], shape[4:]], axis=0))
    # The model checks its input's static shape.
    frames.set_shape(video.shape[:2] + (crop_size, crop_size) + video.shape[4:])
    return frames


def decode_short_side(data: DataConfig) -> int:
    """The short side at which to decode a video file (FFmpeg's area resampling,
    :func:`~dynamonet_tf.data.video.decode_video`) before :func:`eval_frames`, for a run whose
    ``data`` config section is given.

    ``data/prepare.py`` stores frames area-resampled to its ``--short-side`` (128 by default),
    and training and evaluation resize those bilinearly to the run's ``data.short_side``. A
    video file decoded straight at ``data.short_side`` would skip that bilinear resize and be
    area-resampled instead, a different image (on the demo's 128 x 160 videos, a run at short
    side 72: 3.0 grey levels rms, up to 64, from the evaluation input of the same frames stored
    losslessly). Decoded at the prepared short side, it takes the same steps, and only the
    JPEG coding of the stored frames differs.

    Returns:
        The ``short_side`` of the preparation options in the manifest of ``data.train_files``
        (else of ``data.eval_files``); ``data.short_side`` when neither has one (data
        prepared on another machine, or not by ``data/prepare.py``).
    """
    for pattern in (data.train_files, data.eval_files):
        patterns = [pattern] if isinstance(pattern, (str, bytes)) else list(pattern or ())
        files = sorted({path for glob in patterns for path in tf.io.gfile.glob(glob)})
        manifest = read_manifest(files) if files else None
        prepared = ((manifest or {}).get("options") or {}).get("short_side")
        if prepared:
            return int(prepared)
    return data.short_side


def _three_crops(frames, crop_size):
    """``(time, height, width, channels)`` -> ``(3, time, crop_size, crop_size, channels)``.

    Start, centre and end of the longer side (width when square), the other side centred.
    Written here because Model Garden's 3-crop (``crop_image(num_crops=3)``) puts the short
    side at offset 0 instead of centring it (the same only when the short side equals the
    crop), and can round its centre offset one pixel away from its own single centre crop.
    """
    shape = tf.shape(frames)
    spare_rows, spare_cols = shape[1] - crop_size, shape[2] - crop_size
    portrait = shape[1] > shape[2]
    centred_rows, centred_cols = tf.fill([3], spare_rows // 2), tf.fill([3], spare_cols // 2)
    tops = tf.where(portrait, tf.stack([0, spare_rows // 2, spare_rows]), centred_rows)
    lefts = tf.where(portrait, centred_cols, tf.stack([0, spare_cols // 2, spare_cols]))
    return tf.stack(
        [
            tf.slice(frames, [0, tops[i], lefts[i], 0], [-1, crop_size, crop_size, -1])
            for i in range(3)
        ]
    )
