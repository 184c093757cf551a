"""The offline demo dataset: real video files whose decoded motion matches their labels."""

import functools
import hashlib
import json
import re
import types
import warnings

import av
import numpy as np
import pytest
from skimage.registration import phase_cross_correlation
from skimage.transform import SimilarityTransform, warp

from dynamonet_tf.atomic_files import hidden_temporary_path
from dynamonet_tf.data import demo

SMALL = {"unlabeled_videos": 3, "videos_per_class": 6, "num_frames": 10, "size": (64, 80)}
TINY = {"unlabeled_videos": 2, "videos_per_class": 2, "num_frames": 4, "size": (32, 48)}
VIDEO_SUFFIXES = (".avi", ".mp4")

# On-screen velocity direction (dx, dy) of the scene or the sprite; y points down.
PANS = {"pan_left": (1, 0), "pan_right": (-1, 0), "pan_up": (0, 1), "pan_down": (0, -1)}
SPRITES = {
    "sprite_left": (-1, 0),
    "sprite_right": (1, 0),
    "sprite_up": (0, -1),
    "sprite_down": (0, 1),
}
# Class -> (model parameter, sign): clockwise on screen and growth are positive.
CENTRED = {
    "rotate_clockwise": ("degrees", 1),
    "rotate_counterclockwise": ("degrees", -1),
    "zoom_in": ("log_scale", 1),
    "zoom_out": ("log_scale", -1),
}
GRIDS = {"degrees": np.arange(-4, 4.01, 0.25), "log_scale": np.arange(-0.04, 0.0401, 0.0025)}


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    return demo.generate_demo(tmp_path_factory.mktemp("demo"), seed=0, **SMALL)


