"""Offline demo dataset: videos made by moving a virtual camera over real photographs.

No public video dataset can be downloaded here, so the demo generates its own from the
photographs that ship inside scikit-image (docs/DESIGN.md §7). Two flavours are written under
``root``:

* ``root/unlabeled/<name>.mp4``: clips for self-supervised pretraining, a random mix of
  camera pan, zoom and rotation over a photograph and of a moving sprite (a patch cut from
  another photograph).
* ``root/labeled/``: an action-recognition set in the HMDB51 on-disk layout, videos
  ``videos/<class>/<name>.avi`` and split files
  ``testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt``. Appearance (photograph, crop,
  scale, flip, brightness, sprite) is random in every video, so only the motion tells the
  classes apart. What each class shows on screen (y points down):

  - ``pan_left`` / ``pan_right``: the camera pans left / right, so the scene slides right / left;
  - ``pan_up`` / ``pan_down``: the camera tilts up / down, so the scene slides down / up;
  - ``zoom_in`` / ``zoom_out``: the scene grows / shrinks about the frame centre;
  - ``rotate_clockwise`` / ``rotate_counterclockwise``: the scene turns that way about the
    frame centre;
  - ``sprite_left`` / ``_right`` / ``_up`` / ``_down``: a patch cut from another photograph
    moves that way over a still background;
  - ``still``: nothing moves.

Frames are resampled from a larger photograph with a per-frame affine map, so they are always
fully covered (no borders appear). ``photos`` restricts a demo to some of the photographs
(backgrounds and sprites alike), so that two demos can be made from disjoint photographs: a
held-out set whose scenes a model trained on the other never saw. Every video draws from its
own random generator keyed by ``(seed, stream, index)``, so the content is a pure function
of the seed and options.

Writes are atomic (a hidden temporary file, then a rename: :mod:`dynamonet_tf.atomic_files`), a
``.complete`` marker holding the options is written last, and a complete demo is never regenerated.
"""

import json
import shutil
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from skimage import data as skdata
from skimage import exposure, transform

from dynamonet_tf.atomic_files import atomic_write, atomic_write_with, hidden_temporary_path

# Photographs that load from the scikit-image wheel without network access (checked on
# scikit-image 0.26; brain, eagle, lily, skin, ... need pooch and a download). Synthetic or
# nearly featureless images (checkerboard, logo, colorwheel, clock, cell) are left out because
# motion over them is barely visible; cat is chelsea again.
PHOTOS = {
    "astronaut": skdata.astronaut,
    "brick": skdata.brick,
    "camera": skdata.camera,
    "chelsea": skdata.chelsea,
    "coffee": skdata.coffee,
    "coins": skdata.coins,
    "grass": skdata.grass,
    "gravel": skdata.gravel,
    "hubble_deep_field": skdata.hubble_deep_field,
    "immunohistochemistry": skdata.immunohistochemistry,
    "moon": skdata.moon,
    "motorcycle": lambda: skdata.stereo_motorcycle()[0],
    "page": skdata.page,
    "retina": skdata.retina,
    "rocket": skdata.rocket,
    "text": skdata.text,
}
# Smooth photographs whose detail is brought out by adaptive histogram equalisation, so that
# motion over them shows.
_SMOOTH_PHOTOS = {"moon", "retina"}

