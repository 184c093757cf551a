"""The machine line printed beside every benchmark table."""

import os

import keras
import tensorflow as tf


def machine():
    """CPU model, usable cores, GPUs if any, and library versions."""
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
    }


def describe(info):
    gpus = f", GPU: {', '.join(info['gpus'])}" if info["gpus"] else ""
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores{gpus}; "
        f"TensorFlow {info['tensorflow']}, Keras {info['keras']}"
    )
