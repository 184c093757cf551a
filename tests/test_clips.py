"""Evaluation clips and preprocessing (dynamonet_tf/data/clips.py), the one definition that
evaluation, the export, inference and frame-prediction evaluation share."""

import json
import math
import types

import numpy as np
import pytest
import tensorflow as tf

from dynamonet_tf.data.clips import (
    clip_indices,
    decode_short_side,
    eval_frames,
    preprocess_video,
    resize_frames,
    subsample_frames,
    valid_frames,
    video_clips,
)
from dynamonet_tf.data.pipelines import eval_dataset
from dynamonet_tf.data.schema import encode_video_example

NUM_FRAMES = 8


def naive_clips(frames, num_frames):
    clips, start = [], 0
    while True:
        clip = [frames[min(start + t, len(frames) - 1)] for t in range(num_frames)]
        clips.append(np.stack(clip))
        if start + num_frames >= len(frames):
            return np.stack(clips)
        start += num_frames


def naive_indices(length, num_frames, stride, pad_last):
    """Clip starts 0, stride, ...: with ``pad_last``, until a clip reaches the last frame
    (frames past it replaced by it; with ``stride > num_frames`` that clip may start past the
    end and be all padding); without it, while a clip fits whole."""
    clips, start = [], 0
    while start + num_frames <= length if not pad_last else True:
        clips.append([min(start + t, length - 1) for t in range(num_frames)])
        if pad_last and start + num_frames >= length:
            return clips
        start += stride
    return clips


@pytest.mark.parametrize("length", [1, 5, 8, 9, 16, 21])
def test_video_clips_cut_every_non_overlapping_clip(length):
    frames = np.arange(length)[:, None, None, None] * np.ones((1, 2, 3, 1), np.int64)
    clips = video_clips(frames, NUM_FRAMES)
    np.testing.assert_array_equal(clips, naive_clips(frames, NUM_FRAMES))
    assert len(clips) == -(-length // NUM_FRAMES)


@pytest.mark.parametrize("length, stride", [(1, 2), (16, 2), (21, 2), (33, 3)])
def test_strided_video_clips_are_the_clips_of_every_stride_th_frame(length, stride):
    frames = np.arange(length)[:, None, None, None] * np.ones((1, 2, 3, 1), np.int64)
    clips = video_clips(frames, NUM_FRAMES, stride)
    np.testing.assert_array_equal(clips, naive_clips(frames[::stride], NUM_FRAMES))
    assert len(clips) == math.ceil(math.ceil(length / stride) / NUM_FRAMES)


def test_subsampling_is_one_slice_for_arrays_and_tensors():
    video = np.arange(2 * 7).reshape(2, 7)  # (batch, time)
    np.testing.assert_array_equal(subsample_frames(video[0], 3), [0, 3, 6])
    np.testing.assert_array_equal(subsample_frames(video, 3, axis=1), video[:, [0, 3, 6]])
    np.testing.assert_array_equal(
        subsample_frames(tf.constant(video), 3, axis=1).numpy(), video[:, [0, 3, 6]]
    )
    np.testing.assert_array_equal(subsample_frames(video[0], 1), video[0])
    for stride in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="frame_stride must be a positive integer"):
            subsample_frames(video, stride)


@pytest.mark.parametrize("pad_last", [True, False])
@pytest.mark.parametrize("num_frames, stride", [(3, 3), (3, 2), (4, 5), (1, 1)])
def test_clip_indices_are_the_same_eagerly_and_in_a_graph(num_frames, stride, pad_last):
    @tf.function(input_signature=[tf.TensorSpec((), tf.int32)])
    def in_graph(length):
        return clip_indices(length, num_frames, stride, pad_last=pad_last), valid_frames(
            length, num_frames, stride, pad_last=pad_last
        )

    for length in range(0 if not pad_last else 1, 14):
        expected = naive_indices(length, num_frames, stride, pad_last)
        eager = clip_indices(np.int64(length), num_frames, stride, pad_last=pad_last).numpy()
        graph, valid = (t.numpy() for t in in_graph(tf.constant(length)))
        assert eager.tolist() == graph.tolist() == expected, length
        assert eager.shape == (len(expected), num_frames)
        starts = [stride * k for k in range(len(expected))]
        assert valid.tolist() == [min(num_frames, length - start) for start in starts]


