"""Recognise the actions in video files with a DynamoNet export or training run (see README.md).

    python predict.py walk.mp4 jump.avi --export exported/dynamonet
    python predict.py walk.mp4 --model-dir runs/joint_demo_split1 --frames-out walk_frames.mp4

Every non-overlapping clip of T frames is classified and the clips' probabilities averaged;
the clips hold every data.frame_stride-th frame of the video, as the run trained on (an export
records its run's stride).
"""

import argparse
import json
import sys
from pathlib import Path

from dynamonet_tf.cli.quiet import add_verbose_argument, quiet_unless_verbose

quiet_unless_verbose()  # before TensorFlow loads, which reads its C++ log level once

from dynamonet_tf.cli.failures import storage_errors_in_one_line  # noqa: E402
from dynamonet_tf.config import ConfigError  # noqa: E402
from dynamonet_tf.data.prepare import PrepareError  # noqa: E402
from dynamonet_tf.inference import (  # noqa: E402
    DEFAULT_FPS,
    FRAME_FORMATS,
    ExportedModel,
    InferenceError,
    RunModel,
    predict_video,
    read_video,
    run_label_names,
    write_frames,
)
from dynamonet_tf.ownership import OwnershipError, check_outputs_not_inputs  # noqa: E402
from dynamonet_tf.runs import (  # noqa: E402
    RunError,
    add_run_arguments,
    load_run,
    run_inputs,
    run_source,
)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("videos", nargs="+", type=Path, metavar="VIDEO")
    parser.add_argument(
        "--export", type=Path, metavar="DIR", help="a SavedModel written by export.py"
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="class names, one a line, for a run (default: the manifest.json of its data)",
    )
    parser.add_argument("--top-k", type=int, default=5, help="actions to print (default 5)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON list, an object per video"
    )
    parser.add_argument(
        "--frames-out",
        type=Path,
        metavar="PATH",
        help="write true | predicted next frames as .mp4 or .gif (with several "
        "videos, PATH gets each video's name: frames-<video>.mp4)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="clips per model call (default 8)"
    )
    add_verbose_argument(parser)
    return parser.parse_args(argv)


@storage_errors_in_one_line
def main(argv=None):
    args = parse_args(argv)
    quiet_unless_verbose(args.verbose)
    if args.top_k < 1 or args.batch_size < 1:
        sys.exit("error: --top-k and --batch-size must be at least 1.")
    try:
        frames_out = frames_out_paths(args.frames_out, args.videos)
        check_outputs_not_inputs(
            [("--frames-out", path) for path in (frames_out or {}).values()],
            [("video", video) for video in args.videos]
            + [("--export", args.export), *run_inputs(args), ("--labels", args.labels)],
        )
        model = load_model(args)
    except (InferenceError, RunError, ConfigError, PrepareError, OwnershipError) as error:
        sys.exit(f"error: {error}")
    if not model.classifies and args.frames_out is None:
        sys.exit(
            f"error: {model.source} is a pretrain model without a classifier: it only "
            "predicts frames; pass --frames-out PATH.mp4|.gif to write them."
        )
    if args.frames_out is not None and not model.predicts_frames:
        sys.exit(
            f"error: {model.source} is a classifier model without a frame-prediction branch; "
            "--frames-out needs a joint or pretrain model."
        )

    reports, failures = [], []
    for video in args.videos:
        try:
            frames, fps = read_video(video, model.decode_short_side)
            prediction = predict_video(
                model, frames, with_frames=frames_out is not None, batch_size=args.batch_size
            )
            if frames_out is not None:
                # Every frame_stride-th frame is written: at fps / stride they play in real time.
                write_frames(
                    frames_out[video],
                    prediction.true_frames,
                    prediction.predicted_frames,
                    (fps or DEFAULT_FPS) / model.frame_stride,
                )
        except InferenceError as error:
            failures.append(f"error: {error}")
            reports.append({"video": str(video), "error": str(error)})
            # With several videos each failure is reported as it happens; the exit message sums up.
            if len(args.videos) > 1:
                print(failures[-1], file=sys.stderr)
            continue
        frames_path = frames_out[video] if frames_out is not None else None
        report = video_report(video, prediction, model, args.top_k, frames_path)
        reports.append(report)
        if not args.json:
            print_report(report, model)
    if args.json:
        print(json.dumps(reports, indent=2))
    if failures:
        sys.exit(
            failures[0]
            if len(args.videos) == 1
            else f"error: {len(failures)} of {len(args.videos)} videos could not be predicted "
            "(see above)."
        )


