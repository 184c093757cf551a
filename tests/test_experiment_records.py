"""What an experiment records of its runs, without training: the config digest that
identifies a run, runs taken from an earlier results.json, --collect, the cost of training,
the flat metrics of a report, the mean gradient shares of a log.csv, and the config key
that bounds the next-frame scores."""

import dataclasses
import datetime
import hashlib
import json
import time
from pathlib import Path

import pytest

from dynamonet_tf.config import (
    ConfigError,
    load_config,
    save_config,
    to_dict,
    with_absolute_data_paths,
)
from dynamonet_tf.data.demo import DEMO_CLASSES, MOTION_FAMILIES
from dynamonet_tf.layout import REPORT, run_layout
from dynamonet_tf.training.balance import mean_gradient_shares
from dynamonet_tf.training.run_files import append_epoch_log, read_epoch_log
from experiments import common
from experiments.claims import FP_OBJECTIVE, RESULTS_FILE

DATA_OVERRIDES = (
    "data.train_files=experiments/data/bench/train-*.tfrecord",
    "data.val_files=experiments/data/bench/holdout-*.tfrecord",
    "data.eval_files=experiments/data/bench/test-*.tfrecord",
)

# ---------------------------------------------------------------------- config digest


def test_config_digest_hashes_the_config_with_paths_relative_to_the_checkout(tmp_path, monkeypatch):
    config_file = common.REPO / common.CONFIG
    relative = load_config(config_file, [*DATA_OVERRIDES, "train.seed=3"])
    assert relative.data.train_files == "experiments/data/bench/train-*.tfrecord"
    expected = hashlib.sha256(json.dumps(to_dict(relative), sort_keys=True).encode()).hexdigest()[
        :16
    ]
    here = with_absolute_data_paths(relative, common.REPO)
    assert (
        here.data.eval_files == f"{common.REPO.as_posix()}/experiments/data/bench/test-*.tfrecord"
    )
    assert common.config_digest(here) == expected
    # Another checkout: the same config gives the same digest there.
    elsewhere = tmp_path / "checkout"
    monkeypatch.setattr(common, "REPO", elsewhere)
    assert common.config_digest(with_absolute_data_paths(relative, elsewhere)) == expected
    # Any other value, or data elsewhere, is another run.
    other_seed = load_config(config_file, [*DATA_OVERRIDES, "train.seed=4"])
    assert common.config_digest(with_absolute_data_paths(other_seed, elsewhere)) != expected
    assert common.config_digest(with_absolute_data_paths(relative, tmp_path / "other")) != expected


# ---------------------------------------------------------------------- recorded runs


def results_json(out, arms):
    """A results.json in ``out`` with ``{arm: [runs]}``."""
    out.mkdir(parents=True, exist_ok=True)
    content = {"arms": {arm: {"runs": runs, "summary": {}} for arm, runs in arms.items()}}
    (out / RESULTS_FILE).write_text(json.dumps(content))


def test_recorded_runs_by_arm_and_seed(tmp_path):
    assert common.recorded_runs(tmp_path / "none") == {}
    runs = {"a": [{"seed": 0, "x": 1}, {"seed": 3, "x": 2}], "b": [{"seed": 0, "x": 3}]}
    results_json(tmp_path, runs)
    assert common.recorded_runs(tmp_path) == {
        ("a", 0): {"seed": 0, "x": 1},
        ("a", 3): {"seed": 3, "x": 2},
        ("b", 0): {"seed": 0, "x": 3},
    }