# Motion of each labeled class as unit directions; magnitudes are drawn per video.
# ``pan`` is the on-screen velocity of the scene (x right, y down), ``zoom`` the sign of the
# scene's growth, ``spin`` +1 for clockwise on screen, ``sprite`` the sprite's velocity.
_CLASS_MOTION = {
    "pan_left": {"pan": (1.0, 0.0)},
    "pan_right": {"pan": (-1.0, 0.0)},
    "pan_up": {"pan": (0.0, 1.0)},
    "pan_down": {"pan": (0.0, -1.0)},
    "zoom_in": {"zoom": 1.0},
    "zoom_out": {"zoom": -1.0},
    "rotate_clockwise": {"spin": 1.0},
    "rotate_counterclockwise": {"spin": -1.0},
    "sprite_left": {"sprite": (-1.0, 0.0)},
    "sprite_right": {"sprite": (1.0, 0.0)},
    "sprite_up": {"sprite": (0.0, -1.0)},
    "sprite_down": {"sprite": (0.0, 1.0)},
    "still": {},
}
# Sorted, because HMDB51 readers number classes by sorted name.
DEMO_CLASSES = tuple(sorted(_CLASS_MOTION))
# The classes by kind of motion: one filter per frame can represent a translation (pans)
# but not a zoom, a rotation or a sprite moving over a still background.
_FAMILY_OF_MOTION = {"pan": "pans", "zoom": "zooms", "spin": "rotations", "sprite": "sprites"}


def _family(label):
    motion = _CLASS_MOTION[label]  # every moving class has one kind of motion
    return _FAMILY_OF_MOTION[next(iter(motion))] if motion else "still"


MOTION_FAMILIES = {
    family: tuple(label for label in DEMO_CLASSES if _family(label) == family)
    for family in (*_FAMILY_OF_MOTION.values(), "still")
}

# Magnitude ranges, per frame: pixels, log-scale, degrees.
PAN_SPEED = (1.5, 3.0)
ZOOM_RATE = (0.01, 0.02)
SPIN_DEGREES = (1.0, 2.5)
SPRITE_SPEED = (1.5, 3.0)
# Photo pixels per frame pixel: a little either side of 1, so frames are neither blurred by
# strong upsampling nor aliased by strong downsampling.
VIEW_SCALE = (0.75, 1.25)
SPRITE_SIZE = (0.3, 0.45)  # fraction of the frame's short side
# Photographs are resized once so their short side is this many frame heights: room for a
# pan across the whole clip or a zoom out by ~2x at scale 1.
PHOTO_HEIGHTS = 3.0
# Points per block in bilinear sampling.
_BLOCK = 2**16
# Candidate crops tried per photograph; the most textured wins, so motion is visible.
TEXTURE_TRIES = 4
# Views less textured than this (mean absolute grey-level gradient, grey in [0, 1]) are
# retried on up to PHOTO_TRIES photographs in all.
MIN_TEXTURE = 0.015
PHOTO_TRIES = 4

# MPEG-4 part 2 bit rate per pixel per frame; its rate control overshoots on short clips.
MPEG4_BITS_PER_PIXEL = 0.4

MARKER = ".complete"
IN_PROGRESS = ".in_progress"
_FORMAT_VERSION = 1

# Parts of HMDB51-style names: <title>_<action>_<body>_<cm|nm>_np1_<view>_<quality>_<n>.avi.
# Some titles carry the punctuation that real HMDB51 names have.
_TITLES = (
    "April_09",
    "(Rad)Schlag_die_Bank!",
    "Coffee_&_Cats",
    "Faith_Rewarded",
    "Glory_(Directors_Cut)",
    "Hubble!_Deep_Field",
    "Rocket_Launch",
    "Stars_&_Stripes_(1998)",
    "The_Moon",
    "Wow!",
)
_BODY = ("f", "h", "u")
_VIEWS = ("ba", "fr", "le", "ri")
_QUALITY = ("bad", "goo", "med")


class DemoPaths(NamedTuple):
    """Where the demo lives under its root."""

    unlabeled: Path  # folder of ``.mp4`` clips
    videos: Path  # HMDB51 video folder: ``<class>/<name>.avi``
    splits: Path  # HMDB51 ``testTrainMulti_7030_splits`` folder


def demo_paths(root):
    """The demo layout under ``root``: the single source of truth for other code."""
    root = Path(root)
    return DemoPaths(
        unlabeled=root / "unlabeled",
        videos=root / "labeled" / "videos",
        splits=root / "labeled" / "testTrainMulti_7030_splits",
    )