def decode(path):
    """All frames of a video file, ``(time, height, width, 3)`` uint8."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def gray(frames):
    """``(time, height, width)`` float in [0, 1]."""
    return frames.astype(np.float64).mean(axis=-1) / 255


def class_videos(summary, label):
    return sorted((summary["videos_dir"] / label).glob("*.avi"))


def all_videos(summary):
    unlabeled = sorted(summary["unlabeled_dir"].glob("*.mp4"))
    return unlabeled + sorted(summary["videos_dir"].glob("*/*.avi"))


def velocity(previous, following):
    """On-screen shift ``(dy, dx)`` that carries ``previous`` onto ``following``."""
    with warnings.catch_warnings():
        # Difference images of a still background are all zero; the shift is then 0.
        warnings.simplefilter("ignore", UserWarning)
        return phase_cross_correlation(following, previous, upsample_factor=10)[0]


def moved(frame, degrees=0.0, log_scale=0.0, shift=(0.0, 0.0)):
    """``frame`` ``(height, width)`` turned clockwise on screen by ``degrees`` and grown by
    ``exp(log_scale)`` about its centre, then shifted by ``(dy, dx)``."""
    height, width = frame.shape
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    motion = (
        SimilarityTransform(translation=-centre)
        + SimilarityTransform(scale=np.exp(log_scale), rotation=np.deg2rad(degrees))
        + SimilarityTransform(translation=centre + np.asarray(shift)[::-1])
    )
    return warp(frame, motion.inverse, order=1, mode="edge")


def residual(a, b):
    """Mean squared difference away from the borders, where new content enters the frame."""
    my, mx = a.shape[0] // 6, a.shape[1] // 6
    return np.mean((a[my:-my, mx:-mx] - b[my:-my, mx:-mx]) ** 2)


def fit_motion(frames):
    """Fits three motion models to each pair of consecutive frames ``(time, height, width)``.

    Returns medians over the pairs: the best rotation (degrees), the best log-zoom, and the
    residual of each model (translation, rotation, zoom).
    """
    rows = []
    for previous, following in zip(frames[:-1], frames[1:]):
        fits = {}
        for key, grid in GRIDS.items():
            errors = [residual(moved(previous, **{key: value}), following) for value in grid]
            fits[key] = grid[int(np.argmin(errors))], min(errors)
        shifted = moved(previous, shift=velocity(previous, following))
        errors = (residual(shifted, following), fits["degrees"][1], fits["log_scale"][1])
        rows.append((fits["degrees"][0], fits["log_scale"][0], *errors))
    degrees, log_scale, *errors = np.median(rows, axis=0)
    errors = dict(zip(("shift", "degrees", "log_scale"), errors))
    return {"degrees": degrees, "log_scale": log_scale, "errors": errors}


@functools.lru_cache(maxsize=None)
def fitted(path):
    """:func:`fit_motion` of a video file, computed once: two tests use each."""
    return fit_motion(gray(decode(path)))


# ----------------------------------------------------------------------------- layout, files


@pytest.mark.parametrize("name", sorted(demo.PHOTOS))
def test_every_photo_loads_offline_as_opaque_rgb(name):
    photo = demo.load_photo(name, 48)
    assert photo.dtype == np.float32 and photo.ndim == 3 and photo.shape[2] == 4
    assert min(photo.shape[:2]) == 48
    assert 0 <= photo.min() and photo[..., :3].max() <= 1 and np.all(photo[..., 3] == 1)
    assert photo[..., :3].std() > 0.02  # a picture, not a blank


def test_layout_matches_demo_paths_and_counts(small_demo):
    paths = demo.demo_paths(small_demo["root"])
    folders = (small_demo["unlabeled_dir"], small_demo["videos_dir"], small_demo["splits_dir"])
    assert folders == tuple(paths)
    assert small_demo["classes"] == sorted(demo.DEMO_CLASSES) and len(demo.DEMO_CLASSES) == 13
    unlabeled = sorted(p.name for p in paths.unlabeled.iterdir())
    assert unlabeled == [f"clip_{i:05d}.mp4" for i in range(3)]
    assert sorted(p.name for p in paths.videos.iterdir()) == small_demo["classes"]
    for label in small_demo["classes"]:
        # Nothing but the finished videos: no temporary files left behind.
        assert all(p.suffix == ".avi" for p in (paths.videos / label).iterdir())
        assert len(class_videos(small_demo, label)) == 6
    assert small_demo["labeled_videos"] == 6 * 13 and small_demo["generated"]
    assert (small_demo["root"] / demo.MARKER).exists()
    assert not (small_demo["root"] / demo.IN_PROGRESS).exists()


def test_videos_are_real_files_of_the_requested_shape(small_demo):
    videos = all_videos(small_demo)
    assert len(videos) == 3 + 6 * 13
    for path in videos:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == {".mp4": "h264", ".avi": "mpeg4"}[path.suffix]
            assert stream.format.name == "yuv420p"
            assert stream.average_rate == 25
        assert decode(path).shape == (10, 64, 80, 3)


def test_only_still_videos_stand_still(small_demo):
    # Compression noise changes a still frame by up to ~10 grey levels; the motion in these
    # clips changes some pixel by 60 or more.
    def largest_change(path):
        frames = decode(path).astype(np.int16)
        return np.abs(frames - frames[0]).mean(axis=-1).max()

    for label in small_demo["classes"]:
        for path in class_videos(small_demo, label):
            assert (largest_change(path) < 30) == (label == "still"), path.name
    for path in small_demo["unlabeled_dir"].glob("*.mp4"):
        assert largest_change(path) > 30


# ----------------------------------------------------------------------------- motion


@pytest.mark.parametrize("label", sorted(PANS))
def test_pans_slide_the_scene_the_named_way(small_demo, label):
    direction = np.array(PANS[label][::-1])  # (dy, dx)
    along, across = [], []
    for path in class_videos(small_demo, label):
        frames = gray(decode(path))
        shift = np.median([velocity(a, b) for a, b in zip(frames[:-1], frames[1:])], axis=0)
        along.append(shift @ direction)
        across.append(abs(shift @ direction[::-1]))
    # Medians over videos: a featureless crop may defeat the estimate in one video.
    assert demo.PAN_SPEED[0] - 0.3 <= np.median(along) <= demo.PAN_SPEED[1] + 0.3
    assert np.median(across) < 0.3


@pytest.mark.parametrize("label", sorted(SPRITES))
def test_sprites_move_the_named_way(small_demo, label):
    direction = np.array(SPRITES[label][::-1])
    along, across = [], []
    for path in class_videos(small_demo, label):
        # The background is still, so consecutive differences show only the sprite.
        changes = np.diff(gray(decode(path)), axis=0)
        shift = np.median([velocity(a, b) for a, b in zip(changes[:-1], changes[1:])], axis=0)
        along.append(shift @ direction)
        across.append(abs(shift @ direction[::-1]))
    assert demo.SPRITE_SPEED[0] - 0.3 <= np.median(along) <= demo.SPRITE_SPEED[1] + 0.3
    assert np.median(across) < 0.3


@pytest.mark.parametrize("label", sorted(CENTRED))
def test_rotations_and_zooms_turn_or_scale_about_the_centre(small_demo, label):
    key, sign = CENTRED[label]
    low, high = {"degrees": demo.SPIN_DEGREES, "log_scale": demo.ZOOM_RATE}[key]
    step = GRIDS[key][1] - GRIDS[key][0]
    values = [sign * fitted(path)[key] for path in class_videos(small_demo, label)]
    assert all(low - step <= value <= high + step for value in values), values


@pytest.mark.parametrize("label", sorted(CENTRED) + sorted(PANS))
def test_the_named_motion_model_explains_the_frames_best(small_demo, label):
    # Tells rotations and zooms apart from pans (and from each other): the model the label
    # names leaves the smallest residual between consecutive frames.
    model = CENTRED[label][0] if label in CENTRED else "shift"
    errors = [fitted(path)["errors"] for path in class_videos(small_demo, label)]
    wins = [min(error, key=error.get) == model for error in errors]
    assert np.mean(wins) >= 5 / 6


# ----------------------------------------------------------------------------- splits


def read_split(path):
    """``{video name: tag}`` from an HMDB51 split file, checking each line's exact format."""
    tags = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"(\S+\.avi) ([012]) ", line)
        assert match, f"bad line {line!r} in {path.name}"
        tags[match[1]] = int(match[2])
    return tags


