"""Full-size check: Hara-format checkpoints of PyTorch networks give PyTorch's features here.

    python -m bench.hara_equivalence --torch-python /tmp/hara_torchenv/bin/python
                                     [--networks resnet18,resnext101] [--frames 16] [--size 112]

tests/test_hara_checkpoint.py checks the same on narrow networks whose files are committed;
this builds the full-size networks, which no fixture could hold (ResNet-18: 33 M parameters,
ResNeXt-101: 48 M), so it is a benchmark-style script and never runs in the tests. It needs
an environment with torch and numpy (torch is not a dependency of the project):

    python -m venv /tmp/hara_torchenv && /tmp/hara_torchenv/bin/pip install torch numpy

For each network (ResNet-18 with shortcut A; ResNeXt-101 with shortcut B, cardinality 32),
that interpreter runs this file with ``--torch-side``: the faithful PyTorch build of Hara's
network in tests/fixtures/make_hara_fixtures.py, with random weights and random BatchNorm
statistics (its ``randomise``), is saved as Hara's ``main.py`` saves it, in the zip format and
in the legacy format, with its eval-mode layer4 features on a random clip of ``--frames`` x
``--size`` x ``--size``. This interpreter (the project's, no torch) loads each file with
``dynamonet_tf.models.load_hara_checkpoint`` into ``build_backbone(name)`` and prints, per
network and format, the max relative error ``max |ours - torch| / max |torch|`` of the
layer4 features against PyTorch's float32 and float64 results, and the seconds the load took.
The files go to a temporary folder, one network at a time (ResNeXt-101: 2 x 194 MB),
deleted as they are checked. On the 2-core development CPU (torch 2.14.1) the PyTorch side
took 44 s (ResNet-18) and 78 s (ResNeXt-101) and a load 1-4 s; the max relative errors were
1.6e-6 (ResNet-18) and 6.0e-6 (ResNeXt-101) against PyTorch's float32 features, 1.8e-6 and
1.6e-5 against its float64 ones, the same for both formats.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_SCRIPT = ROOT / "tests" / "fixtures" / "make_hara_fixtures.py"
NETWORKS = {
    # name: (Hara's constructor and options, our backbone options)
    "resnet18": (("resnet", 18, dict(shortcut_type="A")), dict(shortcut_type="A")),
    "resnext101": (("resnext", 101, dict(shortcut_type="B")), dict(shortcut_type="B")),
}
FORMATS = ("zip", "legacy")


def torch_side(out_dir, name, frames, size, seed):
    """Runs under torch: writes ``<name>_<format>.pth`` and ``<name>.npz`` in ``out_dir``."""
    import numpy as np
    import torch

    spec = importlib.util.spec_from_file_location("make_hara_fixtures", FIXTURE_SCRIPT)
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    (family, depth, options), _ = NETWORKS[name]
    model = getattr(fixtures, family)(depth, **options)
    calibration = [torch.rand(2, 3, frames, size, size, generator=generator) * 2 - 1]
    model = fixtures.randomise(model, calibration, generator)
    clip = torch.rand(1, 3, frames, size, size, generator=generator) * 2 - 1
    outputs = fixtures.expected_outputs(model, clip)
    saved = fixtures.checkpoint(model, f"{family}-{depth}", data_parallel=True, scheduler=False)
    out_dir = Path(out_dir)
    torch.save(saved, out_dir / f"{name}_zip.pth")
    torch.save(saved, out_dir / f"{name}_legacy.pth", _use_new_zipfile_serialization=False)
    np.savez(
        out_dir / f"{name}.npz",
        clip=clip.permute(0, 2, 3, 4, 1).numpy(),
        layer4=outputs["layer4"],
        layer4_float64=outputs["layer4_float64"],
    )
    print(json.dumps({"torch": torch.__version__}))


def relative_error(ours, reference):
    import numpy as np

    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))


def check(torch_python, names, frames, size, seed):
    import numpy as np

    from dynamonet_tf.models import build_backbone, load_hara_checkpoint

    rows = []
    with tempfile.TemporaryDirectory(prefix="hara_equivalence_") as folder:
        for name in names:
            start = time.perf_counter()
            subprocess.run(
                [
                    torch_python,
                    __file__,
                    "--torch-side",
                    folder,
                    "--networks",
                    name,
                    "--frames",
                    str(frames),
                    "--size",
                    str(size),
                    "--seed",
                    str(seed),
                ],
                check=True,
            )
            print(f"{name}: PyTorch build, save and features {time.perf_counter() - start:.0f} s")
            reference = np.load(Path(folder) / f"{name}.npz")
            for file_format in FORMATS:
                path = Path(folder) / f"{name}_{file_format}.pth"
                model = build_backbone(
                    name, input_shape=reference["clip"].shape[1:], **NETWORKS[name][1]
                )
                start = time.perf_counter()
                report = load_hara_checkpoint(model, path)
                seconds = time.perf_counter() - start
                features = model.predict(reference["clip"], verbose=0)
                row = dict(
                    network=name,
                    format=file_format,
                    file_mb=round(path.stat().st_size / 1e6, 1),
                    layers_loaded=len(report.loaded),
                    unused=report.unused,
                    load_seconds=round(seconds, 2),
                    features=list(features.shape),
                    max_relative_error_float32=relative_error(features, reference["layer4"]),
                    max_relative_error_float64=relative_error(
                        features, reference["layer4_float64"]
                    ),
                    torch_float32_vs_float64=relative_error(
                        reference["layer4"], reference["layer4_float64"]
                    ),
                )
                rows.append(row)
                print(json.dumps(row))
                os.remove(path)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--torch-python",
        default=sys.executable,
        help="python of an environment with torch (default: this one)",
    )
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-side", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.networks.split(",")
    unknown = [name for name in names if name not in NETWORKS]
    if unknown:
        sys.exit(f"error: unknown network {unknown[0]!r}; valid: {', '.join(NETWORKS)}")
    if args.torch_side:
        for name in names:
            torch_side(args.torch_side, name, args.frames, args.size, args.seed)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    check(args.torch_python, names, args.frames, args.size, args.seed)


if __name__ == "__main__":
    main()