# ----------------------------------------------------------------------------- photographs


_photo_cache = {}


def load_photo(name, short_side):
    """Photograph ``name`` resized to ``short_side``: ``(h, w, 4)`` float32 in [0, 1].

    RGB plus an opaque alpha channel, because :func:`_bilinear` gathers 4-channel pixels.
    Cached: the same array is returned on every call, so do not modify it.
    """
    key = (name, short_side)
    if key not in _photo_cache:
        image = np.asarray(PHOTOS[name]())
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        if name == "retina":
            # The fundus is a disc on black: keep a square inside the disc.
            h, w = image.shape[:2]
            image = image[int(0.22 * h) : int(0.78 * h), int(0.22 * w) : int(0.78 * w)]
        image = image[..., :3].astype(np.float32) / 255.0
        factor = short_side / min(image.shape[:2])
        image = transform.rescale(image, factor, anti_aliasing=factor < 1, channel_axis=-1)
        if name in _SMOOTH_PHOTOS:
            image = exposure.equalize_adapthist(image, clip_limit=0.02)
        alpha = np.ones(image.shape[:2] + (1,))
        _photo_cache[key] = np.concatenate([image, alpha], axis=-1).astype(np.float32)
    return _photo_cache[key]


def _bilinear(image, ys, xs):
    """Samples ``image`` ``(h, w, c)`` at float coordinates ``ys``, ``xs``.

    ``ys`` and ``xs`` share a shape ``S``; returns ``S + (c,)`` float32. Coordinates outside
    the image are clamped to its border. Images here have ``c = 4`` float32 channels, because
    gathering aligned 16-byte pixels is several times faster than 12-byte RGB ones.
    """
    h, w, channels = image.shape
    flat = np.ascontiguousarray(image, np.float32).reshape(h * w, channels)
    shape = np.shape(ys)
    ys = np.clip(ys, 0, h - 1, dtype=np.float32).ravel()
    xs = np.clip(xs, 0, w - 1, dtype=np.float32).ravel()
    out = np.empty((ys.size, channels), np.float32)
    # Blocks of points small enough for the temporaries to stay in cache: 4x faster than
    # one pass over a whole clip.
    for start in range(0, ys.size, _BLOCK):
        block = slice(start, start + _BLOCK)
        out[block] = _bilinear_block(flat, w, ys[block], xs[block])
    return out.reshape(shape + (channels,))


def _bilinear_block(flat, width, ys, xs):
    """Bilinear samples of ``flat`` ``(h * width, c)`` at in-range points ``(n,)``: ``(n, c)``."""
    height = len(flat) // width
    y0 = np.minimum(ys.astype(np.intp), height - 2)
    x0 = np.minimum(xs.astype(np.intp), width - 2)
    fy = (ys - y0.astype(np.float32))[:, None]
    fx = (xs - x0.astype(np.float32))[:, None]
    corner = y0 * width + x0
    top, right = flat.take(corner, axis=0), flat.take(corner + 1, axis=0)
    right -= top
    right *= fx
    top += right
    bottom, right = flat.take(corner + width, axis=0), flat.take(corner + width + 1, axis=0)
    right -= bottom
    right *= fx
    bottom += right
    bottom -= top
    bottom *= fy
    top += bottom
    return top


def _texture(frame):
    """Mean absolute gradient of a frame ``(height, width, 3)``: how visible motion over it is."""
    gray = frame.mean(axis=-1)
    return np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean()


def _jitter_colours(rng, image):
    """Random brightness, contrast and tint, so appearance carries no class information."""
    gain = rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, size=3)
    offset = rng.uniform(-0.1, 0.1)
    return np.clip(image * gain.astype(np.float32) + np.float32(offset), 0.0, 1.0)


# ----------------------------------------------------------------------------- camera motion