def test_recorded_run_matches_digest_and_initial_weights_its_own_or_its_same_as_arm(tmp_path):
    out, other = tmp_path / "mine", tmp_path / "theirs"
    init_dir = tmp_path / "theirs" / "runs" / "pre" / "seed0"
    scratch = {"seed": 0, "config_digest": "d0", "initialised_from": None, "model_dir": "m"}
    started = dict(scratch, initialised_from=str(init_dir / "checkpoints" / "ckpt-2"))
    elsewhere = dict(scratch, initialised_from=str(tmp_path / "other" / "ckpt-2"))
    recorded = {
        out: {("own", 0): scratch, ("joint", 0): started, ("far", 0): elsewhere},
        other: {("their_arm", 0): scratch, ("their_joint", 0): started},
    }
    args = type("Args", (), {"out": out})()
    own = common.Arm("own")
    assert common.recorded_run(recorded, args, own, 0, "d0") == (scratch, False)
    assert common.recorded_run(recorded, args, own, 1, "d0") == (None, False)  # another seed
    assert common.recorded_run(recorded, args, own, 0, "d1") == (None, False)  # another config
    # Started from another run: only when the caller starts from that run too.
    joint = common.Arm("joint", init_from="pre")
    assert common.recorded_run(recorded, args, joint, 0, "d0") == (None, False)
    assert common.recorded_run(recorded, args, joint, 0, "d0", init_dir) == (started, False)
    assert common.recorded_run(recorded, args, joint, 0, "d0", tmp_path / "pre2") == (None, False)
    far = common.Arm("far", init_from="pre")
    assert common.recorded_run(recorded, args, far, 0, "d0", init_dir) == (None, False)
    assert common.recorded_run(recorded, args, own, 0, "d0", init_dir) == (
        None,
        False,
    )  # from scratch
    # The same_as arm's record, in its experiment's folder beside ``out``.
    shared = common.Arm("shared", same_as=("theirs", "their_arm"))
    assert common.recorded_run(recorded, args, shared, 0, "d0") == (scratch, True)
    assert common.recorded_run(recorded, args, shared, 0, "d1") == (None, False)
    shared_joint = common.Arm("sj", init_from="pre", same_as=("theirs", "their_joint"))
    assert common.recorded_run(recorded, args, shared_joint, 0, "d0", init_dir) == (
        started,
        True,
    )
    assert common.recorded_run(recorded, args, shared_joint, 0, "d0") == (None, False)


# ---------------------------------------------------------------------- --collect

CLAIM = dataclasses.replace(FP_OBJECTIVE, name="fp_objective", arms=("first", "second"))
ARMS = (
    common.Arm("first", ("loss.alpha=0",)),
    common.Arm("second", ("loss.alpha=1",), init_from="first"),
)


def arm_config(arm, seed, base):
    """The config ``run_experiment`` gives ``arm`` for ``seed`` (data under ``base``)."""
    data = [o.replace("experiments/data", str(base)) for o in DATA_OVERRIDES]
    return with_absolute_data_paths(
        load_config(common.REPO / common.CONFIG, [*data, *arm.overrides, f"train.seed={seed}"])
    )


def collect_args(out, seeds, *words):
    return common.parse_args(
        CLAIM, ["--collect", "--seeds", *map(str, seeds), "--out", str(out), *words]
    )


def shared_overrides(base):
    return [o.replace("experiments/data", str(base)) for o in DATA_OVERRIDES]


def write_finished_run(model_dir, config, report, log_rows, cost):
    """A run folder as the trainer and train_and_record_cost leave it."""
    model_dir.mkdir(parents=True)
    save_config(config, model_dir / "config.yaml")
    (model_dir / REPORT).write_text(json.dumps(report))
    for row in log_rows:
        append_epoch_log(run_layout(model_dir).log, row)
    (model_dir / common.COST_FILE).write_text(json.dumps(cost))


