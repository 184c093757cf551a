"""The built-in demo data of the default run: generated and prepared on first use."""

import dataclasses
from pathlib import Path

from dynamonet_tf.data.datasets import HOLDOUT
from dynamonet_tf.data.prepare import PrepareError, prepare_demo

DEMO_DATA_DIR = Path("data") / "demo"


def with_demo_data(config, data_dir=DEMO_DATA_DIR):
    """``config`` with its missing data paths pointing at the prepared demo set.

    Pretraining reads the unlabeled clips and validates on their holdout; the labeled
    stages read split 1 of the labeled set and validate on its holdout of training videos.
    Every stage reports on the labeled set's test videos (labels unused by pretraining).
    """
    data_dir = Path(data_dir)
    labeled = data_dir / "labeled_split1"
    if not (labeled / "manifest.json").exists() or not (data_dir / "unlabeled" / "manifest.json").exists():
        print(f"preparing the demo dataset in {data_dir} (once)")
        prepare_demo(data_dir)
    training = data_dir / ("unlabeled" if config.train.stage == "pretrain" else "labeled_split1")
    if config.data.val_files is None and not list(training.glob(f"{HOLDOUT}-*.tfrecord")):
        raise PrepareError(
            f"{training} has no {HOLDOUT}-*.tfrecord: the demo there was prepared before "
            f"validation moved to a holdout of the training videos. Remove {data_dir} and run "
            "again to prepare it anew."
        )
    data = dataclasses.replace(
        config.data,
        train_files=config.data.train_files or str(training / "train-*.tfrecord"),
        val_files=config.data.val_files or str(training / f"{HOLDOUT}-*.tfrecord"),
        eval_files=config.data.eval_files or str(labeled / "test-*.tfrecord"),
    )
    return dataclasses.replace(config, data=data)
