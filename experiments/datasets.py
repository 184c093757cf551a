"""The benchmark every experiment reads, prepared once on first use.

The labeled motion benchmark is the offline demo generator (:mod:`dynamonet_tf.data.demo`)
at scale: the demo's 13 motion classes, :data:`BENCHMARK` ``videos_per_class`` videos each,
split as HMDB51 is (about 1 in 6 unused, 30 % of the rest test, 10 % of the training ones
held out for validation), and unlabeled clips for pretraining. Training videos and unlabeled
clips are filmed over :data:`TRAINING_PHOTOS`, test videos over :data:`HELD_OUT_PHOTOS`,
which nothing trains on: every test number, accuracy and next-frame prediction alike, is on
scenes the model never saw. The seed is fixed: the data are the same for every experiment
and every training seed.

The folder is generated and prepared by :func:`dynamonet_tf.data.prepare.prepare_demo`; one
whose manifests exist is complete and is used as it is.
"""

import argparse
import dataclasses
from pathlib import Path

from dynamonet_tf.data.demo import PHOTOS
from dynamonet_tf.data.demo_data import ensure_demo
from dynamonet_tf.data.prepare import PrepareOptions
from dynamonet_tf.layout import HOLDOUT, TEST, TRAIN, shards

# A person, an object, a texture and a scene; training films the other 12 photographs.
HELD_OUT_PHOTOS = ("astronaut", "coffee", "gravel", "rocket")
TRAINING_PHOTOS = tuple(sorted(set(PHOTOS) - set(HELD_OUT_PHOTOS)))
DATA_ROOT = Path("experiments") / "data"  # the scripts' default --data-root
BENCHMARK_SEED = 0
# 80 videos per class: 13 unused, 20 test and 47 train, of which 5 are held out: 42 train.
BENCHMARK = {
    "unlabeled_videos": 256,
    "videos_per_class": 80,
    "photos": TRAINING_PHOTOS,
    "test_photos": HELD_OUT_PHOTOS,
}
# Tiny videos for --smoke: 12 frames of 32 x 32, 3 videos per class (1 train, 1 holdout,
# 1 test).
SMOKE_BENCHMARK = {
    **BENCHMARK,
    "unlabeled_videos": 4,
    "videos_per_class": 3,
    "num_frames": 12,
    "size": (32, 32),
}
SMOKE_PREPARE = PrepareOptions(short_side=32)


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """File patterns of the prepared benchmark."""

    unlabeled: str  # unlabeled clips for pretraining (training photographs)
    unlabeled_holdout: str  # their holdout, for pretraining's validation
    train: str  # labeled training videos (training photographs)
    holdout: str  # a holdout of the training videos, for validation
    test: str  # labeled test videos (held-out photographs)


def benchmark_root(data_root, smoke=False):
    return Path(data_root) / ("smoke" if smoke else "") / "benchmark"


def benchmark_data(data_root, smoke=False):
    """The :class:`Benchmark` under ``data_root``, generated and prepared first if
    incomplete; with ``smoke``, a tiny one."""
    # Tiny videos decode faster in this process than worker processes start.
    options, workers = (SMOKE_PREPARE, 0) if smoke else (PrepareOptions(), 2)
    demo = ensure_demo(
        benchmark_root(data_root, smoke),
        seed=BENCHMARK_SEED,
        demo_options=SMOKE_BENCHMARK if smoke else BENCHMARK,
        options=options,
        workers=workers,
        progress=False,
    )
    return Benchmark(
        unlabeled=shards(demo.unlabeled, TRAIN),
        unlabeled_holdout=shards(demo.unlabeled, HOLDOUT),
        train=shards(demo.labeled(1), TRAIN),
        holdout=shards(demo.labeled(1), HOLDOUT),
        test=shards(demo.labeled(1), TEST),
    )


def main(argv=None):
    """Prepares the benchmark (``run_all.sh`` does it once, before processes share it)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--smoke", action="store_true", help="the tiny benchmark of --smoke")
    args, _ = parser.parse_known_args(argv)  # the experiment scripts' other options
    print(benchmark_data(args.data_root, args.smoke))


if __name__ == "__main__":
    main()