def test_collect_gathers_finished_and_recorded_runs_and_trains_nothing(tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("--collect trained a run")

    monkeypatch.setattr(common, "Trainer", no_training)
    out = tmp_path / "fp_objective"
    first, second = ARMS
    # Seed 0 of the first arm: a finished run folder.
    report = {
        "stage": "joint",
        "steps": 7,
        "val_loss": 1.5,
        "video_accuracy": {"videos": 4, "video_top1": 0.25},
    }
    rows = [
        {"epoch": 1, "step": 3, "loss": 2.0, "top1_accuracy": 0.5},
        {"epoch": 2, "step": 7, "loss": 1.0, "top1_accuracy": 0.75},
    ]
    cost = {"cpu_seconds": 12.5, "wall_seconds": 20.0}
    first_dir = common.run_dir(out, "first", 0)
    write_finished_run(first_dir, arm_config(first, 0, tmp_path), report, rows, cost)
    # Seed 1 of both arms: recorded in results.json, their folders gone; seed 2 of the first
    # arm recorded too (not collected now, but kept); seed 3's record is of another config.
    recorded_first = {
        "seed": 1,
        "model_dir": str(common.run_dir(out, "first", 1)),
        "command": "old",
        "steps": 7,
        "config_digest": common.config_digest(arm_config(first, 1, tmp_path)),
        "initialised_from": None,
        "cost": None,
        "metrics": {"video_top1": 0.5},
    }
    recorded_second = dict(
        recorded_first,
        model_dir=str(common.run_dir(out, "second", 1)),
        config_digest=common.config_digest(arm_config(second, 1, tmp_path)),
        initialised_from=str(common.run_dir(out, "first", 1) / "checkpoints" / "ckpt-7"),
        metrics={"video_top1": 1.0},
    )
    kept = dict(
        recorded_first,
        seed=2,
        config_digest=common.config_digest(arm_config(first, 2, tmp_path)),
        metrics={"video_top1": 0.0},
    )
    stale = dict(recorded_first, seed=3, config_digest="0" * 16)
    results_json(out, {"first": [recorded_first, kept, stale], "second": [recorded_second]})

    args = collect_args(out, [0, 1])
    results = common.run_experiment(args, ARMS, shared_overrides(tmp_path))
    assert results == json.loads((out / RESULTS_FILE).read_text())
    assert datetime.datetime.fromisoformat(results["updated"]).tzinfo is not None  # one added
    # A collection of recorded runs only (no folder here) keeps the time they were recorded.
    stamped = json.loads((out / RESULTS_FILE).read_text())
    (out / RESULTS_FILE).write_text(json.dumps(dict(stamped, updated="2026-01-02T03:04:05+00:00")))
    first_dir.rename(tmp_path / "away")
    again = common.run_experiment(args, ARMS, shared_overrides(tmp_path))
    (tmp_path / "away").rename(first_dir)
    assert again["updated"] == "2026-01-02T03:04:05+00:00"
    assert again["arms"] == results["arms"]
    assert "--collect" in results["command"] and not results["complete"]
    runs = results["arms"]["first"]["runs"]
    assert [run["seed"] for run in runs] == [0, 1, 2]
    # (Its command: test_a_collected_run_records_the_command_that_trains_it_again.)
    assert {k: v for k, v in runs[0].items() if k != "command"} == {
        "seed": 0,
        "model_dir": str(first_dir),
        "steps": 7,
        "config_digest": common.config_digest(arm_config(first, 0, tmp_path)),
        "initialised_from": None,
        "cost": cost,
        "git": None,  # no run.json: not trained by the trainer
        "metrics": {"videos": 4, "video_top1": 0.25, "val_loss": 1.5, "top1_accuracy": 0.75},
    }
    assert runs[1] == dict(recorded_first, command=runs[1]["command"])
    assert runs[1]["command"].startswith("python -m experiments.fp_objective --seeds 1 ")
    assert runs[2] == kept
    assert results["arms"]["first"]["summary"]["video_top1"] == {
        "mean": 0.25,
        "std": 0.25,
        "n": 3,
    }
    # The second arm's seed 0 would start from the first arm's seed 0: never trained here.
    (gathered,) = results["arms"]["second"]["runs"]
    assert gathered == dict(recorded_second, command=runs[1]["command"])
    assert not common.run_dir(out, "second", 0).exists()
    # Once the second arm's seed 0 is recorded as well, the collection is complete.
    results_json(
        out,
        {
            "first": results["arms"]["first"]["runs"],
            "second": [
                dict(
                    recorded_second,
                    seed=0,
                    model_dir=str(common.run_dir(out, "second", 0)),
                    config_digest=common.config_digest(arm_config(second, 0, tmp_path)),
                    initialised_from=str(first_dir / "checkpoints" / "ckpt-7"),
                ),
                recorded_second,
            ],
        },
    )
    assert common.run_experiment(args, ARMS, shared_overrides(tmp_path))["complete"]


class StubTrainer:
    """Writes a finished run (config, report) without training, and records each call."""

    calls = []

    def __init__(self, config, model_dir, init_from=None, progress=True):
        self.config, self.model_dir, self.init_from = config, Path(model_dir), init_from

    def train(self):
        StubTrainer.calls.append((self.model_dir, self.init_from))
        self.model_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.config, self.model_dir / "config.yaml")
        report = {"stage": "joint", "steps": 7, "video_accuracy": {"video_top1": 0.5}}
        if self.init_from:
            report["initialised_from"] = str(Path(self.init_from) / "checkpoints" / "ckpt-7")
        (self.model_dir / REPORT).write_text(json.dumps(report))
        return report


