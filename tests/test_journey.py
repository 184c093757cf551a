"""The README's "whole journey on the demo", run as written (bash), at tiny settings.

The commands are read from README.md between ``<!-- journey:start -->`` and
``<!-- journey:end -->``; only ``train.py`` gets extra ``--set`` overrides (a tiny demo and a
few steps), by a shell function that wraps ``python``. The demo is a tiny one, prepared
beforehand for the three splits and found through ``$DYNAMONET_DEMO_DIR``, and the commands
run in an empty folder that links the checkout's scripts and presets, so ``runs/`` and
``exported/`` are the journey's own.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dynamonet_tf.data.demo_data import ensure_demo
from dynamonet_tf.data.prepare import PrepareOptions
from dynamonet_tf.layout import DEMO_DIR_VARIABLE

REPO = Path(__file__).resolve().parents[1]
# A tiny demo: 3 videos per class (train, holdout, test), 12 frames of 32 x 32.
JOURNEY_DEMO = {"unlabeled_videos": 4, "videos_per_class": 3, "num_frames": 12, "size": (32, 32)}
# A few steps of the demo model on 32 x 32 frames, 8 to a clip.
TINY_TRAINING = (
    "data.short_side=32",
    "data.crop_size=32",
    "data.num_frames=8",
    "train.epochs=1",
    "train.steps_per_epoch=2",
    "train.checkpoint_every_steps=2",
    "train.batch_size=4",
    "train.eval_steps=1",
)


def journey_commands():
    readme = (REPO / "README.md").read_text()
    block = re.search(
        r"<!-- journey:start -->\n```bash\n(.*?)```\n<!-- journey:end -->", readme, re.S
    )
    assert block, "README.md lost its journey block"
    return block.group(1)


@pytest.mark.slow
def test_the_readme_journey_runs_from_pretraining_to_the_served_export(tmp_path):
    demo = tmp_path / "data" / "demo"
    for split in (1, 2, 3):
        ensure_demo(
            demo,
            split,
            demo_options=JOURNEY_DEMO,
            options=PrepareOptions(short_side=32),
            workers=0,
            progress=False,
        )
    work = tmp_path / "work"
    work.mkdir()
    for name in ("train.py", "evaluate.py", "export.py", "predict.py", "configs"):
        (work / name).symlink_to(REPO / name)
    (work / "data").symlink_to(tmp_path / "data")
    overrides = " ".join(f"--set {override}" for override in TINY_TRAINING)
    script = (
        "set -euo pipefail\n"
        f'python() {{ if [ "$1" = train.py ]; then command {sys.executable} "$@" {overrides}; '
        f'else command {sys.executable} "$@"; fi; }}\n' + journey_commands()
    )
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=work,
        env={**os.environ, DEMO_DIR_VARIABLE: str(demo)},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr

    runs = work / "runs"
    assert sorted(path.name for path in runs.iterdir()) == [
        "eval_demo_splits",
        "finetune_demo_split1",
        "finetune_demo_split2",
        "finetune_demo_split3",
        "pretrain_demo",
    ]
    for split in (1, 2, 3):
        run = runs / f"finetune_demo_split{split}"
        init = json.loads((run / "init_report.json").read_text())
        assert init["source"].startswith("runs/pretrain_demo/checkpoints/ckpt-")
        # The run folder explains itself: the command line, and what the terminal showed.
        record = json.loads((run / "run.json").read_text())
        assert "configs/finetune_demo.yaml" in record["sessions"][0]["command"]
        assert "--init-from runs/pretrain_demo" in " ".join(record["sessions"][0]["command"])
        assert "finetune finished after 2 steps" in (run / "train.log").read_text()
        # Each split's run trained on its own split's prepared videos.
        config = (run / "config.yaml").read_text()
        assert f"labeled_split{split}/train-" in config
    summary = json.loads((runs / "eval_demo_splits" / "summary.json").read_text())
    assert sorted(summary["splits"]) == ["1", "2", "3"]
    export = work / "exported" / "finetune_demo_split1" / "1"
    assert (export / "saved_model.pb").exists()
    # predict.py printed one answer from the run and one from the export, the same class.
    answers = re.findall(r"^  1\. (\S+)", result.stdout, re.M)
    assert len(answers) == 2 and answers[0] == answers[1], result.stdout[-2000:]