def test_whole_clips_only_drop_the_remainder_and_a_short_video_has_none():
    frames = np.arange(20)
    np.testing.assert_array_equal(video_clips(frames, 9, pad_last=False), frames[:18].reshape(2, 9))
    # Kept frames 0, 3, ..., 18: one whole clip; 12, 15, 18 are dropped, not padded.
    whole = video_clips(frames, 4, frame_stride=3, pad_last=False)
    np.testing.assert_array_equal(whole, [[0, 3, 6, 9]])
    assert video_clips(frames[:5], 9, pad_last=False).shape == (0, 9)
    with pytest.raises(ValueError, match="at least one frame"):
        video_clips(frames[:0], 9)
    with pytest.raises(ValueError, match="num_frames must be a positive integer"):
        video_clips(frames, 0)


def test_clips_of_jpeg_strings_are_cut_in_a_tf_data_graph():
    strings = tf.constant([f"frame {t}".encode() for t in range(5)])
    dataset = tf.data.Dataset.from_tensors(strings).map(lambda s: video_clips(s, 2, 2))
    [clips] = list(dataset.as_numpy_iterator())
    assert clips.tolist() == [[b"frame 0", b"frame 2"], [b"frame 4", b"frame 4"]]


def test_the_batched_preprocessing_is_the_per_clip_one_and_takes_uint8_only():
    video = np.random.default_rng(0).integers(0, 256, (2, 6, 30, 44, 3), dtype=np.uint8)
    batched = preprocess_video(video, short_side=20, crop_size=16, frame_stride=2)
    assert batched.shape == (2, 3, 16, 16, 3) and batched.dtype == tf.float32
    for clip, expected in zip(video, batched.numpy()):
        np.testing.assert_array_equal(
            eval_frames(clip[::2], short_side=20, crop_size=16).numpy(), expected
        )
    with pytest.raises(TypeError, match="uint8"):
        resize_frames(video[0] / 255, 20)


def test_frames_at_the_short_side_are_only_converted_and_centre_cropped():
    frames = np.random.default_rng(1).integers(0, 256, (2, 20, 31, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        eval_frames(frames, short_side=20, crop_size=16).numpy(),
        frames[:, 2:18, 7:23].astype(np.float32) / 255,
    )
    crops = eval_frames(frames, short_side=20, crop_size=16, num_crops=3).numpy()
    assert crops.shape == (3, 2, 16, 16, 3)
    np.testing.assert_array_equal(crops[1], eval_frames(frames, short_side=20, crop_size=16))


def test_the_eval_pipeline_element_is_the_preprocessing_of_the_decoded_clip(tmp_path):
    """What inference does to decoded frames (video_clips, then preprocess_video) gives the
    evaluation pipeline's elements exactly, given the frames the pipeline decodes."""
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (11, 36, 50, 3), dtype=np.uint8)
    jpegs = [tf.io.encode_jpeg(frame, quality=90).numpy() for frame in frames]
    path = str(tmp_path / "v.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(encode_video_example(jpegs, 0, "class0", "v"))
    geometry = {"short_side": 24, "crop_size": 20}
    dataset = eval_dataset(path, num_frames=4, frame_stride=2, batch_size=8, **geometry)
    [(elements, info)] = list(dataset.as_numpy_iterator())

    decoded = np.stack([tf.io.decode_jpeg(jpeg, channels=3).numpy() for jpeg in jpegs])
    clips = video_clips(decoded, 4, 2)  # kept frames 0, 2, ..., 10: 2 clips, the last padded
    assert clips.shape == (2, 4, 36, 50, 3) and list(info["valid_frames"]) == [4, 2]
    np.testing.assert_array_equal(preprocess_video(clips, **geometry).numpy(), elements)


def test_video_files_are_decoded_at_the_short_side_of_the_prepared_frames(tmp_path):
    """The manifest of the run's training data says (else that of its evaluation data); with
    neither, the run's own short side."""
    train, test = tmp_path / "train", tmp_path / "test"
    data = types.SimpleNamespace(
        train_files=str(train / "train-*.tfrecord"),
        eval_files=[str(test / "test-*.tfrecord")],
        short_side=32,
    )
    assert decode_short_side(data) == 32  # no files
    for folder, side in ((test, 64), (train, 48)):
        folder.mkdir()
        (folder / f"{folder.name}-00000-of-00001.tfrecord").write_bytes(b"")
        assert decode_short_side(data) == (32 if folder == test else 64)  # no manifest yet
        (folder / "manifest.json").write_text(json.dumps({"options": {"short_side": side}}))
        assert decode_short_side(data) == side