def test_a_run_whose_start_is_recorded_but_gone_trains_that_start_again_first(
    tmp_path, monkeypatch
):
    """A later checkout has the first arm's seed 0 in results.json but not its folder, and
    the second arm (which starts from it) not finished: the first is trained again, in its
    own folder, and recorded instead of the old record; the second starts from it."""
    monkeypatch.setattr(common, "Trainer", StubTrainer)
    StubTrainer.calls = []
    out = tmp_path / "fp_objective"
    first = ARMS[0]
    gone = {
        "seed": 0,
        "model_dir": str(tmp_path / "elsewhere" / "first" / "seed0"),
        "command": "old",
        "steps": 7,
        "config_digest": common.config_digest(arm_config(first, 0, tmp_path)),
        "initialised_from": None,
        "cost": None,
        "metrics": {"video_top1": 0.125},
    }
    results_json(out, {"first": [gone], "second": []})
    args = common.parse_args(CLAIM, ["--seeds", "0", "--out", str(out)])
    results = common.run_experiment(args, ARMS, shared_overrides(tmp_path))
    first_dir, second_dir = common.run_dir(out, "first", 0), common.run_dir(out, "second", 0)
    assert StubTrainer.calls == [(first_dir, None), (second_dir, first_dir)]
    (retrained,) = results["arms"]["first"]["runs"]
    assert retrained["model_dir"] == str(first_dir) and retrained["metrics"]["video_top1"] == 0.5
    assert results["arms"]["first"]["summary"]["video_top1"]["n"] == 1
    (second,) = results["arms"]["second"]["runs"]
    assert Path(second["initialised_from"]).parent.parent == first_dir
    assert results["complete"]
    # Run again: both are finished on disk now, nothing trains.
    StubTrainer.calls = []
    assert common.run_experiment(args, ARMS, shared_overrides(tmp_path))["arms"] == results["arms"]
    assert StubTrainer.calls == []


def test_collect_takes_an_own_run_recorded_under_another_spelling_of_the_folder(
    tmp_path, monkeypatch
):
    # results.json written with an absolute --out, collected with the relative one.
    monkeypatch.chdir(tmp_path)
    first = ARMS[0]
    record = {
        "seed": 0,
        "model_dir": str(tmp_path / "fp_objective" / "runs" / "first" / "seed0"),
        "command": "old",
        "steps": 7,
        "config_digest": common.config_digest(arm_config(first, 0, tmp_path)),
        "initialised_from": None,
        "cost": None,
        "metrics": {"video_top1": 0.5},
    }
    results_json(tmp_path / "fp_objective", {"first": [record]})
    args = collect_args(Path("fp_objective"), [0])
    results = common.run_experiment(args, ARMS, shared_overrides(tmp_path))
    (run,) = results["arms"]["first"]["runs"]
    assert "same_as" not in run and run["metrics"] == record["metrics"]


def test_a_collected_run_records_the_command_that_trains_it_again():
    collect = common.parse_args(CLAIM, ["--collect", "--seeds", "0", "1"])
    train = common.parse_args(CLAIM, ["--seeds", "0", "1"])
    assert (
        common.seed_command(collect, 1)
        == common.seed_command(train, 1)
        == (
            "python -m experiments.fp_objective --seeds 1 "
            "--out experiments/results/fp_objective_seed1"
        )
    )


# ---------------------------------------------------------------------- cost


