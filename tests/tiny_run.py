"""A tiny labeled dataset and a tiny config: whole training runs in seconds, for tests."""

import numpy as np
import tensorflow as tf

from dynamonet_tf.config import load_config
from dynamonet_tf.data.schema import encode_video_example
from synthetic import translation_clips


def write_tiny_data(root):
    """Labeled TFRecords of panning textures in ``root`` (class = pan direction, 8 classes):
    ``train-00000-of-00001.tfrecord`` (12 videos), ``test-00000-of-00001.tfrecord``
    (4 videos) and ``holdout-00000-of-00001.tfrecord`` (2 videos, for validation), 20 frames
    of 40 x 40 each. Returns ``root``."""
    clips, labels = translation_clips(18, 20, 40, seed=3)
    for subset, indices in (
        ("train", range(0, 12)),
        ("test", range(12, 16)),
        ("holdout", range(16, 18)),
    ):
        with tf.io.TFRecordWriter(str(root / f"{subset}-00000-of-00001.tfrecord")) as writer:
            for i in indices:
                jpegs = [
                    tf.io.encode_jpeg(tf.constant((f * 255).astype(np.uint8)), quality=95).numpy()
                    for f in clips[i]
                ]
                writer.write(
                    encode_video_example(jpegs, int(labels[i]), f"dir{labels[i]}", f"video{i}")
                )
    return root


def tiny_overrides(data_dir, stage="pretrain"):
    """The ``--set`` overrides of :func:`tiny_config`, for a command line."""
    return [
        f"train.stage={stage}",
        f"data.train_files={data_dir}/train-*.tfrecord",
        f"data.val_files={data_dir}/holdout-*.tfrecord",
        f"data.eval_files={data_dir}/test-*.tfrecord",
        "data.num_classes=8",
        "data.num_frames=8",
        "data.crop_size=32",
        "data.short_side=32",
        "data.shuffle_buffer=4",
        "model.backbone=resnet10",
        "model.width_multiplier=0.125",
        "model.head_filters=8",
        "model.ar_units=16",
        "model.dmr_units=16",
        "train.batch_size=4",
        "train.epochs=2",
        "train.steps_per_epoch=3",
        "train.checkpoint_every_steps=2",
        "train.deterministic=true",
        "train.eval_steps=1",
    ]


def tiny_config(data_dir, stage="pretrain", *overrides):
    """A config of a ResNet-10 at 1/8 width on 8 frames of 32 x 32, 2 epochs of 3 steps."""
    return load_config(None, [*tiny_overrides(data_dir, stage), *overrides])