def _camera_offsets(num_frames, size, pan, zoom_rate, spin_degrees):
    """Where each frame pixel looks, relative to the view centre, in unit-scale photo pixels.

    ``pan`` is the scene's on-screen velocity ``(dx, dy)`` in pixels per frame, ``zoom_rate``
    the scene's log-growth per frame, ``spin_degrees`` its clockwise turn per frame. The camera
    moves opposite to what the scene appears to do. Returns ``(ys, xs)``, each
    ``(time, height, width)``.
    """
    height, width = size
    t = np.arange(num_frames, dtype=np.float32)[:, None, None]
    qy, qx = np.meshgrid(
        np.arange(height, dtype=np.float32) - (height - 1) / 2,
        np.arange(width, dtype=np.float32) - (width - 1) / 2,
        indexing="ij",
    )
    zoom = np.exp(-zoom_rate * t)
    # Image y points down, so a positive angle in this matrix turns the view clockwise and
    # hence the scene counterclockwise on screen.
    angle = -np.deg2rad(spin_degrees) * t
    cos, sin = np.cos(angle), np.sin(angle)
    xs = -pan[0] * t + zoom * (cos * qx - sin * qy)
    ys = -pan[1] * t + zoom * (sin * qx + cos * qy)
    return ys.astype(np.float32), xs.astype(np.float32)


def _camera_view(rng, photo, offsets):
    """Where to sample ``photo`` ``(h, w, 4)`` to film it along ``offsets``.

    Picks a random view scale, shrunk where needed so that every frame stays inside the
    photograph, a random mirroring, and the most textured of a few random view centres.
    Returns photo coordinates ``(ys, xs)``, each ``(time, height, width)``, and the texture
    of the first frame (see :func:`_texture`).
    """
    ys, xs = offsets
    h, w = photo.shape[:2]
    span_y, span_x = ys.max() - ys.min(), xs.max() - xs.min()
    # One pixel of margin keeps bilinear sampling inside the photograph.
    scale = min(rng.uniform(*VIEW_SCALE), (h - 2) / span_y, (w - 2) / span_x)
    low = np.array([1 - scale * ys.min(), 1 - scale * xs.min()])
    room = np.array([h - 2 - scale * ys.max(), w - 2 - scale * xs.max()]) - low
    # Rounding can leave a hair of negative room when the scale was shrunk to fit exactly.
    centres = low + rng.random((TEXTURE_TRIES, 2)) * np.maximum(room, 0)
    if rng.random() < 0.5:
        # Mirrors photo columns, not the offsets, so that the motion is unchanged.
        centres[:, 1] = (w - 1) - centres[:, 1]
        xs = -xs
    first_frames = [_bilinear(photo, cy + scale * ys[0], cx + scale * xs[0]) for cy, cx in centres]
    scores = [_texture(frame[..., :3]) for frame in first_frames]
    best = int(np.argmax(scores))
    cy, cx = centres[best]
    return (cy + scale * ys, cx + scale * xs), scores[best]


def _film(rng, offsets, short_side, photos):
    """Films a random photograph of ``photos`` (sorted names) along ``offsets``:
    ``(time, height, width, 3)`` float32.

    A nearly featureless view (a patch of sky, a plain saucer) would hide the motion that
    defines the label, so such views are retried on other photographs; after
    :data:`PHOTO_TRIES` photographs the last view is kept. Returns the frames and the
    photograph's name.
    """
    for _ in range(PHOTO_TRIES):
        name = rng.choice(photos)
        photo = load_photo(name, short_side)
        (ys, xs), texture = _camera_view(rng, photo, offsets)
        if texture >= MIN_TEXTURE:
            break
    return _bilinear(photo, ys, xs)[..., :3], name


# ----------------------------------------------------------------------------- sprites


