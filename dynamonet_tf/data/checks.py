"""A config checked against the data it names, before a run builds or writes anything.

Every mistake that the prepared files can reveal is named here, with the config key and the
valid values, instead of at step 1 (a raw TensorFlow error) or at the end of a run (a
traceback in the end-of-run accuracy): patterns matching no file, the class count, dataset,
split, short side and clip length against each ``manifest.json``, train / val / eval data
of different datasets, splits or class lists, and a labeled stage on unlabeled videos.
"""

from dynamonet_tf.config import (
    DATA_FILE_FIELDS,
    ConfigError,
    check_against_data,
    check_short_side,
    prepared_identity,
)
from dynamonet_tf.data.integrity import ShardError, reading_shards
from dynamonet_tf.data.pipelines import first_video, list_files
from dynamonet_tf.data.prepare import read_manifest
from dynamonet_tf.names import UNLABELED


class DataCheckError(ValueError):
    """The config and its data disagree; the message names the key and the valid values."""


def data_manifests(config):
    """``{field: manifest or None}`` for each data file field the config sets
    (``train_files``, ``val_files``, ``eval_files``).

    Raises:
        DataCheckError: a pattern that matches no file.
        PrepareError: a manifest that cannot be read.
    """
    manifests = {}
    for field in DATA_FILE_FIELDS:
        pattern = getattr(config.data, field)
        if not pattern:
            continue
        try:
            files = list_files(pattern)
        except FileNotFoundError:
            raise DataCheckError(
                f"data.{field} {pattern!r} matches no files; give a glob of TFRecord shards "
                "written by data/prepare.py, e.g. prepared/ucf101_split1/"
                f"{_SUBSET[field]}-*.tfrecord."
            ) from None
        manifests[field] = read_manifest(files)
    return manifests


_SUBSET = {"train_files": "train", "val_files": "holdout", "eval_files": "test"}


def training_identity(config, manifests=None):
    """``(dataset, split)`` the run trains on: ``data.dataset`` / ``data.split`` when set,
    else what the training data's manifest says (None when it has none)."""
    if manifests is None:
        manifests = data_manifests(config)
    manifest = manifests.get("train_files")
    dataset, split = prepared_identity(manifest) if manifest else (None, None)
    return config.data.dataset or dataset, config.data.split or split


def check_training_data(config):
    """Refuses a config its data cannot serve (see the module docstring); returns the
    manifests (:func:`data_manifests`).

    Raises:
        DataCheckError: naming the key, the file and what would be valid.
    """
    manifests = data_manifests(config)
    for field, manifest in manifests.items():
        if manifest is None:
            continue
        try:
            if field == "train_files":
                check_against_data(config, manifest)
            else:
                check_short_side(config, manifest)
        except ConfigError as error:
            raise DataCheckError(f"data.{field} {getattr(config.data, field)}: {error}") from None
    if config.train.labeled:
        _check_same_labels(config, manifests)
        _check_labeled_videos(config)
    return manifests


def _check_same_labels(config, manifests):
    """A labeled run's validation and test data must be of its training data's dataset,
    split and classes: else validation picks checkpoints on another task, or the test
    videos overlap the training videos of another split."""
    train = manifests.get("train_files")
    if train is None:
        return
    identity = prepared_identity(train)
    for field in ("val_files", "eval_files"):
        other = manifests.get(field)
        if other is None:
            continue
        pattern = getattr(config.data, field)
        other_identity = prepared_identity(other)
        if other_identity != identity:
            raise DataCheckError(
                f"data.{field} {pattern!r} is {_described(other_identity)} but data.train_files "
                f"{config.data.train_files!r} is {_described(identity)}; point data.{field} "
                "at the same prepared dataset and split as the training data."
            )
        if (other.get("classes") or []) != (train.get("classes") or []):
            raise DataCheckError(
                f"data.{field} {pattern!r} lists other classes than data.train_files "
                f"{config.data.train_files!r} (their manifest.json); prepare both from the "
                "same class list."
            )


def _described(identity):
    dataset, split = identity
    return f"{dataset}" + (f" split {split}" if split is not None else "")


def _check_labeled_videos(config):
    """A labeled stage on unlabeled videos, by a look at the first video (the pipeline's
    check would stop the first step, naming nothing)."""
    try:
        with reading_shards(config.data.train_files):
            video = first_video(config.data.train_files)
    except ShardError as error:
        raise DataCheckError(str(error)) from None
    if video is not None and int(video["label"]) >= config.data.num_classes:
        raise DataCheckError(
            f"data.num_classes is {config.data.num_classes} but the first video of "
            f"data.train_files {config.data.train_files} has label index {int(video['label'])}; "
            "set data.num_classes to the dataset's class count."
        )
    if video is not None and int(video["label"]) == UNLABELED:
        raise DataCheckError(
            f"train.stage {config.train.stage!r} learns from labels, but the videos of "
            f"data.train_files {config.data.train_files} are unlabeled (the first, "
            f"{video['media_id'].numpy().decode() or 'unnamed'}, has none): pretrain on "
            "them (--stage pretrain) or give a labeled dataset prepared by data/prepare.py."
        )
