"""Training and evaluation tf.data pipelines, over tiny TFRecords written per test.

Every generated frame tells where it came from, robustly to JPEG: red is ``8 * t`` for
source frame ``t``; green rises left to right over the full width, so the mean green of a
crop gives its left edge and its slope tells a flip; blue either rises top to bottom (the
crop's top edge) or is a solid level naming the video.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from dynamonet_tf.data.pipelines import eval_dataset, train_dataset
from dynamonet_tf.data.schema import encode_video_example
from dynamonet_tf.names import UNLABELED

HEIGHT, WIDTH = 128, 160
CROP = 112
# (top, left) of the paper's 5 crops of a 128 x 160 frame: 4 corners + centre.
FIVE_CROPS = {(0, 0), (0, 48), (16, 0), (16, 48), (8, 24)}
CENTRE = (8, 24)


def stamped_frames(length, video_id=None, scale=1):
    """``length`` JPEG frames of ``(HEIGHT * scale, WIDTH * scale)`` pixels (see module doc)."""
    height, width = HEIGHT * scale, WIDTH * scale
    frames = np.empty((length, height, width, 3), np.uint8)
    frames[..., 0] = 8 * np.arange(length)[:, None, None]
    frames[..., 1] = np.linspace(0, 255, width).round()[None, None, :]
    if video_id is None:
        frames[..., 2] = np.linspace(0, 255, height).round()[None, :, None]
    else:
        frames[..., 2] = 40 * video_id + 20
    return [tf.io.encode_jpeg(frame, quality=95).numpy() for frame in frames]


def write_records(path, videos):
    """``videos``: ``(jpeg_frames, label, media_id)`` tuples, one record each."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for frames, label, media_id in videos:
            writer.write(encode_video_example(frames, label, f"class{label}", media_id))
    return str(path)


def snap(value, candidates):
    nearest = min(candidates, key=lambda candidate: abs(candidate - value))
    assert abs(nearest - value) < 3, f"{value:.1f} is none of {candidates}"
    return nearest


def source_index(frame):
    """The source frame index of a cropped ``(CROP, CROP, 3)`` frame in [0, 1]."""
    return int(round(frame[..., 0].mean() * 255 / 8))


