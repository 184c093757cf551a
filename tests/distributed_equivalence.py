"""Runs a tiny joint training on one device, then mirrored over 2 logical CPUs (a script:
logical devices must be configured before TensorFlow starts, so it runs in its own process).

    python tests/distributed_equivalence.py DATA_DIR OUT_DIR [KEY=VALUE ...]

Both runs start from the same seed, so from the same initial weights; each saves its weights
before and after training and its validation loss as ``OUT_DIR/<name>[_initial].npz``.
dynamonet_tf comes from the installed package (pip install -e .) or, under pytest, from the
PYTHONPATH tests/conftest.py sets; test_training imports from tests/, the script's folder.
"""

import os
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from dynamonet_tf.training.trainer import Trainer  # noqa: E402
from test_training import tiny_config  # noqa: E402

data_dir, out_dir = sys.argv[1], sys.argv[2]
config = tiny_config(
    data_dir, "joint", "train.epochs=1", "model.sync_batch_norm=true", *sys.argv[3:]
)
for name, strategy in (
    ("one_device", tf.distribute.OneDeviceStrategy("/cpu:0")),
    ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
):
    trainer = Trainer(config, os.path.join(out_dir, name), strategy=strategy, progress=False)
    np.savez(
        os.path.join(out_dir, f"{name}_initial.npz"), *[w.numpy() for w in trainer.model.weights]
    )
    report = trainer.train()
    np.savez(
        os.path.join(out_dir, f"{name}.npz"),
        *[w.numpy() for w in trainer.model.weights],
        loss=report["val_loss"],
    )
print("replicas", trainer.strategy.num_replicas_in_sync)
