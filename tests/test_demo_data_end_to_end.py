"""The README's demo command, then the pipelines and a model on what it wrote."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dynamonet_tf.data.demo import DEMO_CLASSES
from dynamonet_tf.data.pipelines import eval_dataset, train_dataset
from dynamonet_tf.models import build_dynamonet

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_prepare_demo_command_feeds_the_pipelines_and_the_model(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(REPO / "data" / "prepare.py"), "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    labeled = json.loads((out / "labeled_split1" / "manifest.json").read_text())
    unlabeled = json.loads((out / "unlabeled" / "manifest.json").read_text())
    assert labeled["classes"] == list(DEMO_CLASSES)
    assert labeled["failures"] == unlabeled["failures"] == 0
    assert set(labeled["subsets"]) == {"train", "holdout", "test"}
    assert (
        sum(labeled["subsets"]["train"]["per_class"].values())
        == labeled["subsets"]["train"]["videos"]
    )
    assert unlabeled["subsets"]["train"]["per_class"] == {"(unlabeled)": 43}
    assert unlabeled["subsets"]["holdout"]["per_class"] == {"(unlabeled)": 5}

    frames, targets = next(
        iter(train_dataset(str(out / "labeled_split1" / "train-*.tfrecord"), batch_size=4, seed=0))
    )
    assert frames.shape == targets["predicted_frames"].shape == (4, 16, 112, 112, 3)
    assert set(np.asarray(targets["logits"])) <= set(range(len(DEMO_CLASSES)))
    np.testing.assert_array_equal(frames[:, 1:], targets["predicted_frames"][:, :-1])

    model = build_dynamonet(
        "joint",
        backbone="resnet10",
        num_classes=len(DEMO_CLASSES),
        width_multiplier=0.125,
        head_filters=8,
    )
    outputs = model(frames)
    assert outputs["logits"].shape == (4, len(DEMO_CLASSES))

    test_videos = labeled["subsets"]["test"]["videos"]
    media_ids = set()
    for _, info in eval_dataset(str(out / "labeled_split1" / "test-*.tfrecord"), batch_size=8):
        media_ids.update(np.asarray(info["media_id"]).tolist())
    assert len(media_ids) == test_videos