def _cut_sprite(rng, photo, frame_size):
    """A textured patch of ``photo`` ``(h, w, 4)`` with a soft elliptical alpha, ``(sh, sw, 4)``."""
    side = min(frame_size) * rng.uniform(*SPRITE_SIZE)
    aspect = rng.uniform(0.7, 1.4)
    sh, sw = max(4, round(side / np.sqrt(aspect))), max(4, round(side * np.sqrt(aspect)))
    ph, pw = photo.shape[:2]
    tops, lefts = rng.integers(0, ph - sh, TEXTURE_TRIES), rng.integers(0, pw - sw, TEXTURE_TRIES)
    patches = [photo[y : y + sh, x : x + sw, :3] for y, x in zip(tops, lefts)]
    patch = _jitter_colours(rng, max(patches, key=_texture))
    yy, xx = np.meshgrid(np.linspace(-1, 1, sh), np.linspace(-1, 1, sw), indexing="ij")
    # An ellipse whose edge fades over ~10% of the radius: the sprite reads as an object.
    alpha = np.clip((1 - np.hypot(yy, xx)) * 10, 0, 1).astype(np.float32)
    return np.concatenate([patch, alpha[..., None]], axis=-1)


def _sprite_path(rng, num_frames, size, velocity):
    """Sprite centres ``(time, 2)`` as ``(y, x)``, moving at ``velocity`` ``(dx, dy)`` px/frame.

    The speed is reduced where needed so the centre stays inside the frame for the whole clip.
    """
    velocity = np.asarray(velocity, np.float32)[::-1]  # (dx, dy) -> (dy, dx)
    extent = np.asarray(size, np.float32) - 1
    travel = np.abs(velocity) * (num_frames - 1)
    moving = travel > 0
    velocity *= min(1.0, np.min(extent[moving] / travel[moving]))
    steps = velocity * np.arange(num_frames, dtype=np.float32)[:, None]
    low, high = -steps.min(axis=0), extent - steps.max(axis=0)
    # A path scaled to span the frame exactly can overshoot it by a float32 rounding error.
    start = rng.uniform(low, np.maximum(high, low))
    return start + steps


def _paste_sprite(frames, sprite, centres):
    """Composites ``sprite`` ``(h, w, 4)`` over ``frames`` ``(time, height, width, 3)``.

    ``centres`` ``(time, 2)`` may be fractional: the sprite is resampled bilinearly.
    """
    _, height, width, _ = frames.shape
    sh, sw = sprite.shape[:2]
    # Premultiplied colour avoids dark fringes; a zero border makes everything outside the
    # sprite sample as transparent.
    premultiplied = np.concatenate([sprite[..., :3] * sprite[..., 3:], sprite[..., 3:]], axis=-1)
    padded = np.pad(premultiplied, ((1, 1), (1, 1), (0, 0)))
    ys = np.arange(height, dtype=np.float32)[None, :, None] - centres[:, 0, None, None]
    xs = np.arange(width, dtype=np.float32)[None, None, :] - centres[:, 1, None, None]
    ys, xs = np.broadcast_arrays(ys + (sh - 1) / 2 + 1, xs + (sw - 1) / 2 + 1)
    layer = _bilinear(padded, ys, xs)
    return frames * (1 - layer[..., 3:]) + layer[..., :3]


# ----------------------------------------------------------------------------- clips


def render_clip(
    rng,
    num_frames,
    size,
    *,
    pan=(0.0, 0.0),
    zoom_rate=0.0,
    spin_degrees=0.0,
    sprite_velocity=None,
    photos=None,
):
    """One clip over random photographs, ``(time, height, width, 3)`` uint8.

    Camera motion is given as the scene's apparent motion (see :func:`_camera_offsets`);
    ``sprite_velocity`` ``(dx, dy)`` in px/frame adds a sprite cut from a second photograph.
    Photographs are drawn from ``photos`` (names in :data:`PHOTOS`; None: all of them).
    """
    photos = sorted(photos or PHOTOS)
    short_side = round(PHOTO_HEIGHTS * min(size))
    offsets = _camera_offsets(num_frames, size, pan, zoom_rate, spin_degrees)
    frames, background = _film(rng, offsets, short_side, photos)
    frames = _jitter_colours(rng, frames)
    if sprite_velocity is not None:
        source = rng.choice(sorted(set(photos) - {background}))
        sprite = _cut_sprite(rng, load_photo(source, short_side), size)
        centres = _sprite_path(rng, num_frames, size, sprite_velocity)
        frames = _paste_sprite(frames, sprite, centres)
    return np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)