def test_split_files_follow_the_hmdb51_format(small_demo):
    splits = small_demo["splits_dir"]
    expected = {f"{label}_test_split{n}.txt" for label in small_demo["classes"] for n in (1, 2, 3)}
    assert {p.name for p in splits.iterdir()} == expected
    used_for = {0: 0, 1: 0, 2: 0}
    for label in small_demo["classes"]:
        on_disk = {p.name for p in class_videos(small_demo, label)}
        assignments = []
        for n in (1, 2, 3):
            tags = read_split(splits / f"{label}_test_split{n}.txt")
            assert set(tags) == on_disk
            assert {0, 1, 2} == set(tags.values())
            assignments.append(tuple(tags[name] for name in sorted(tags)))
            for tag in tags.values():
                used_for[tag] += 1
        assert len(set(assignments)) > 1, f"{label}: the three splits are identical"
    assert 0.6 <= used_for[1] / (used_for[1] + used_for[2]) <= 0.8
    names = [p.name for label in small_demo["classes"] for p in class_videos(small_demo, label)]
    assert any(set("()!&") & set(name) for name in names)


def test_split_tags_are_70_30_with_a_few_unused():
    tags = demo.split_tags(np.random.default_rng(0), 100)
    assert np.bincount(tags).tolist() == [16, 59, 25]
    assert len(set(demo.split_tags(np.random.default_rng(0), 2))) == 2


# ----------------------------------------------------------------------------- reproducibility


def all_frames(summary):
    """``[(path relative to the root, decoded frames)]`` for every video of a demo."""
    return [(p.relative_to(summary["root"]).as_posix(), decode(p)) for p in all_videos(summary)]


