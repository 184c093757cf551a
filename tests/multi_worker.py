"""One worker of a 2-process MultiWorkerMirroredStrategy run on 127.0.0.1 (a script: each
worker is its own process, told its role by TF_CONFIG).

    python tests/multi_worker.py DATA_DIR OUT_DIR PORT0 PORT1 INDEX [KEY=VALUE ...]

Writes the worker's final weights to ``OUT_DIR/worker<INDEX>.npz``. dynamonet_tf comes from the
installed package (pip install -e .) or, under pytest, from the PYTHONPATH tests/conftest.py
sets; test_training imports from tests/, the script's folder.
"""

import json
import os
import sys

data_dir, out_dir, port0, port1, index = sys.argv[1:6]
os.environ["TF_CONFIG"] = json.dumps(
    {
        "cluster": {"worker": [f"127.0.0.1:{port0}", f"127.0.0.1:{port1}"]},
        "task": {"type": "worker", "index": int(index)},
    }
)

import numpy as np  # noqa: E402

from dynamonet_tf.training.trainer import Trainer, make_strategy  # noqa: E402
from test_training import tiny_config  # noqa: E402

strategy = make_strategy("multi_worker")
config = tiny_config(data_dir, "joint", "train.epochs=1", *sys.argv[6:])
trainer = Trainer(
    config, os.path.join(out_dir, f"worker{index}"), strategy=strategy, progress=False
)
report = trainer.train()
np.savez(os.path.join(out_dir, f"worker{index}.npz"), *[w.numpy() for w in trainer.model.weights])
print(f"worker {index}: replicas {strategy.num_replicas_in_sync}, steps {report['steps']}")