def _unit_vector(rng):
    angle = rng.uniform(0, 2 * np.pi)
    return np.cos(angle), np.sin(angle)


def unlabeled_clip(rng, num_frames, size, photos=None):
    """A clip with a random mix of pan, zoom, rotation and a sprite, each at random speed,
    over ``photos`` (see :func:`render_clip`)."""
    motion = {}
    if rng.random() < 0.7:
        motion["pan"] = np.multiply(_unit_vector(rng), rng.uniform(0.5, PAN_SPEED[1]))
    if rng.random() < 0.4:
        motion["zoom_rate"] = rng.choice((-1, 1)) * rng.uniform(0.3 * ZOOM_RATE[0], ZOOM_RATE[1])
    if rng.random() < 0.4:
        degrees = rng.uniform(0.3 * SPIN_DEGREES[0], SPIN_DEGREES[1])
        motion["spin_degrees"] = rng.choice((-1, 1)) * degrees
    if rng.random() < 0.5 or not motion:
        motion["sprite_velocity"] = np.multiply(_unit_vector(rng), rng.uniform(*SPRITE_SPEED))
    return render_clip(rng, num_frames, size, photos=photos, **motion)


def labeled_clip(rng, label, num_frames, size, photos=None):
    """A clip of class ``label`` (one of :data:`DEMO_CLASSES`) at a random speed, over
    ``photos`` (see :func:`render_clip`)."""
    spec = _CLASS_MOTION[label]
    motion = {}
    if "pan" in spec:
        motion["pan"] = np.multiply(spec["pan"], rng.uniform(*PAN_SPEED))
    if "zoom" in spec:
        motion["zoom_rate"] = spec["zoom"] * rng.uniform(*ZOOM_RATE)
    if "spin" in spec:
        motion["spin_degrees"] = spec["spin"] * rng.uniform(*SPIN_DEGREES)
    if "sprite" in spec:
        motion["sprite_velocity"] = np.multiply(spec["sprite"], rng.uniform(*SPRITE_SPEED))
    return render_clip(rng, num_frames, size, photos=photos, **motion)


# ----------------------------------------------------------------------------- files


def write_video(path, frames, fps):
    """Writes ``frames`` ``(time, height, width, 3)`` uint8 to ``path``.

    ``.mp4`` holds H.264 (as Kinetics does) and ``.avi`` MPEG-4 part 2 (as HMDB51 does), both
    yuv420p, so the demo exercises the decoders that real datasets need.
    """
    path = Path(path)
    container_format, codec, options = {
        # With its assembly on, x264 (in PyAV 18's FFmpeg) encoded identical frames of some
        # widths (80, 160) differently from run to run; its plain C code is deterministic.
        ".mp4": ("mp4", "libx264", {"crf": "23", "preset": "veryfast", "x264-params": "asm=0"}),
        ".avi": ("avi", "mpeg4", {}),
    }[path.suffix]
    height, width = frames.shape[1:3]

    def write(target):
        with av.open(str(target), "w", format=container_format) as container:
            stream = container.add_stream(codec, rate=fps, options=options)
            stream.height, stream.width = height, width
            stream.pix_fmt = "yuv420p"
            if codec == "mpeg4":
                # PyAV cannot set MPEG-4's fixed quantiser (it is per frame), so the bit rate
                # is set instead: ~3.5 grey levels of mean error, ~45 kB per default clip.
                stream.bit_rate = int(MPEG4_BITS_PER_PIXEL * height * width * fps)
                stream.codec_context.gop_size = fps
            # One thread: the encoded bytes must not depend on the machine's core count.
            stream.codec_context.thread_count = 1
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())

    # Hidden and extension-less until complete: the readers list videos by extension.
    atomic_write_with(path, write, temporary=hidden_temporary_path(path))