class BusyTrainer:
    """Spends at least ``cpu`` seconds of CPU and ``sleep`` more of wall-clock time."""

    def __init__(self, cpu, sleep):
        self.cpu, self.sleep = cpu, sleep

    def train(self):
        start = time.process_time()
        while time.process_time() - start < self.cpu:
            pass
        time.sleep(self.sleep)
        return {"steps": 1}


def test_training_cost_is_recorded_and_summed_over_sessions(tmp_path):
    assert common.read_cost(tmp_path) is None  # a run trained before costs were recorded
    started = time.perf_counter()
    assert common.train_and_record_cost(BusyTrainer(0.05, 0.1), tmp_path) == {"steps": 1}
    elapsed = time.perf_counter() - started
    first = common.read_cost(tmp_path)
    assert first == json.loads((tmp_path / common.COST_FILE).read_text())
    assert set(first) == {"cpu_seconds", "wall_seconds"}
    assert 0.05 <= first["cpu_seconds"] and 0.15 <= first["wall_seconds"] <= elapsed
    # A resumed run adds its session's cost.
    common.train_and_record_cost(BusyTrainer(0.05, 0.1), tmp_path)
    second = common.read_cost(tmp_path)
    assert second["cpu_seconds"] >= first["cpu_seconds"] + 0.05
    assert second["wall_seconds"] >= first["wall_seconds"] + 0.15


# ---------------------------------------------------------------------- metrics


def family_of(label):
    """Independent of MOTION_FAMILIES: the demo's class names say their motion."""
    prefixes = {"pan_": "pans", "zoom_": "zooms", "rotate_": "rotations", "sprite_": "sprites"}
    family = next((f for prefix, f in prefixes.items() if label.startswith(prefix)), None)
    assert family or label == "still", label
    return family or "still"


def test_motion_families_group_the_classes_by_the_motion_they_name():
    grouped = {}
    for label in DEMO_CLASSES:
        grouped.setdefault(family_of(label), []).append(label)
    assert {family: tuple(labels) for family, labels in grouped.items()} == MOTION_FAMILIES
    assert sum(map(len, MOTION_FAMILIES.values())) == len(DEMO_CLASSES) == 13


def test_metrics_flatten_a_report_with_family_accuracy_counted_by_hand():
    # Videos per class and how many were right; zoom_out has no test video, rotations none.
    counts = {
        "pan_down": (3, 1),
        "pan_left": (2, 2),
        "pan_right": (4, 0),
        "pan_up": (1, 1),
        "zoom_in": (5, 2),
        "zoom_out": (0, 0),
        "sprite_down": (2, 1),
        "sprite_up": (6, 6),
        "still": (4, 3),
    }
    per_class = {
        label: {"videos": v, "correct": c, "accuracy": c / v if v else None}
        for label, (v, c) in counts.items()
    }
    report = {
        "stage": "joint",
        "steps": 10,
        "initialised_from": "/runs/pre/checkpoints/ckpt-4",
        "val_loss": 2.5,
        "val_top1_accuracy": 0.125,
        "gradient_shares": {
            "share_frame_prediction_of_backbone": 0.25,
            "share_classification_of_backbone": 0.75,
        },
        "frame_prediction": {
            "clips": 32,
            "model": {"ssim": 0.9, "psnr": 30.0},
            "copy_last_frame": {"ssim": 0.7, "psnr": 25.0},
        },
        "video_accuracy": {"videos": 27, "video_top1": 16 / 27, "per_class": per_class},
    }
    rows = [{"epoch": "1", "top1_accuracy": "0.25"}, {"epoch": "2", "top1_accuracy": "0.5"}]
    # By hand: pans 4/10, zooms 2/5, sprites 7/8, still 3/4; no rotations.
    assert common.metrics(report, rows) == {
        "ssim": 0.9,
        "psnr": 30.0,
        "copy_ssim": 0.7,
        "copy_psnr": 25.0,
        "clips": 32,
        "videos": 27,
        "video_top1": 16 / 27,
        "family_pans": 4 / 10,
        "family_zooms": 2 / 5,
        "family_sprites": 7 / 8,
        "family_still": 3 / 4,
        "share_frame_prediction_of_backbone": 0.25,
        "share_classification_of_backbone": 0.75,
        "val_loss": 2.5,
        "val_top1_accuracy": 0.125,
        "top1_accuracy": 0.5,
    }
    assert "per_class" in report["video_accuracy"]  # the report itself is left as it was
    # A pretraining report: frame prediction and validation only.
    pretrain = {k: report[k] for k in ("stage", "steps", "val_loss", "frame_prediction")}
    assert common.metrics(pretrain) == {
        "ssim": 0.9,
        "psnr": 30.0,
        "copy_ssim": 0.7,
        "copy_psnr": 25.0,
        "clips": 32,
        "val_loss": 2.5,
    }


