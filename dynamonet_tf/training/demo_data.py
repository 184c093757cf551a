"""The built-in demo data of the default run: generated and prepared on first use."""

import dataclasses
from pathlib import Path

from dynamonet_tf.data.prepare import prepare_demo

DEMO_DATA_DIR = Path("data") / "demo"


def with_demo_data(config, data_dir=DEMO_DATA_DIR):
    """``config`` with its missing data paths pointing at the prepared demo set.

    Pretraining reads the unlabeled clips and is evaluated on the labeled set's held-out
    (test) videos, labels unused; the labeled stages read split 1 of the labeled set.
    """
    data_dir = Path(data_dir)
    labeled = data_dir / "labeled_split1"
    if not (labeled / "manifest.json").exists() or not (data_dir / "unlabeled" / "manifest.json").exists():
        print(f"preparing the demo dataset in {data_dir} (once)")
        prepare_demo(data_dir)
    train_files = data_dir / ("unlabeled" if config.train.stage == "pretrain" else "labeled_split1") / "train-*.tfrecord"
    data = dataclasses.replace(
        config.data,
        train_files=config.data.train_files or str(train_files),
        eval_files=config.data.eval_files or str(labeled / "test-*.tfrecord"),
    )
    return dataclasses.replace(config, data=data)