def _write_text(path, text):
    """Writes ``text`` to ``path`` atomically, under a hidden temporary name."""
    atomic_write(path, text, temporary=hidden_temporary_path(path))


# ----------------------------------------------------------------------------- dataset


def _video_name(rng, label, index):
    """An HMDB51-style file name, sometimes with punctuation, unique within its class."""
    camera = "nm" if label == "still" or label.startswith("sprite") else "cm"
    fields = (
        rng.choice(_TITLES),
        label,
        rng.choice(_BODY),
        camera,
        "np1",
        rng.choice(_VIEWS),
        rng.choice(_QUALITY),
        str(index),
    )
    return "_".join(fields) + ".avi"


TEST_TAG = 2  # HMDB51's tag of a test video (1: train, 0: unused)


def split_tags(rng, count):
    """HMDB51 tags for ``count`` videos of one class: 1 train, 2 test, 0 unused.

    Like HMDB51, ~70/30 train/test among the used videos, and about one video in six left
    unused (HMDB51 lists 70 + 30 out of 100 or more per class). Needs ``count >= 2``.
    """
    unused = count // 6
    test = max(1, round(0.3 * (count - unused)))
    tags = np.array([0] * unused + [TEST_TAG] * test + [1] * (count - unused - test))
    return tags[rng.permutation(count)]


def _check_photos(photos, what):
    unknown = sorted(set(photos) - set(PHOTOS))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; valid: {sorted(PHOTOS)}")
    if len(set(photos)) < 2:
        raise ValueError(f"{what} must name at least 2 photographs: sprites come from another")
    return sorted(set(photos))


def _options(
    seed, unlabeled_videos, videos_per_class, num_frames, size, fps, photos, test_photos=None
):
    height, width = size
    if height % 2 or width % 2 or min(size) < 16:
        raise ValueError(f"size must be even and at least 16 pixels, got {size}")
    if videos_per_class < 2:
        raise ValueError("videos_per_class must be at least 2: each split needs train and test")
    if seed < 0 or num_frames < 2 or unlabeled_videos < 0 or fps <= 0:
        raise ValueError("need seed >= 0, num_frames >= 2, unlabeled_videos >= 0 and fps > 0")
    options = {
        "version": _FORMAT_VERSION,
        "seed": int(seed),
        "unlabeled_videos": int(unlabeled_videos),
        "videos_per_class": int(videos_per_class),
        "num_frames": int(num_frames),
        "size": [int(height), int(width)],
        "fps": int(fps),
    }
    if photos is not None:
        # Recorded only when given, so that demos of all photographs keep their markers.
        options["photos"] = _check_photos(photos, "photos")
    if test_photos is not None:
        options["test_photos"] = _check_photos(test_photos, "test_photos")
        shared = sorted(set(options["test_photos"]) & set(options.get("photos", PHOTOS)))
        if shared:
            raise ValueError(
                f"test_photos {shared} are also training photographs; pass photos without them"
            )
    return options


def _summary(root, options, generated):
    paths = demo_paths(root)
    return {
        "root": Path(root),
        "unlabeled_dir": paths.unlabeled,
        "videos_dir": paths.videos,
        "splits_dir": paths.splits,
        "classes": list(DEMO_CLASSES),
        "unlabeled_videos": options["unlabeled_videos"],
        "videos_per_class": options["videos_per_class"],
        "labeled_videos": options["videos_per_class"] * len(DEMO_CLASSES),
        "options": options,
        "generated": generated,
    }


