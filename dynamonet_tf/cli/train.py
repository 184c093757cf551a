"""Train DynamoNet: ``python train.py --stage pretrain`` (see README.md)."""

import argparse
import sys
from pathlib import Path

from dynamonet_tf.cli.quiet import add_verbose_argument, quiet_unless_verbose

quiet_unless_verbose()  # before TensorFlow loads, which reads its C++ log level once

from dynamonet_tf.cli import CONFIGS_DIR  # noqa: E402
from dynamonet_tf.cli.failures import storage_errors_in_one_line  # noqa: E402
from dynamonet_tf.config import (  # noqa: E402
    ConfigError,
    inherit_architecture,
    load_config,
    override_keys,
)
from dynamonet_tf.data.checks import DataCheckError, training_identity  # noqa: E402
from dynamonet_tf.data.demo_data import with_demo_data  # noqa: E402
from dynamonet_tf.data.prepare import PrepareError  # noqa: E402
from dynamonet_tf.layout import default_run_dir, run_layout  # noqa: E402
from dynamonet_tf.models import is_torch_checkpoint  # noqa: E402
from dynamonet_tf.names import STAGES  # noqa: E402
from dynamonet_tf.runs import RunError, load_run_config  # noqa: E402
from dynamonet_tf.training.run_record import tee_to_log  # noqa: E402
from dynamonet_tf.training.trainer import (  # noqa: E402
    STRATEGIES,
    Trainer,
    TrainingError,
    make_strategy,
)
from dynamonet_tf.video_accuracy import format_top_k  # noqa: E402

DEFAULT_CONFIG = CONFIGS_DIR / "default.yaml"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", choices=STAGES, help="overrides train.stage")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="YAML preset (default: the CPU demo)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. train.batch_size=16 (repeatable)",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="default: runs/<stage>_<dataset>[_split<N>], from data.dataset and data.split or "
        "the training data's manifest.json, e.g. runs/finetune_ucf101_split2",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        help="model dir or checkpoint of an earlier stage, or a Hara et al. 3D-ResNets-PyTorch "
        "checkpoint (.pth) for the backbone",
    )
    parser.add_argument("--strategy", choices=STRATEGIES, default="default")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a run of another config in --model-dir"
    )
    add_verbose_argument(parser)
    return parser.parse_args(argv)


@storage_errors_in_one_line
def main(argv=None):
    args = parse_args(argv)
    quiet_unless_verbose(args.verbose)
    overrides = list(args.overrides) + ([f"train.stage={args.stage}"] if args.stage else [])
    try:
        config = load_config(args.config, overrides)
        if not config.data.train_files:
            config = with_demo_data(config)
        dataset, split = training_identity(config)
        model_dir = args.model_dir or default_run_dir(config.train.stage, dataset, split)
        # What the terminal shows goes to the run's train.log too, progress bars left out.
        with tee_to_log(run_layout(model_dir).train_log):
            init_from = args.init_from
            demo_pretrain = default_run_dir("pretrain", "demo")
            if (
                init_from is None
                and config.train.labeled
                and dataset == "demo"
                and demo_pretrain.exists()
            ):
                # The demo's labeled stages continue from its pretraining, as the README runs them.
                init_from = demo_pretrain
                print(f"--init-from {init_from} (the demo's pretraining; --init-from to change)")
            if init_from is not None and not is_torch_checkpoint(init_from):
                # The architecture of the run started from, unless --set says otherwise: its
                # weights then load whole (a preset's own backbone would leave them unused). A
                # PyTorch checkpoint loads into the configured backbone, or names what disagrees.
                source = load_run_config(init_from)
                config, inherited = inherit_architecture(
                    config, source, keep=override_keys(args.overrides)
                )
                if inherited:
                    print(f"architecture of --init-from {init_from}: {'; '.join(inherited)}")
            trainer = Trainer(
                config,
                model_dir,
                strategy=make_strategy(args.strategy),
                init_from=init_from,
                overwrite=args.overwrite,
                command=sys.argv if argv is None else [sys.argv[0], *argv],
            )
            report = trainer.train()
            print_report(report, model_dir)  # inside, so that train.log holds it too
    except (ConfigError, DataCheckError, TrainingError, PrepareError) as error:
        sys.exit(f"error: {error}")
    except RunError as error:
        sys.exit(f"error: --init-from {error}")
    except FileNotFoundError as error:  # data.train_files / eval_files matching nothing
        sys.exit(f"error: {error} Check data.train_files, data.val_files and data.eval_files.")
    except KeyboardInterrupt:
        sys.exit("interrupted: the last checkpoint is kept; run the same command again to resume")


def print_report(report, model_dir):
    print(f"\n{report['stage']} finished after {report['steps']} steps; model dir {model_dir}")
    fp = report.get("frame_prediction")
    if fp:
        model, baseline = fp["model"], fp["copy_last_frame"]
        print(f"next-frame prediction on {fp['clips']} held-out clips:")
        print(f"  {'':18s}{'FP loss':>10s}{'SSIM':>8s}{'SSIM (Y)':>10s}{'PSNR dB':>9s}")
        for name, scores in (("DynamoNet", model), ("copy last frame", baseline)):
            print(
                f"  {name:18s}{scores['frame_prediction_loss']:10.5f}{scores['ssim']:8.4f}"
                f"{scores['ssim_luma']:10.4f}{scores['psnr']:9.2f}"
            )
    accuracy = report.get("video_accuracy")
    if accuracy:
        # Every class is in per_class, with or without test videos.
        top5 = format_top_k(
            accuracy["video_top5"], 5, len(accuracy["per_class"]), digits=3, percent=False
        )
        print(
            f"video-level accuracy on {accuracy['videos']} test videos "
            f"({accuracy['clips']} clips): "
            f"top-1 {accuracy['video_top1']:.3f}, top-5 "
            f"{top5}, "
            f"clip top-1 {accuracy['clip_top1']:.3f}, "
            f"mean class {accuracy['mean_class_accuracy']:.3f}"
        )


if __name__ == "__main__":
    main()
