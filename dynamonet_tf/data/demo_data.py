"""The built-in demo data, generated and prepared on first use (docs/DESIGN.md §7).

Where it lives is :class:`dynamonet_tf.layout.DemoLayout` (``data/demo`` of the checkout): the
generated videos, the unlabeled clips prepared for pretraining and the labeled set of each
split prepared for the labeled stages and evaluation, each with its holdout.
"""

import dataclasses

from dynamonet_tf.data.prepare import PrepareError, prepare_demo
from dynamonet_tf.layout import DEMO_DATA_DIR, HOLDOUT, TEST, TRAIN, demo_layout, shards


def ensure_demo(root=DEMO_DATA_DIR, split=1, **prepare_options):
    """The :class:`~dynamonet_tf.layout.DemoLayout` under ``root``, generating and preparing
    the demo first when split ``split`` is not complete (``prepare_options``: those of
    :func:`~dynamonet_tf.data.prepare.prepare_demo`)."""
    demo = demo_layout(root)
    if not demo.is_prepared(split):
        print(f"preparing the demo dataset, split {split}, in {demo.root} (once)", flush=True)
        prepare_demo(demo.root, split=split, **prepare_options)
    return demo


def demo_test_files(split, root=DEMO_DATA_DIR):
    """The demo's test shards of ``split``; generates and prepares the demo if absent."""
    return shards(ensure_demo(root, split).labeled(split), TEST)


def with_demo_data(config, root=DEMO_DATA_DIR):
    """``config`` with its missing data paths pointing at the prepared demo set.

    Pretraining reads the unlabeled clips and validates on their holdout; the labeled
    stages read split ``data.split`` (default 1) of the labeled set, preparing it first when
    absent, and validate on its holdout of training videos. Every stage reports on that
    split's test videos (labels unused by pretraining).

    Raises:
        PrepareError: a demo folder prepared before the holdout existed (nothing is removed).
    """
    split = config.data.split or 1
    demo = ensure_demo(root, split)
    training = demo.unlabeled if config.train.stage == "pretrain" else demo.labeled(split)
    if config.data.val_files is None and not list(training.glob(f"{HOLDOUT}-*.tfrecord")):
        raise PrepareError(
            f"{training} has no {HOLDOUT}-*.tfrecord: the demo there was prepared before "
            f"validation moved to a holdout of the training videos. Remove {demo.root} and run "
            "again to prepare it anew."
        )
    data = dataclasses.replace(
        config.data,
        train_files=config.data.train_files or shards(training, TRAIN),
        val_files=config.data.val_files or shards(training, HOLDOUT),
        eval_files=config.data.eval_files or shards(demo.labeled(split), TEST),
    )
    return dataclasses.replace(config, data=data)
