"""The data of the experiments, prepared on first use: which TFRecords each run reads.

- :func:`demo_data`: the demo of ``train.py`` (``data/demo``: unlabeled clips and the labeled
  set's split 1), or with ``smoke`` a tiny demo of 32 x 32 videos under ``data_root``.
- :func:`photo_split_data`: for frame prediction on unseen scenes, unlabeled clips filmed
  over the training photographs and held-out clips filmed over :data:`HELD_OUT_PHOTOS`,
  which training never sees.

Each is generated and prepared once (:func:`dynamonet_tf.data.prepare.prepare_demo`): a
folder whose two manifests exist is complete (they are written last) and is used as it is,
as ``train.py`` uses ``data/demo``.
"""

import dataclasses
from pathlib import Path

from dynamonet_tf.data.demo import PHOTOS
from dynamonet_tf.data.demo_data import ensure_demo
from dynamonet_tf.data.prepare import PrepareOptions
from dynamonet_tf.layout import DEMO_DATA_DIR, TEST, TRAIN, shards

# A person, an object, a texture and a scene; training films the other photographs.
HELD_OUT_PHOTOS = ("astronaut", "coffee", "gravel", "rocket")
TRAINING_PHOTOS = tuple(sorted(set(PHOTOS) - set(HELD_OUT_PHOTOS)))
# As many training clips as the demo has; the held-out clips give 4 whole clips of 9 frames
# each, 64 in all: the 8 batches of 8 that the trainer's frame-prediction report scores.
TRAINING_CLIPS = 48
HELD_OUT_CLIPS = 16
# The labeled videos of a photo-split demo are not used: the fewest the generator allows.
UNUSED_VIDEOS_PER_CLASS = 2

# Tiny videos for --smoke: 12 frames of 32 x 32, 3 videos per class (1 train, 1 holdout,
# 1 test).
SMOKE_DEMO = {"unlabeled_videos": 4, "videos_per_class": 3, "num_frames": 12, "size": (32, 32)}
SMOKE_PREPARE = PrepareOptions(short_side=32)


@dataclasses.dataclass(frozen=True)
class DemoData:
    """File patterns of a prepared demo."""

    unlabeled: str  # unlabeled training clips
    unlabeled_all: str  # every unlabeled clip: the training clips and their holdout
    labeled_train: str  # split 1 training videos
    labeled_test: str  # split 1 test videos


def _prepared(root, demo_options=None, *, smoke=False, seed=0):
    """The files of the demo under ``root``, generated and prepared first if incomplete."""
    # Tiny videos decode faster in this process than worker processes start.
    options, workers = (SMOKE_PREPARE, 0) if smoke else (PrepareOptions(), 2)
    demo = ensure_demo(
        root, seed=seed, demo_options=demo_options, options=options, workers=workers, progress=False
    )
    return DemoData(
        unlabeled=shards(demo.unlabeled, TRAIN),
        unlabeled_all=shards(demo.unlabeled),
        labeled_train=shards(demo.labeled(1), TRAIN),
        labeled_test=shards(demo.labeled(1), TEST),
    )


def demo_data(data_root, smoke=False):
    """The demo of ``train.py`` (``data/demo``), or a tiny one under ``data_root`` with
    ``smoke``."""
    if smoke:
        return _prepared(Path(data_root) / "smoke" / "demo", SMOKE_DEMO, smoke=True)
    return _prepared(Path(DEMO_DATA_DIR))


def photo_split_data(data_root, smoke=False):
    """``(training clips, held-out clips)``: file patterns of unlabeled clips filmed over
    :data:`TRAINING_PHOTOS` and over :data:`HELD_OUT_PHOTOS`, under ``data_root``."""
    root = Path(data_root) / ("smoke" if smoke else "") / "photo_split"
    if smoke:
        training = held_out = SMOKE_DEMO
    else:
        training = {"unlabeled_videos": TRAINING_CLIPS, "videos_per_class": UNUSED_VIDEOS_PER_CLASS}
        held_out = {"unlabeled_videos": HELD_OUT_CLIPS, "videos_per_class": UNUSED_VIDEOS_PER_CLASS}
    train = _prepared(
        root / "training_photos", {**training, "photos": TRAINING_PHOTOS}, smoke=smoke
    )
    # Another seed as well as other photographs: clip i of each would otherwise share its motion.
    test = _prepared(
        root / "held_out_photos", {**held_out, "photos": HELD_OUT_PHOTOS}, smoke=smoke, seed=1
    )
    # Nothing trains on the held-out photographs: all their clips, holdout included, are scored.
    return train.unlabeled, test.unlabeled_all
