"""Evaluate trained DynamoNet runs on action recognition (video top-1/top-5, the paper's protocol).

    python evaluate.py --dataset demo --split all                       # runs/finetune_demo_split{1,2,3}
    python evaluate.py --dataset hmdb51 --split 2 --model-dir runs/finetune_hmdb51_split2 --data prepared/hmdb51_split2
    python evaluate.py --dataset ucf101 --split all --crops 3 \\
        --model-dir 'runs/finetune_ucf101_split{split}' --data 'prepared/ucf101_split{split}'

Every T-frame clip of each test video (non-overlapping; the last one padded with the video's
last kept frame) at the run's crop size, softmax averaged per video; clips hold every
data.frame_stride-th frame of the video, as the run's training clips. {split} in --model-dir,
--checkpoint and --data is replaced by each split's number; --split all evaluates the three
splits, each with its own run, and reports their mean and standard deviation.
"""  # noqa: E501 (the usage lines are --help's epilog, verbatim)

import argparse
import sys

from dynamonet_tf.cli.quiet import add_verbose_argument, quiet_unless_verbose

quiet_unless_verbose()  # before TensorFlow loads, which reads its C++ log level once

from dynamonet_tf import evaluation  # noqa: E402
from dynamonet_tf.cli.failures import storage_errors_in_one_line  # noqa: E402
from dynamonet_tf.config import ConfigError  # noqa: E402
from dynamonet_tf.data.integrity import ShardError  # noqa: E402
from dynamonet_tf.data.prepare import PrepareError  # noqa: E402
from dynamonet_tf.runs import RunError, add_run_arguments, run_source  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", required=True, help=f"one of {', '.join(evaluation.DATASETS)}")
    parser.add_argument(
        "--split", default="1", help="1, 2, 3 or all (UCF101, HMDB51, demo; Kinetics-400 has 1)"
    )
    add_run_arguments(
        parser,
        model_dir_help="a train.py run, {split} replaced per split (default: train.py's "
        "folders, runs/finetune_<dataset>_split{split} when split 1's exists, else "
        "runs/joint_<dataset>[_split{split}], e.g. runs/joint_kinetics400)",
        checkpoint_help="a checkpoint prefix, {split} allowed, e.g. "
        "runs/finetune_demo_split{split}/best/ckpt-1000",
    )
    parser.add_argument(
        "--data",
        help="a prepared folder (its test-*.tfrecord; val-* for kinetics400) or a TFRecord glob, "
        "{split} replaced per split (default: the run's data.eval_files; demo: the demo "
        "folder's labeled_split<N>)",
    )
    parser.add_argument(
        "--out",
        help="output folder (default <model-dir>/eval_<dataset>_split<N>; with --split all it "
        "holds summary.json and split<N>/, default eval_<dataset>_splits beside the runs)",
    )
    parser.add_argument(
        "--crops", type=int, default=1, choices=(1, 3), help="1: centre; 3: along the long side"
    )
    parser.add_argument(
        "--clip-stride",
        type=int,
        help="kept frames (after data.frame_stride) between clip starts "
        "(default T: non-overlapping)",
    )
    parser.add_argument(
        "--batch-size", type=int, help="views per batch (default: the run's train.batch_size)"
    )
    parser.add_argument(
        evaluation.ALLOW_MISSING_FLAG,
        action="store_true",
        help="score data holding fewer videos than its manifest.json lists (a shard cut short) "
        "with a warning and the shortfall in metrics.json, instead of refusing it",
    )
    add_verbose_argument(parser)
    return parser.parse_args(argv)


@storage_errors_in_one_line
def main(argv=None):
    args = parse_args(argv)
    quiet_unless_verbose(args.verbose)
    try:
        plans, summary_dir = evaluation.plan_splits(
            args.dataset,
            args.split,
            source=run_source(args, required=False),
            is_checkpoint=args.checkpoint is not None,
            data=args.data,
            out=args.out,
        )
        results = []
        for plan in plans:
            metrics, out_dir = evaluation.evaluate_split(
                plan,
                args.dataset,
                best=args.best,
                num_crops=args.crops,
                clip_stride=args.clip_stride,
                batch_size=args.batch_size,
                allow_missing_videos=args.allow_missing_videos,
            )
            print(f"split {plan.split}: {metrics['checkpoint']} -> {out_dir}/")
            for warning in metrics.get("warnings", ()):
                print(f"WARNING: split {plan.split}: {warning}", file=sys.stderr)
            results.append((plan.split, metrics))
        summary = evaluation.summarise_splits(results) if summary_dir else None
        if summary:
            evaluation.write_summary(summary_dir, summary)
    except (evaluation.EvaluationError, RunError, ConfigError, PrepareError, ShardError) as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit("interrupted: splits already finished keep their files")
    print(evaluation.format_table(args.dataset, results, summary))
    if summary:
        print(f"summary: {summary_dir / 'summary.json'}")


if __name__ == "__main__":
    main()