def crop_and_flip(frame):
    """``((top, left), flipped)`` of a cropped frame of a gradient-stamped video."""
    left = snap(frame[..., 1].mean() * (WIDTH - 1) - (CROP - 1) / 2, (0, 24, 48))
    top = snap(frame[..., 2].mean() * (HEIGHT - 1) - (CROP - 1) / 2, (0, 8, 16))
    flipped = frame[:, : CROP // 2, 1].mean() > frame[:, CROP // 2 :, 1].mean()
    return (top, left), bool(flipped)


def video_id(frame):
    return int(round((frame[..., 2].mean() * 255 - 20) / 40))


def whole_clips(frames, next_frames):
    """The T + 1 frames of each clip, ``(batch, T + 1, ...)``, from input and targets."""
    return np.concatenate([frames, next_frames[:, -1:]], axis=1)


def take(dataset, batches=None):
    return [tf.nest.map_structure(np.asarray, batch) for batch in dataset.take(batches or -1)]


@pytest.mark.parametrize(
    "length, stride",
    [(24, 2), (5, 2), (3, 1)],
    ids=["window-fits", "short-video-loops-with-stride", "shorter-than-clip"],
)
def test_training_clips_are_strided_windows_and_targets_are_one_frame_later(
    tmp_path, length, stride
):
    path = write_records(tmp_path / "v.tfrecord", [(stamped_frames(length), 0, "v")])
    num_frames = 4
    dataset = train_dataset(path, num_frames=num_frames, frame_stride=stride, batch_size=3, seed=1)
    starts = set()
    for frames, targets in take(dataset, 2):
        next_frames = targets["predicted_frames"]
        assert frames.shape == next_frames.shape == (3, num_frames, CROP, CROP, 3)
        assert frames.dtype == next_frames.dtype == np.float32
        assert 0 <= frames.min() and frames.max() <= 1 and frames.max() > 0.5
        np.testing.assert_array_equal(frames[:, 1:], next_frames[:, :-1])
        for clip, target in zip(frames, next_frames):
            start = source_index(clip[0])
            starts.add(start)
            expected = [(start + k * stride) % length for k in range(num_frames + 1)]
            assert [source_index(frame) for frame in clip] == expected[:-1]
            assert [source_index(frame) for frame in target] == expected[1:]
            if length > num_frames * stride:  # the whole window fits: no looping
                assert start + num_frames * stride < length
    assert len(starts) > 1, "the window start should be random"


def test_training_crops_are_the_five_positions_with_random_flips(tmp_path):
    path = write_records(tmp_path / "v.tfrecord", [(stamped_frames(6), 0, "v")])
    dataset = train_dataset(path, num_frames=2, batch_size=8, seed=3)
    seen = set()
    for frames, targets in take(dataset, 4):
        for clip in whole_clips(frames, targets["predicted_frames"]):
            per_frame = {crop_and_flip(frame) for frame in clip}
            assert len(per_frame) == 1, f"crop/flip changes within a clip: {per_frame}"
            seen |= per_frame
    crops = {crop for crop, _ in seen}
    assert crops <= FIVE_CROPS
    assert crops == FIVE_CROPS, "32 clips should show all 5 crop positions"
    assert {flipped for _, flipped in seen} == {False, True}


def test_labels_pass_through_and_unlabeled_mode_has_no_logits(tmp_path):
    path = write_records(
        tmp_path / "v.tfrecord",
        [(stamped_frames(5, video_id=v), 10 + v, f"v{v}") for v in range(4)],
    )
    frames, targets = take(train_dataset(path, num_frames=2, batch_size=8, seed=0), 1)[0]
    assert targets["logits"].dtype == np.int64 and targets["logits"].shape == (8,)
    assert list(targets["logits"]) == [10 + video_id(clip[0]) for clip in frames]

    _, targets = take(train_dataset(path, num_frames=2, batch_size=2, labeled=False), 1)[0]
    assert set(targets) == {"predicted_frames"}


def test_labeled_mode_rejects_unlabeled_videos(tmp_path):
    path = write_records(tmp_path / "v.tfrecord", [(stamped_frames(3), UNLABELED, "v")])
    with pytest.raises(tf.errors.InvalidArgumentError, match="no label"):
        take(train_dataset(path, num_frames=2, batch_size=1), 1)


def test_seeded_deterministic_runs_repeat_and_other_seeds_differ(tmp_path):
    paths = [
        write_records(
            tmp_path / f"shard{shard}.tfrecord",
            [(stamped_frames(6 + shard + v), shard, f"{shard}-{v}") for v in range(2)],
        )
        for shard in range(3)
    ]

    def run(seed):
        dataset = train_dataset(
            paths, num_frames=2, batch_size=2, shuffle_buffer=4, seed=seed, deterministic=True
        )
        return take(dataset, 4)

    def same(first, second):
        return all(
            np.array_equal(a, b)
            for a, b in zip(tf.nest.flatten(first), tf.nest.flatten(second), strict=True)
        )

    assert same(run(7), run(7))
    assert not same(run(7), run(8))


def pipeline_video_ids(path, pipeline_id, global_batch):
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
    )
    dataset = train_dataset(
        path, num_frames=2, batch_size=global_batch, input_context=context, repeat=False
    )
    ids = []
    for frames, _ in take(dataset):
        assert frames.shape[0] == global_batch // 2  # the per-replica batch
        ids += [video_id(clip[0]) for clip in frames]
    return sorted(ids)


def test_input_context_shards_files_between_pipelines(tmp_path):
    for shard in range(4):
        write_records(
            tmp_path / f"shard{shard}.tfrecord",
            [(stamped_frames(3, video_id=shard), 0, f"{shard}-{v}") for v in range(2)],
        )
    pattern = str(tmp_path / "shard*.tfrecord")
    assert pipeline_video_ids(pattern, 0, global_batch=4) == [0, 0, 2, 2]
    assert pipeline_video_ids(pattern, 1, global_batch=4) == [1, 1, 3, 3]


