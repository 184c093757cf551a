"""Export a trained run as a SavedModel that serves raw uint8 video (see README.md).

    python export.py --model-dir runs/finetune_demo_split1      # to exported/finetune_demo_split1/1

Label names come from --labels, else from the manifest.json of the run's prepared data. The
export keeps the run's data.frame_stride: clients give video at its native frame rate and the
export keeps every data.frame_stride-th frame, as in training and evaluation.
"""

import argparse
import sys
from pathlib import Path

from dynamonet_tf.cli.quiet import add_verbose_argument, quiet_unless_verbose

quiet_unless_verbose()  # before TensorFlow loads, which reads its C++ log level once

from dynamonet_tf.cli.failures import storage_errors_in_one_line  # noqa: E402
from dynamonet_tf.config import ConfigError  # noqa: E402
from dynamonet_tf.data.clips import decode_short_side  # noqa: E402
from dynamonet_tf.data.prepare import PrepareError  # noqa: E402
from dynamonet_tf.export import export_saved_model  # noqa: E402
from dynamonet_tf.inference import InferenceError, run_label_names  # noqa: E402
from dynamonet_tf.layout import default_export_dir, run_dir_of  # noqa: E402
from dynamonet_tf.ownership import (  # noqa: E402
    OwnershipError,
    check_outputs_not_inputs,
    check_replaceable,
)
from dynamonet_tf.runs import (  # noqa: E402
    RunError,
    add_run_arguments,
    load_run,
    run_inputs,
    run_source,
)

DEFAULT_TOP_K = 5


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        help="the export directory to create (default: exported/<run folder name>/1, the "
        "layout TensorFlow Serving reads)",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="class names, one a line (default: the manifest.json of the run's data)",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        help=f"classes serving_default returns (default {DEFAULT_TOP_K}, or all classes if fewer)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing export in --out"
    )
    add_verbose_argument(parser)
    return parser.parse_args(argv)


@storage_errors_in_one_line
def main(argv=None):
    args = parse_args(argv)
    quiet_unless_verbose(args.verbose)
    try:
        source = run_source(args)
        if args.out is None:
            args.out = default_export_dir(run_dir_of(source))
        # Before any work: --out replaces only an export, never a run or an input.
        check_outputs_not_inputs(
            [("--out", args.out)],
            [*run_inputs(args), ("--labels", args.labels)],
        )
        check_replaceable(args.out, "export", args.overwrite, name=f"--out {args.out}")
        run = load_run(source, best=args.best)
        config = run.config
        if not config.train.labeled and (args.labels is not None or args.top_k is not None):
            raise InferenceError(
                f"{run.checkpoint} is a pretrain model without classes: "
                "leave out --labels and --top-k."
            )
        label_names, label_source = run_label_names(config, args.labels)
        if config.train.labeled and label_names is None:
            print(
                "warning: no label names (no manifest.json with classes beside data.eval_files "
                "or data.train_files, and no --labels); the export names classes by index.",
                file=sys.stderr,
            )
        top_k = args.top_k
        if top_k is None and config.train.labeled:
            top_k = min(DEFAULT_TOP_K, config.data.num_classes)
        metadata = export_saved_model(
            run.model,
            args.out,
            config.data,
            label_names=label_names,
            top_k=top_k,
            backbone=config.model.backbone,
            decode_short_side=decode_short_side(config.data),
            overwrite=args.overwrite,
        )
    except (InferenceError, RunError, ConfigError, PrepareError, OwnershipError) as error:
        sys.exit(f"error: {error}")
    except FileExistsError as error:  # --out changed since it was checked
        sys.exit(f"error: {error}")
    except ValueError as error:  # an argument export_saved_model refuses, such as --top-k
        sys.exit(f"error: {error}")
    print(f"exported the {metadata['model_kind']} model of {run.checkpoint} to {args.out}")
    print(f"  signatures: {', '.join(metadata['signatures'])}")
    print(
        f"  clips of {metadata['num_frames']} frames {metadata['frame_stride']} apart (input: "
        f"{metadata['input']['shape'][1]} frames at the native rate), short side "
        f"{metadata['short_side']}, centre crop {metadata['crop_size']}"
    )
    if label_names is not None:
        print(f"  {len(label_names)} label names from {label_source}")


if __name__ == "__main__":
    main()
