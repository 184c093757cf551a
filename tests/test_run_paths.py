"""Paths that chain: one rule for run folders, shared by train.py, evaluate.py and export.py,
and a demo that lives in one place whatever the working directory."""

import os
import subprocess
import sys
from pathlib import Path

from dynamonet_tf.config import prepared_identity
from dynamonet_tf.data.checks import training_identity
from dynamonet_tf.evaluation.splits import default_model_dir, plan_splits
from dynamonet_tf.layout import DEMO_DIR_VARIABLE, default_export_dir, default_run_dir
from tiny_run import tiny_config

REPO = Path(__file__).resolve().parents[1]


def test_run_folders_are_named_by_stage_dataset_and_split():
    assert default_run_dir("pretrain", "demo") == Path("runs/pretrain_demo")
    assert default_run_dir("joint", "kinetics400") == Path("runs/joint_kinetics400")
    assert default_run_dir("finetune", "ucf101", 2) == Path("runs/finetune_ucf101_split2")
    assert default_run_dir("pretrain") == Path("runs/pretrain")
    assert default_export_dir("runs/finetune_ucf101_split2") == Path(
        "exported/finetune_ucf101_split2/1"
    )


def test_evaluate_looks_where_train_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_model_dir("kinetics400") == default_run_dir("joint", "kinetics400")
    assert default_model_dir("demo") == Path("runs/joint_demo_split{split}")
    (tmp_path / default_run_dir("finetune", "demo", 1)).mkdir(parents=True)
    plans, summary_dir = plan_splits("demo", "all")
    assert [plan.source for plan in plans] == [
        default_run_dir("finetune", "demo", split) for split in (1, 2, 3)
    ]
    assert summary_dir == Path("runs/eval_demo_splits")


def test_the_identity_of_prepared_data_names_the_demo_and_drops_kinetics_split():
    assert prepared_identity({"dataset": "hmdb51", "source": {"demo": "v", "split": 2}}) == (
        "demo",
        2,
    )
    assert prepared_identity({"dataset": "demo_unlabeled", "source": {"demo": "v"}}) == (
        "demo",
        None,
    )
    assert prepared_identity({"dataset": "kinetics400", "source": {"split": 1}}) == (
        "kinetics400",
        None,
    )
    assert prepared_identity({"dataset": "ucf101", "source": {"split": 3}}) == ("ucf101", 3)


def test_the_config_names_the_run_when_the_data_have_no_manifest(tmp_path):
    config = tiny_config(tmp_path, "finetune", "data.dataset=hmdb51", "data.split=2")
    manifests = {"train_files": None}
    assert training_identity(config, manifests) == ("hmdb51", 2)
    assert training_identity(tiny_config(tmp_path), manifests) == (None, None)


def demo_dir_seen_from(cwd, **env):
    code = "from dynamonet_tf.layout import DEMO_DATA_DIR; print(DEMO_DATA_DIR)"
    environment = {k: v for k, v in os.environ.items() if k != DEMO_DIR_VARIABLE} | env
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(result.stdout.strip())


def test_the_demo_lives_in_the_checkout_whatever_the_working_directory(tmp_path):
    assert demo_dir_seen_from(tmp_path) == REPO / "data" / "demo"
    assert demo_dir_seen_from(REPO) == REPO / "data" / "demo"
    assert demo_dir_seen_from(tmp_path, **{DEMO_DIR_VARIABLE: "elsewhere"}) == (
        tmp_path / "elsewhere"
    )