def load_model(args):
    """The ExportedModel of --export or the RunModel of --model-dir / --checkpoint."""
    run_options = args.model_dir is not None or args.checkpoint is not None or args.best
    if args.export is not None:
        if run_options or args.labels is not None:
            raise InferenceError(
                "--export takes no --model-dir, --checkpoint, --best or --labels "
                "(an export holds its weights and label names)."
            )
        return ExportedModel(args.export)
    if not run_options:
        raise InferenceError(
            "pass --export DIR (from export.py) or --model-dir DIR (a train.py run)."
        )
    run = load_run(run_source(args), best=args.best)
    label_names, _ = run_label_names(run.config, args.labels)
    if label_names is None and run.config.train.labeled:
        print(
            "warning: no label names (no manifest.json with classes beside data.eval_files "
            "or data.train_files, and no --labels); classes are named by index.",
            file=sys.stderr,
        )
    return RunModel(run, label_names)


def frames_out_paths(frames_out, videos):
    """{video: output path}, or None without --frames-out. Several videos get PATH with
    each video's name added: frames.mp4 -> frames-walk.mp4."""
    if frames_out is None:
        return None
    if frames_out.suffix.lower() not in FRAME_FORMATS:
        raise InferenceError(f"--frames-out {frames_out}: frames are written as .mp4 or .gif.")
    if len(videos) == 1:
        return {videos[0]: frames_out}
    paths = {
        video: frames_out.with_name(f"{frames_out.stem}-{video.stem}{frames_out.suffix}")
        for video in videos
    }
    if len(set(paths.values())) < len(videos):
        raise InferenceError(
            "--frames-out with several videos names each output after its "
            "video, so the videos need different names; predict them one at a "
            "time."
        )
    return paths


def video_report(video, prediction, model, top_k, frames_path):
    """The JSON-ready result of one video."""
    report = {
        "video": str(video),
        "frames": prediction.num_frames,
        "clips": prediction.num_clips,
        "clip_frames": model.num_frames,
        "frame_stride": model.frame_stride,
        "top_k": None,
        "probabilities": None,
    }
    if model.classifies:
        report["top_k"] = [
            {"label": label, "probability": probability}
            for label, probability in prediction.top_k(top_k)
        ]
        report["probabilities"] = prediction.probabilities.tolist()  # in class-index order
    if frames_path is not None:
        report["frames_out"] = {
            "path": str(frames_path),
            "frames": len(prediction.predicted_frames),
        }
    return report


def print_report(report, model):
    every = f" (frames {report['frame_stride']} apart)" if report["frame_stride"] > 1 else ""
    print(
        f"{report['video']}: {report['frames']} frames, {report['clips']} clips of "
        f"{report['clip_frames']}{every}"
    )
    if report["top_k"] is None:
        print(f"  no classifier ({model.kind} model): no action scores")
    else:
        width = max(len(entry["label"]) for entry in report["top_k"])
        for rank, entry in enumerate(report["top_k"], 1):
            print(f"  {rank}. {entry['label']:{width}s}  {entry['probability']:.3f}")
    if "frames_out" in report:
        written = report["frames_out"]
        print(f"  next frames (true | predicted): {written['path']} ({written['frames']} frames)")


if __name__ == "__main__":
    main()
