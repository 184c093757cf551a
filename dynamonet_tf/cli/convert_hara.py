"""Convert a Hara et al. Kinetics checkpoint (3D-ResNets-PyTorch) into Keras backbone weights.

    dynamonet-convert-hara --checkpoint resnext-101-kinetics.pth --backbone resnext101
    python -m dynamonet_tf.cli.convert_hara --checkpoint r3d18_K_200ep.pth --backbone resnet18 \\
        --out r3d18.weights.h5

The file is read without PyTorch (dynamonet_tf/models/hara.py); its architecture (shortcut
type, width, conv1's temporal size, cardinality) is read from its tensors and must be the one
``--backbone`` names. The output, ``--out`` (default: the checkpoint's name with
``.weights.h5``), holds the backbone's weights for
``build_backbone(<backbone>, <options printed>).load_weights(<out>)``; the classifier ``fc``
is left out. ``--out`` is written whole or not at all, and an existing file is replaced only
with ``--overwrite``.
"""

import argparse
import sys
from pathlib import Path

from dynamonet_tf.cli.quiet import add_verbose_argument, quiet_unless_verbose

quiet_unless_verbose()  # before TensorFlow loads, which reads its C++ log level once

from dynamonet_tf.atomic_files import atomic_write_with, temporary_path  # noqa: E402
from dynamonet_tf.cli.failures import storage_errors_in_one_line  # noqa: E402
from dynamonet_tf.config import ConfigError, DataConfig  # noqa: E402
from dynamonet_tf.models import (  # noqa: E402
    HaraCheckpointError,
    build_backbone,
    hara_architecture,
    load_hara_checkpoint,
    read_hara_state_dict,
)
from dynamonet_tf.models.hara import NOT_IN_FILE  # noqa: E402
from dynamonet_tf.names import BACKBONES  # noqa: E402

WEIGHTS_SUFFIX = ".weights.h5"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", type=Path, required=True, metavar="FILE.pth", help="Hara's checkpoint"
    )
    parser.add_argument(
        "--backbone",
        required=True,
        choices=[name for name in BACKBONES if not name.startswith("stc_")],
        metavar="NAME",
        help="the backbone the file must hold: resnet10/18/34/50/101/152, resnext50/101/152",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE.weights.h5",
        help="the Keras weights file to write (default: the checkpoint's name, .weights.h5)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    checks = parser.add_argument_group(
        "expected options (default: as read from the file; a value that disagrees is an error)"
    )
    checks.add_argument("--shortcut-type", choices=("A", "B"))
    checks.add_argument("--width-multiplier", type=float)
    checks.add_argument("--conv1-t-size", type=int)
    checks.add_argument("--cardinality", type=int)
    add_verbose_argument(parser)
    return parser.parse_args(argv)


def default_out(checkpoint: Path) -> Path:
    stem = checkpoint.stem if checkpoint.suffix in (".pth", ".pt", ".tar", ".ckpt") else None
    return checkpoint.with_name(f"{stem or checkpoint.name}{WEIGHTS_SUFFIX}")


def _options_text(options):
    return ", ".join(f"{key}={value!r}" for key, value in options.items())


@storage_errors_in_one_line
def main(argv=None):
    args = parse_args(argv)
    quiet_unless_verbose(args.verbose)
    out = args.out if args.out is not None else default_out(args.checkpoint)
    try:
        if not out.name.endswith(WEIGHTS_SUFFIX):
            raise ValueError(f"--out {out} must end with {WEIGHTS_SUFFIX} (Keras weights)")
        if out.exists() and not args.overwrite:
            raise FileExistsError(f"--out {out} exists; pass --overwrite to replace it")
        if out.resolve() == args.checkpoint.resolve():
            raise ValueError(f"--out {out} is the checkpoint itself")
        state = read_hara_state_dict(args.checkpoint)
        architecture = hara_architecture(state)
        options = dict(architecture["options"])
        for key in ("shortcut_type", "width_multiplier", "conv1_t_size", "cardinality"):
            value = getattr(args, key)
            if value is not None:
                options[key] = value
        if not args.backbone.startswith("resnext"):
            options.pop("cardinality", None)
        channels = architecture["input_channels"]
        model = build_backbone(
            args.backbone,
            input_shape=DataConfig().clip_shape[:3] + (channels,),
            **options,
        )
        report = load_hara_checkpoint(model, args.checkpoint)
        atomic_write_with(
            out,
            lambda temporary: model.save_weights(temporary),
            # Keras names the format by the suffix: the temporary name keeps it.
            temporary=Path(f"{temporary_path(out)}{WEIGHTS_SUFFIX}"),
        )
    except (HaraCheckpointError, ConfigError, ValueError, FileExistsError) as error:
        sys.exit(f"error: {error}")
    print(
        f"converted {args.checkpoint} ({args.backbone}: {_options_text(options)}; "
        f"{len(report.loaded)} layers) to {out}"
    )
    if report.unused:
        print(f"  not converted: {', '.join(report.unused)}")
    build = ", ".join([repr(args.backbone)] + [f"{k}={v!r}" for k, v in options.items()])
    print(f"  load with: build_backbone({build}).load_weights({str(out)!r})")
    print(
        f"  {' and '.join(NOT_IN_FILE)} are not in the file: set them as the network was "
        "trained (the defaults of Hara's code: 1 and False)"
    )


if __name__ == "__main__":
    main()
