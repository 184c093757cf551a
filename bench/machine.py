"""What the benchmark scripts share: the machine line beside every table, and the options
and backbone names of the training-step benchmarks. TensorFlow is imported only where it is
needed, so that the reports (and docs/RESULTS.md) render without it."""

import datetime
import os
import shlex
import sys

# The repository root: results and docs paths are relative to it.
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command_line():
    """The command that runs this script again, as typed in the repository root: the bench
    scripts import ``bench.machine``, so they run as modules (``python -m bench.training``),
    and a recorded ``python bench/training.py`` would no longer run."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is not None:
        return shlex.join(["python", "-m", spec.name] + sys.argv[1:])
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPOSITORY)
    return shlex.join(["python", script] + sys.argv[1:])


def machine():
    """CPU model, usable cores, GPUs if any, library versions; the date, the command line and
    the load averages at start (bench/report.py prints them beside each table)."""
    import keras
    import tensorflow as tf

    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpus = [
        tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
        for gpu in tf.config.list_physical_devices("GPU")
    ]
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "gpus": gpus,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command_line(),
        "load_average_at_start": os.getloadavg(),
    }


def record_end(info):
    """Adds the load averages at the end of the measurements to ``machine()``'s ``info``."""
    info["load_average_at_end"] = os.getloadavg()


def describe(info):
    gpus = f", GPU: {', '.join(info['gpus'])}" if info["gpus"] else ""
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores{gpus}; "
        f"TensorFlow {info['tensorflow']}, Keras {info['keras']}"
    )


# The measured float32 GEMM peak of the 2-core development CPU (docs/DESIGN.md §6).
DEVELOPMENT_CPU_PEAK_GFLOPS = 220.0


def add_utilisation_arguments(parser):
    """``--peak-gflops`` and ``--json``, as the training-step benchmarks take them."""
    parser.add_argument(
        "--peak-gflops",
        type=float,
        default=DEVELOPMENT_CPU_PEAK_GFLOPS,
        help="peak for the utilisation column (default: the float32 GEMM peak of the "
        "2-core development CPU, docs/DESIGN.md §6)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results here")


def backbone_names(parser, text):
    """The comma-separated backbone names of ``text``; an unknown one ends the script."""
    from dynamonet_tf.names import BACKBONES

    names = text.split(",")
    unknown = [name for name in names if name not in BACKBONES]
    if unknown:
        parser.error(f"unknown backbones {', '.join(unknown)}; valid: {', '.join(BACKBONES)}")
    return names