def test_same_seed_same_frames_other_seed_other_frames(tmp_path):
    first = all_frames(demo.generate_demo(tmp_path / "a", seed=0, **TINY))
    again = all_frames(demo.generate_demo(tmp_path / "b", seed=0, **TINY))
    other = all_frames(demo.generate_demo(tmp_path / "c", seed=1, **TINY))
    assert [name for name, _ in first] == [name for name, _ in again]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, again))
    assert len(other) == len(first)
    assert not any(np.array_equal(a, b) for (_, a), (_, b) in zip(first, other))


def test_rerun_on_a_complete_demo_rewrites_nothing(tmp_path):
    demo.generate_demo(tmp_path, seed=0, **TINY)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    summary = demo.generate_demo(tmp_path, seed=0, **TINY)
    assert not summary["generated"]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
    with pytest.raises(ValueError, match="demo made with"):
        demo.generate_demo(tmp_path, seed=1, **TINY)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_an_interrupted_run_leaves_no_half_video_and_is_cleared(tmp_path, monkeypatch):
    write_video = demo.write_video
    calls = []

    def killed_on_fourth_video(path, frames, fps):
        calls.append(path)
        if len(calls) == 4:
            # What a killed process leaves: a truncated temporary file next to the target.
            write_video(path, frames, fps)
            data = path.read_bytes()
            path.unlink()
            hidden_temporary_path(path).write_bytes(data[: len(data) // 2])
            raise KeyboardInterrupt
        write_video(path, frames, fps)

    monkeypatch.setattr(demo, "write_video", killed_on_fourth_video)
    with pytest.raises(KeyboardInterrupt):
        demo.generate_demo(tmp_path, seed=0, **{**TINY, "unlabeled_videos": 4})
    assert not (tmp_path / demo.MARKER).exists()
    leftover = hidden_temporary_path(calls[-1])
    assert leftover.exists() and leftover.suffix not in VIDEO_SUFFIXES
    videos = [p for p in tmp_path.rglob("*") if p.suffix in VIDEO_SUFFIXES]
    assert len(videos) == 3
    assert all(len(decode(p)) == TINY["num_frames"] for p in videos)

    # Run again with fewer unlabeled videos: the interrupted run's files must all go, the
    # extra finished clip included, not only be overwritten where the names agree.
    monkeypatch.setattr(demo, "write_video", write_video)
    summary = demo.generate_demo(tmp_path, seed=0, **TINY)
    assert summary["generated"]
    videos = [p for p in tmp_path.rglob("*") if p.suffix in VIDEO_SUFFIXES]
    assert len(videos) == TINY["unlabeled_videos"] + summary["labeled_videos"]
    assert not list(tmp_path.rglob("*.partial"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [demo.MARKER]


def test_a_write_interrupted_midway_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "clip.avi"
    frames_given = []

    def from_ndarray(array, format):
        if len(frames_given) == 2:
            # Midway: the output is open, under its temporary name only.
            assert hidden_temporary_path(target).exists() and not target.exists()
            raise KeyboardInterrupt
        frames_given.append(array)
        return av.VideoFrame.from_ndarray(array, format=format)

    video_frame = types.SimpleNamespace(from_ndarray=from_ndarray)
    monkeypatch.setattr(demo, "av", types.SimpleNamespace(open=av.open, VideoFrame=video_frame))
    with pytest.raises(KeyboardInterrupt):
        demo.write_video(target, np.zeros((4, 32, 48, 3), np.uint8), 25)
    assert list(tmp_path.iterdir()) == []


def test_folders_not_written_by_the_generator_are_not_overwritten(tmp_path):
    foreign = demo.demo_paths(tmp_path).unlabeled / "mine.mp4"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"not ours")
    with pytest.raises(FileExistsError):
        demo.generate_demo(tmp_path, seed=0, **TINY)
    assert foreign.read_bytes() == b"not ours"


def test_photos_restricts_every_background_and_sprite_and_is_recorded(tmp_path, monkeypatch):
    load_photo = demo.load_photo
    loaded = set()

    def recording(name, short_side):
        loaded.add(name)
        return load_photo(name, short_side)

    monkeypatch.setattr(demo, "load_photo", recording)
    held_out = ("coffee", "rocket")
    summary = demo.generate_demo(tmp_path, seed=0, photos=held_out, **TINY)
    # Every class with a sprite is filmed, so both a background and a sprite were drawn.
    assert loaded == set(held_out)
    assert summary["options"]["photos"] == sorted(held_out)


def test_all_photos_by_default_with_the_marker_of_earlier_demos(tmp_path):
    summary = demo.generate_demo(tmp_path, seed=0, **TINY)
    assert "photos" not in summary["options"]  # demos made before the option still match
    with pytest.raises(ValueError, match="unknown photos"):
        demo.generate_demo(tmp_path / "other", seed=0, photos=("coffee", "nebula"), **TINY)
    with pytest.raises(ValueError, match="at least 2"):
        demo.generate_demo(tmp_path / "other", seed=0, photos=("coffee",), **TINY)


def test_a_sprite_path_that_spans_the_frame_exactly_stays_inside_it():
    # 11 steps of 2.958 px are scaled to the 31 px of a 32-pixel frame, which float32
    # rounding overshot (seed 1 of a 32 x 32 demo raised "high - low < 0").
    centres = demo._sprite_path(np.random.default_rng(0), 12, (32, 32), (0.0, 2.958362354056315))
    assert centres.shape == (12, 2)
    assert np.all(centres >= -1e-4) and np.all(centres <= 31 + 1e-4)
    np.testing.assert_allclose(np.ptp(centres[:, 0]), 31, rtol=1e-5)


# ----------------------------------------------------------------------------- test photographs

# 6 videos per class: 1 unused, 2 test and 3 train in each split file.
SPLIT_DEMO = {"unlabeled_videos": 1, "videos_per_class": 6, "num_frames": 4, "size": (32, 48)}
TRAIN_PHOTOS, TEST_PHOTOS = ("brick", "coffee", "gravel"), ("astronaut", "rocket")
# sha256 over the split files (name, then content, by name) of SPLIT_DEMO at seed 0, as the
# generator wrote them before test_photos existed (commit f4c38b4).
SPLIT_FILES_BEFORE_TEST_PHOTOS = "6120b1ae167a106561a7903b803a353b434fada84605d4bacc5dc8716678b8ca"


def split_files(summary):
    return {p.name: p.read_text() for p in sorted(summary["splits_dir"].iterdir())}


def split_files_digest(summary):
    digest = hashlib.sha256()
    for name, text in split_files(summary).items():
        digest.update(name.encode())
        digest.update(text.encode())
    return digest.hexdigest()


def video_index(name):
    return int(name.removesuffix(".avi").rsplit("_", 1)[1])


@pytest.fixture(scope="module")
def photo_demos(tmp_path_factory):
    """The same demo with and without test_photos: ``(without, with, {video: photos
    loaded})``, the photographs every labeled video of the second was filmed over."""
    root = tmp_path_factory.mktemp("test_photos")
    without = demo.generate_demo(root / "without", seed=0, photos=TRAIN_PHOTOS, **SPLIT_DEMO)
    loaded, current = {}, []
    load_photo, labeled_clip = demo.load_photo, demo.labeled_clip

    def recording_load(name, short_side):
        current[-1].add(name)
        return load_photo(name, short_side)

    def recording_clip(rng, label, num_frames, size, photos=None):
        current.append(set())
        clip = labeled_clip(rng, label, num_frames, size, photos)
        loaded[(label, len([k for k in loaded if k[0] == label]))] = current.pop()
        return clip

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "load_photo", recording_load)
        patch.setattr(demo, "labeled_clip", recording_clip)
        current.append(set())  # the unlabeled clips'
        tested = demo.generate_demo(
            root / "with", seed=0, photos=TRAIN_PHOTOS, test_photos=TEST_PHOTOS, **SPLIT_DEMO
        )
    return without, tested, loaded


def test_test_videos_are_filmed_over_the_test_photographs_and_only_they(photo_demos):
    without, tested, loaded = photo_demos
    assert tested["options"] == {
        **without["options"],
        "test_photos": sorted(TEST_PHOTOS),
    }
    assert json.loads((tested["root"] / demo.MARKER).read_text()) == tested["options"]
    assert tested["options"]["photos"] == sorted(TRAIN_PHOTOS)
    counts = {0: 0, 1: 0, 2: 0}
    for label in tested["classes"]:
        tags = read_split(tested["splits_dir"] / f"{label}_test_split1.txt")
        for name, tag in tags.items():
            photos = loaded[(label, video_index(name))]
            counts[tag] += 1
            assert photos, name
            assert photos <= set(TEST_PHOTOS if tag == demo.TEST_TAG else TRAIN_PHOTOS), name
    assert counts == {0: 13, 1: 39, 2: 26}
    # By construction: the same videos and motion, other photographs for the test videos only.
    for label in tested["classes"]:
        tags = read_split(tested["splits_dir"] / f"{label}_test_split1.txt")
        for path in class_videos(tested, label):
            before = without["videos_dir"] / label / path.name
            same = path.read_bytes() == before.read_bytes()
            assert same == (tags[path.name] != demo.TEST_TAG), path.name
    for path in sorted(tested["unlabeled_dir"].glob("*.mp4")):
        assert path.read_bytes() == (without["unlabeled_dir"] / path.name).read_bytes()


def test_with_test_photos_splits_2_and_3_repeat_split_1(photo_demos):
    without, tested, _ = photo_demos
    files, before = split_files(tested), split_files(without)
    assert len(files) == 3 * len(tested["classes"])
    for label in tested["classes"]:
        first = files[f"{label}_test_split1.txt"]
        assert files[f"{label}_test_split2.txt"] == files[f"{label}_test_split3.txt"] == first
        assert first == before[f"{label}_test_split1.txt"]  # split 1 is the generator's own
    assert any(
        before[f"{label}_test_split1.txt"] != before[f"{label}_test_split2.txt"]
        for label in without["classes"]
    )


def test_without_test_photos_the_split_files_are_those_of_before(photo_demos):
    without, _, _ = photo_demos
    assert "test_photos" not in without["options"]
    assert split_files_digest(without) == SPLIT_FILES_BEFORE_TEST_PHOTOS
    # Each class's tags, per split, from its own generator keyed [seed, 2, class, split].
    for class_index, label in enumerate(demo.DEMO_CLASSES):
        names = sorted(p.name for p in class_videos(without, label))
        assert sorted(map(video_index, names)) == list(range(6))
        for split in (1, 2, 3):
            tags = demo.split_tags(np.random.default_rng([0, 2, class_index, split]), 6)
            expected = {name: int(tags[video_index(name)]) for name in names}
            assert read_split(without["splits_dir"] / f"{label}_test_split{split}.txt") == expected


def test_test_photos_that_are_training_photos_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"test_photos \['gravel'\] are also training photo"):
        demo.generate_demo(
            tmp_path, photos=TRAIN_PHOTOS, test_photos=("astronaut", "gravel"), **TINY
        )
    # Without photos every photograph trains: any test photograph is one of them.
    with pytest.raises(ValueError, match=r"test_photos \['astronaut', 'rocket'\] are also"):
        demo.generate_demo(tmp_path, test_photos=TEST_PHOTOS, **TINY)
    with pytest.raises(ValueError, match="unknown test_photos"):
        demo.generate_demo(tmp_path, photos=TRAIN_PHOTOS, test_photos=("moon", "nebula"), **TINY)
    with pytest.raises(ValueError, match="test_photos must name at least 2"):
        demo.generate_demo(tmp_path, photos=TRAIN_PHOTOS, test_photos=("moon",), **TINY)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
