"""Prepare a video dataset as sharded TFRecords for DynamoNet-TF.

    python data/prepare.py ucf101 --video-root UCF-101 --splits ucfTrainTestlist --split 1 --out prepared/ucf101_split1
    python data/prepare.py hmdb51 --video-root hmdb51 --splits testTrainMulti_7030_splits --split 2 --out prepared/hmdb51_split2
    python data/prepare.py kinetics400 --video-root kinetics400 --splits annotations/ --out prepared/kinetics400
    python data/prepare.py folder --video-root my_unlabeled_videos --out prepared/unlabeled
    python data/prepare.py demo --out prepared/demo

Each class keeps --holdout-fraction (10 %) of its train videos apart as holdout-*.tfrecord,
which training validates on; test-*.tfrecord is for evaluate.py only.

Re-running the same command resumes an interrupted run; see dynamonet_tf/data/prepare.py.
"""  # noqa: E501 (the usage lines are --help's epilog, verbatim)

import argparse
import os
import sys

from dynamonet_tf.cli.quiet import add_verbose_argument, quiet_unless_verbose

quiet_unless_verbose()  # before TensorFlow loads, which reads its C++ log level once

from dynamonet_tf.cli.failures import storage_errors_in_one_line  # noqa: E402
from dynamonet_tf.data.datasets import DATASET_NAMES, DatasetError, read_dataset  # noqa: E402
from dynamonet_tf.data.prepare import PrepareError, PrepareOptions, prepare, prepare_demo  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", choices=DATASET_NAMES + ("demo",))
    parser.add_argument("--video-root", help="folder of the videos (demo: where to generate them)")
    parser.add_argument(
        "--splits",
        help="UCF101: ucfTrainTestlist/; HMDB51: testTrainMulti_7030_splits/; "
        "Kinetics-400: a CSV or a folder of CSVs",
    )
    parser.add_argument("--split", type=int, default=1, choices=(1, 2, 3))
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--short-side", type=int, default=PrepareOptions.short_side)
    parser.add_argument("--jpeg-quality", type=int, default=PrepareOptions.jpeg_quality)
    parser.add_argument("--videos-per-shard", type=int, default=PrepareOptions.videos_per_shard)
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument(
        "--holdout-fraction",
        type=float,
        default=PrepareOptions.holdout_fraction,
        help="share of each class's train videos held out as the subset 'holdout' "
        "(holdout-*.tfrecord, named in manifest.json): the videos training validates on "
        "(LR plateau, best/ checkpoint); the test split is for evaluate.py only. "
        "In [0, 1); 0: no holdout (default: %(default)s)",
    )
    parser.add_argument(
        "--holdout-seed",
        type=int,
        default=PrepareOptions.holdout_seed,
        help="which train videos are held out (default: %(default)s)",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="decoding processes"
    )
    parser.add_argument("--seed", type=int, default=0, help="demo: generation seed")
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="UCF101/HMDB51: go on when split files name absent videos (listed in failures.json)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace another preparation in --out"
    )
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    if args.dataset not in ("demo",) and not args.video_root:
        parser.error(f"{args.dataset} needs --video-root")
    if args.dataset in ("ucf101", "hmdb51", "kinetics400") and not args.splits:
        parser.error(f"{args.dataset} needs --splits")
    return args


@storage_errors_in_one_line
def main(argv=None):
    args = parse_args(argv)
    quiet_unless_verbose(args.verbose)
    try:
        options = PrepareOptions(
            short_side=args.short_side,
            jpeg_quality=args.jpeg_quality,
            videos_per_shard=args.videos_per_shard,
            max_frames=args.max_frames,
            holdout_fraction=args.holdout_fraction,
            holdout_seed=args.holdout_seed,
        )
        if args.dataset == "demo":
            manifests = prepare_demo(
                args.out,
                video_root=args.video_root,
                split=args.split,
                seed=args.seed,
                options=options,
                workers=args.workers,
                overwrite=args.overwrite,
            )
        else:
            index = read_dataset(
                args.dataset, args.video_root, args.splits, args.split, args.allow_missing
            )
            source = {"video_root": args.video_root, "splits": args.splits, "split": args.split}
            manifests = {
                args.dataset: prepare(
                    index,
                    args.out,
                    options,
                    workers=args.workers,
                    source=source,
                    overwrite=args.overwrite,
                )
            }
    except (DatasetError, PrepareError) as error:
        sys.exit(f"error: {error}")
    except OSError as error:  # an unwritable --out, a full disk: the user's to fix
        sys.exit(f"error: {error.strerror or error}: {error.filename or args.out}")
    except KeyboardInterrupt:
        sys.exit("interrupted: finished shards are kept; run the same command again to resume")
    for name, manifest in manifests.items():
        counts = ", ".join(f"{s}: {v['videos']} videos" for s, v in manifest["subsets"].items())
        print(f"{name}: {counts}; {manifest['failures']} failed or missing (failures.json)")


if __name__ == "__main__":
    main()
