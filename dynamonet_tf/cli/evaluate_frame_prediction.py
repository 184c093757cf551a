"""Next-frame prediction of a trained run against copying the last frame (paper Table 3).

    python evaluate_frame_prediction.py --model-dir runs/pretrain_demo [--flow-mask]

Writes per_video.csv, metrics.json and figures/ (the paper's Figure 3) to --out; see
README.md and dynamonet_tf/frame_prediction.py. Clips hold every data.frame_stride-th frame
of a video, as the run trained on.
"""

import argparse
import sys
from pathlib import Path

from dynamonet_tf.cli.quiet import add_verbose_argument, quiet_unless_verbose

quiet_unless_verbose()  # before TensorFlow loads, which reads its C++ log level once

from dynamonet_tf.cli.failures import storage_errors_in_one_line  # noqa: E402
from dynamonet_tf.data.datasets import VIDEO_EXTENSIONS  # noqa: E402
from dynamonet_tf.frame_prediction import (  # noqa: E402
    DEFAULT_FLOW_THRESHOLD,
    RUN_SUBDIR,
    FramePredictionError,
    evaluate_run,
)
from dynamonet_tf.runs import RunError, add_run_arguments, load_run, run_source  # noqa: E402
from dynamonet_tf.text_table import text_table  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(
        parser, checkpoint_help="a checkpoint prefix, e.g. runs/pretrain_demo/checkpoints/ckpt-200"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--data", help="TFRecord glob or prepared folder (default: the run's data.eval_files)"
    )
    source.add_argument(
        "--videos", type=Path, help=f"a folder of video files (*{' *'.join(VIDEO_EXTENSIONS)})"
    )
    parser.add_argument(
        "--out", type=Path, help=f"output folder (default: <model dir>/{RUN_SUBDIR})"
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="clips per model call (default 8)"
    )
    parser.add_argument("--max-clips", type=int, help="stop after this many clips")
    parser.add_argument("--max-videos", type=int, help="only the first this many videos")
    parser.add_argument(
        "--flow-mask", action="store_true", help="also score only the moving area (Mathieu et al.)"
    )
    parser.add_argument(
        "--flow-threshold",
        type=float,
        default=DEFAULT_FLOW_THRESHOLD,
        help="moving: Farneback flow longer than this, in pixels "
        f"(default {DEFAULT_FLOW_THRESHOLD})",
    )
    parser.add_argument(
        "--figures",
        type=int,
        default=4,
        help="Figure 3 images, of the first clip of this many videos (default 4)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    for name in ("batch_size", "max_clips", "max_videos"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; got {value}")
    if args.figures < 0 or args.flow_threshold < 0:
        parser.error("--figures and --flow-threshold must be >= 0")
    return args


@storage_errors_in_one_line
def main(argv=None):
    args = parse_args(argv)
    quiet_unless_verbose(args.verbose)
    try:
        run = load_run(run_source(args), best=args.best)
        metrics, out_dir = evaluate_run(
            run,
            data=args.data,
            videos=args.videos,
            out_dir=args.out,
            batch_size=args.batch_size,
            max_clips=args.max_clips,
            max_videos=args.max_videos,
            flow_threshold=args.flow_threshold if args.flow_mask else None,
            figures=args.figures,
            progress=not args.quiet,
        )
    except (RunError, FramePredictionError) as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit("interrupted: nothing was written")
    print_metrics(metrics, out_dir)


# The printed columns: metrics.json's key of each, and its header (with its unit).
COLUMNS = (
    ("ssim", "SSIM"),
    ("ssim_luma", "SSIM (Y)"),
    ("psnr", "PSNR dB (mean of frames)"),
    ("psnr_of_mean_mse", "PSNR dB (of mean MSE)"),
)
PREDICTORS = (("model", "DynamoNet"), ("copy_last_frame", "copy last frame"))
WHICH_PSNR = (
    "Which PSNR to quote: PSNR dB (mean of frames) to compare with the paper's Table 3, which\n"
    "follows Mathieu et al. (a mean over frames); PSNR dB (of mean MSE) as the robust one, which\n"
    "nearly still frames (whose PSNR is huge for copying the last frame) cannot dominate."
)


def metrics_table(scope, flow_mask):
    """One scope's table (all predicted frames, or frame T+1 only): a row per predictor,
    and with ``flow_mask`` a row per predictor on the moving pixels only."""
    rows = []
    for prefix, suffix in (("", ""), ("masked_", ", moving area")) if flow_mask else (("", ""),):
        for name, label in PREDICTORS:
            row = [label + suffix]
            for key, header in COLUMNS:
                value = scope[name].get(prefix + key)
                row.append(
                    "-" if value is None else f"{value:.2f}" if "PSNR" in header else f"{value:.4f}"
                )
            rows.append(row)
    return text_table(["", *(header for _, header in COLUMNS)], rows)


def print_metrics(metrics, out_dir):
    print(
        f"\n{metrics['checkpoint']}: {metrics['clips']} clips of {metrics['clip_frames']} frames "
        f"{metrics['frame_stride']} apart from {metrics['videos']} videos; results in {out_dir}"
    )
    flow_mask = metrics["flow_mask"]
    for title, scope in (
        ("all predicted frames", metrics),
        ("frame T+1 only", metrics["future_frame"]),
    ):
        print(
            f"{title} ({scope['frames']} frames"
            + (f", {scope['masked_frames']} with motion)" if flow_mask else ")")
        )
        print(metrics_table(scope, flow_mask))
    if flow_mask:
        print(
            f"moving area: pixels whose {flow_mask['method']} flow is longer than "
            f"{flow_mask['threshold_px']} px (Mathieu et al.)"
        )
    print(WHICH_PSNR)


if __name__ == "__main__":
    main()