def test_metrics_keep_the_next_frame_clip_count_of_a_joint_report():
    report = {
        "frame_prediction": {"clips": 4, "model": {"ssim": 0.9}, "copy_last_frame": {"ssim": 0.7}},
        "video_accuracy": {"videos": 13, "clips": 39, "video_top1": 0.5},
    }
    assert common.metrics(report)["clips"] == 4


# ---------------------------------------------------------------------- gradient shares

LOG_CSV = """epoch,step,loss,share_frame_prediction_of_backbone,share_classification_of_backbone,\
share_frame_prediction_of_filter_layer
1,10,2.5,0.25,0.75,
2,20,2.0,,,
3,30,1.5,0.5,0.5,0.125
4,40,1.0,0.125,0.875,
"""


def test_mean_gradient_shares_of_a_log_csv_skip_epochs_without_measurements(tmp_path):
    path = tmp_path / "log.csv"
    assert common.read_epoch_log(path) == [] == read_epoch_log(path)
    path.write_text(LOG_CSV)
    rows = read_epoch_log(path)
    assert rows[1] == {
        "epoch": "2",
        "step": "20",
        "loss": "2.0",
        "share_frame_prediction_of_backbone": "",
        "share_classification_of_backbone": "",
        "share_frame_prediction_of_filter_layer": "",
    }
    assert [row["loss"] for row in rows] == ["2.5", "2.0", "1.5", "1.0"]
    assert mean_gradient_shares(rows) == {
        "share_frame_prediction_of_backbone": (0.25 + 0.5 + 0.125) / 3,
        "share_classification_of_backbone": (0.75 + 0.5 + 0.875) / 3,
        "share_frame_prediction_of_filter_layer": 0.125,
    }
    assert (
        mean_gradient_shares([{k: v for k, v in row.items() if k != "loss"} for row in rows[1:2]])
        == {}
    )
    assert mean_gradient_shares([]) == {}
    assert mean_gradient_shares([{"epoch": "1", "loss": "2.0"}]) == {}


def test_epoch_log_round_trip_keeps_blank_columns_and_replaces_a_redone_epoch(tmp_path):
    path = tmp_path / "log.csv"
    append_epoch_log(path, {"epoch": 1, "step": 5, "loss": 2.0})
    append_epoch_log(path, {"epoch": 2, "step": 10, "loss": 1.0, "share_x_of_y": 0.5})
    append_epoch_log(path, {"epoch": 2, "step": 10, "loss": 0.5, "share_x_of_y": 0.25})
    rows = read_epoch_log(path)
    assert [(row["epoch"], row["loss"], row.get("share_x_of_y")) for row in rows] == [
        ("1", "2.0", ""),
        ("2", "0.5", "0.25"),
    ]
    assert mean_gradient_shares(rows) == {"share_x_of_y": 0.25}


# ---------------------------------------------------------------------- the config key


def test_frame_prediction_batches_is_a_positive_count_or_null():
    assert load_config(None, []).train.frame_prediction_batches == 8
    assert (
        load_config(None, ["train.frame_prediction_batches=null"]).train.frame_prediction_batches
        is None
    )
    assert (
        load_config(None, ["train.frame_prediction_batches=3"]).train.frame_prediction_batches == 3
    )
    for bad in ("0", "-2"):
        with pytest.raises(
            ConfigError, match=rf"train\.frame_prediction_batches must be >= 1 or null; got {bad}"
        ):
            load_config(None, [f"train.frame_prediction_batches={bad}"])