def test_input_context_shards_videos_when_files_are_fewer_than_pipelines(tmp_path):
    path = write_records(
        tmp_path / "v.tfrecord",
        [(stamped_frames(3, video_id=v), 0, str(v)) for v in range(4)],
    )
    first, second = (pipeline_video_ids(path, pipeline, global_batch=2) for pipeline in (0, 1))
    assert len(first) == len(second) == 2
    assert sorted(first + second) == [0, 1, 2, 3]


def test_eval_clips_cover_every_frame_once_with_centre_crop(tmp_path):
    num_frames = 4
    videos = {"a0": (8, 3), "a1": (6, 1), "b0": (3, 0)}  # media_id: (length, label)
    for name, media_ids in {"a": ["a0", "a1"], "b": ["b0"]}.items():
        write_records(
            tmp_path / f"{name}.tfrecord",
            # Twice the stored size, so that frames are resized to the 128 short side.
            [(stamped_frames(videos[m][0], scale=2), videos[m][1], m) for m in media_ids],
        )
    dataset = eval_dataset(str(tmp_path / "*.tfrecord"), num_frames=num_frames, batch_size=3)

    clips = []
    for frames, info in take(dataset):
        assert frames.shape[1:] == (num_frames, CROP, CROP, 3) and frames.dtype == np.float32
        assert info["label"].dtype == np.int64
        for n, clip in enumerate(frames):
            assert {crop_and_flip(frame) for frame in clip} == {(CENTRE, False)}
            media_id = info["media_id"][n].decode()
            clips.append((media_id, int(info["clip_index"][n]), int(info["valid_frames"][n])))
            assert info["label"][n] == videos[media_id][1]
            length = videos[media_id][0]
            start = clips[-1][1] * num_frames
            # The final clip repeats the video's last frame.
            expected = [min(start + k, length - 1) for k in range(num_frames)]
            assert [source_index(frame) for frame in clip] == expected

    assert clips == [("a0", 0, 4), ("a0", 1, 4), ("a1", 0, 4), ("a1", 1, 2), ("b0", 0, 3)]
    for media_id, (length, _) in videos.items():
        covered = [
            clip_index * num_frames + k
            for m, clip_index, valid in clips
            if m == media_id
            for k in range(valid)
        ]
        assert covered == list(range(length))


def test_eval_clip_stride_gives_overlapping_clips_reaching_the_end(tmp_path):
    path = write_records(tmp_path / "v.tfrecord", [(stamped_frames(9), 0, "v")])
    frames, info = take(eval_dataset(path, num_frames=4, clip_stride=2, batch_size=8), 1)[0]
    assert [source_index(clip[0]) for clip in frames] == [0, 2, 4, 6]
    assert list(info["clip_index"]) == [0, 1, 2, 3]
    assert list(info["valid_frames"]) == [4, 4, 4, 3]


@pytest.mark.parametrize(
    "length, frame_stride, clip_stride, expected, valid",
    [
        # Kept frames 0, 3, 6, 9 (frame 10 is skipped): the padding repeats frame 9, not 10.
        (11, 3, None, [[0, 3, 6], [9, 9, 9]], [3, 1]),
        (6, 2, None, [[0, 2, 4]], [3]),
        # clip_stride counts kept frames: clips start at kept frames 0, 2, 4 (frames 0, 4, 8).
        (13, 2, 2, [[0, 2, 4], [4, 6, 8], [8, 10, 12]], [3, 3, 3]),
        (2, 4, None, [[0, 0, 0]], [1]),  # one kept frame: one padded clip
    ],
    ids=["padded-with-last-kept-frame", "exact", "overlapping", "one-kept-frame"],
)
def test_eval_clips_hold_frames_frame_stride_apart(
    tmp_path, length, frame_stride, clip_stride, expected, valid
):
    """The video is subsampled to frames 0, s, 2s, ... before the clips are cut, so every kept
    frame is seen once (non-overlapping clips) and no clip spans consecutive frames."""
    path = write_records(tmp_path / "v.tfrecord", [(stamped_frames(length), 0, "v")])
    dataset = eval_dataset(
        path, num_frames=3, frame_stride=frame_stride, clip_stride=clip_stride, batch_size=8
    )
    frames, info = take(dataset)[0]
    assert [[source_index(frame) for frame in clip] for clip in frames] == expected
    assert list(info["valid_frames"]) == valid
    assert list(info["clip_index"]) == list(range(len(expected)))
    if clip_stride is None:
        assert len(expected) == math.ceil(math.ceil(length / frame_stride) / 3)