def _prepare_root(root, options):
    """Decides what to do with ``root``; returns False when a matching demo is already there.

    A complete demo made with other options raises instead of being overwritten: another
    process may be reading it, and silently replacing a dataset makes results irreproducible.
    The remains of an interrupted run (marked by :data:`IN_PROGRESS`) are ours to clear.
    """
    root = Path(root)
    marker = root / MARKER
    if marker.exists():
        found = json.loads(marker.read_text())
        if found == options:
            return False
        raise ValueError(
            f"{root} holds a demo made with {found}, not {options}: pass the same options, "
            "another root, or delete the folder"
        )
    paths = demo_paths(root)
    ours = (paths.unlabeled, paths.videos.parent)
    if (root / IN_PROGRESS).exists():
        for folder in ours:
            shutil.rmtree(folder, ignore_errors=True)
    elif any(folder.exists() and any(folder.iterdir()) for folder in ours):
        raise FileExistsError(
            f"{root} has demo folders that generate_demo did not write; refusing to overwrite them"
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / IN_PROGRESS).write_text(json.dumps(options))
    return True


def generate_demo(
    root,
    *,
    seed=0,
    unlabeled_videos=48,
    videos_per_class=12,
    num_frames=40,
    size=(128, 160),
    fps=25,
    photos=None,
    test_photos=None,
):
    """Writes the demo dataset under ``root`` (see the module docstring) and summarises it.

    ``size`` is ``(height, width)``, both even (yuv420p). ``photos``: names in
    :data:`PHOTOS` (at least 2) that every video draws from; None: all of them.
    ``test_photos``: photographs (at least 2, none of ``photos``) that the labeled videos
    tagged test are filmed over instead, so that a model is tested on scenes it never
    trained on. A video's photographs then decide its side, so splits 2 and 3 repeat split
    1's tags. Returns
    a dict with the folders (``unlabeled_dir``, ``videos_dir``, ``splits_dir``),
    ``classes``, the video counts, the ``options`` and whether anything was
    ``generated`` (False when a matching complete demo was already there). Raises
    ValueError if ``root`` holds a demo made with other options.
    """
    options = _options(
        seed, unlabeled_videos, videos_per_class, num_frames, size, fps, photos, test_photos
    )
    if not _prepare_root(root, options):
        return _summary(root, options, generated=False)
    root, paths, size = Path(root), demo_paths(root), tuple(options["size"])

    paths.unlabeled.mkdir(parents=True, exist_ok=True)
    for index in range(unlabeled_videos):
        rng = np.random.default_rng([seed, 0, index])
        clip = unlabeled_clip(rng, num_frames, size, photos)
        write_video(paths.unlabeled / f"clip_{index:05d}.mp4", clip, fps)

    paths.splits.mkdir(parents=True, exist_ok=True)
    for class_index, label in enumerate(DEMO_CLASSES):
        (paths.videos / label).mkdir(parents=True, exist_ok=True)
        tags_by_split = {
            split: split_tags(
                np.random.default_rng([seed, 2, class_index, split]), videos_per_class
            )
            for split in (1, 2, 3)
        }
        if test_photos is not None:
            tags_by_split = dict.fromkeys(tags_by_split, tags_by_split[1])
        names = []
        for index in range(videos_per_class):
            rng = np.random.default_rng([seed, 1, class_index, index])
            names.append(_video_name(rng, label, index))
            tested = test_photos is not None and tags_by_split[1][index] == TEST_TAG
            clip = labeled_clip(rng, label, num_frames, size, test_photos if tested else photos)
            write_video(paths.videos / label / names[-1], clip, fps)
        for split, tags in tags_by_split.items():
            # Real HMDB51 split files end every line with a space after the tag.
            lines = "".join(f"{name} {tag} \n" for name, tag in sorted(zip(names, tags)))
            _write_text(paths.splits / f"{label}_test_split{split}.txt", lines)

    _write_text(root / MARKER, json.dumps(options))
    (root / IN_PROGRESS).unlink()
    return _summary(root, options, generated=True)