def test_an_invalid_frame_stride_is_refused_before_reading():
    # The subsampling itself: tests/test_clips.py.
    with pytest.raises(ValueError, match=r"data\.frame_stride must be >= 1; got 0"):
        eval_dataset("unused", frame_stride=0, batch_size=1)


def test_crop_larger_than_the_short_side_is_rejected(tmp_path):
    path = write_records(tmp_path / "v.tfrecord", [(stamped_frames(2), 0, "v")])
    with pytest.raises(ValueError, match="crop_size"):
        train_dataset(path, crop_size=160, short_side=128, batch_size=1)


# (top, left) of the 3 crops of 16 along the long side, the short side centred.
THREE_CROPS = {
    (24, 41): [(4, 0), (4, 12), (4, 25)],  # landscape: left, centre, right
    (41, 24): [(0, 4), (12, 4), (25, 4)],  # portrait: top, centre, bottom
    (24, 24): [(4, 0), (4, 4), (4, 8)],  # square: as landscape
}


@pytest.mark.parametrize(
    "height, width", list(THREE_CROPS), ids=["landscape", "portrait", "square"]
)
def test_eval_three_crops_are_numpy_slices_along_the_long_side(tmp_path, height, width):
    frames = np.random.default_rng(0).integers(0, 256, (5, height, width, 3), dtype=np.uint8)
    jpegs = [tf.io.encode_jpeg(frame, quality=95).numpy() for frame in frames]
    path = write_records(tmp_path / "v.tfrecord", [(jpegs, 3, "v")])
    # Stored at the short side, so nothing is resized: the crops are slices of the decoded frames.
    decoded = np.stack([tf.io.decode_jpeg(jpeg).numpy() for jpeg in jpegs]).astype(np.float32) / 255
    options = dict(num_frames=4, crop_size=16, short_side=24, batch_size=16)
    views, info = take(eval_dataset(path, num_crops=3, **options))[0]
    centre_only, _ = take(eval_dataset(path, **options))[0]

    expected = [
        decoded[[min(start + k, 4) for k in range(4)], top : top + 16, left : left + 16]
        for start in (0, 4)
        for top, left in THREE_CROPS[(height, width)]
    ]
    np.testing.assert_array_equal(views, np.stack(expected))
    np.testing.assert_array_equal(views[1::3], centre_only)  # the middle crop is the 1-crop
    assert list(info["clip_index"]) == [0, 0, 0, 1, 1, 1]
    assert list(info["valid_frames"]) == [4, 4, 4, 1, 1, 1]
    assert set(info["media_id"]) == {b"v"} and set(info["label"]) == {3}


def test_eval_middle_of_three_crops_equals_the_centre_crop_after_resizing(tmp_path):
    path = write_records(tmp_path / "v.tfrecord", [(stamped_frames(6, scale=2), 0, "v")])
    views, _ = take(eval_dataset(path, num_frames=4, num_crops=3, batch_size=8))[0]
    centre_only, _ = take(eval_dataset(path, num_frames=4, batch_size=8))[0]
    np.testing.assert_array_equal(views[1::3], centre_only)
    assert [crop_and_flip(clip[0])[0] for clip in views[:3]] == [(8, 0), CENTRE, (8, 48)]
    with pytest.raises(ValueError, match="num_crops must be 1"):
        eval_dataset(path, num_crops=5, batch_size=8)
