"""The experiment scripts end to end on the tiny benchmark, the half-label subset and the
command line. The results page rendered from results files is tests/test_results_page.py's."""

import json
import shutil

import pytest
import tensorflow as tf

from dynamonet_tf.data.demo import MARKER, MOTION_FAMILIES
from dynamonet_tf.data.prepare import PrepareError
from dynamonet_tf.data.schema import encode_video_example
from dynamonet_tf.layout import REPORT, run_layout
from dynamonet_tf.training.run_files import read_epoch_log
from experiments import (
    backbone_baseline,
    common,
    fp_objective,
    frame_families,
    frame_prediction,
    pretraining,
)
from experiments.claims import ALPHAS, FP_OBJECTIVE, RESULTS_FILE
from experiments.datasets import HELD_OUT_PHOTOS, TRAINING_PHOTOS, benchmark_root
from experiments.label_subset import RULE, half_count, write_half_subset

SCRIPTS = (frame_prediction, fp_objective, backbone_baseline, pretraining)
NAMES = tuple(script.__name__.rsplit(".", 1)[-1] for script in SCRIPTS)
# Of the claims' data: 13 classes of 1 test video each in the smoke benchmark.
SMOKE_TEST_VIDEOS = 13
SMOKE_BATCH, SMOKE_FP_BATCHES = 4, 1  # train.batch_size, train.frame_prediction_batches
# The arms the smoke runs train, of the two experiments whose other arms train alike (the
# per-pixel filters' and the other alphas'): 6 runs in all, those the others take included.
TRAINED = {
    "frame_prediction": ("--arms", "pretrain_global", "joint_global"),
    "fp_objective": ("--arms", "alpha_0.1"),
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """One folder of the tiny prepared benchmark, shared by every script's smoke run."""
    return tmp_path_factory.mktemp("experiment_data")


def smoke(script, data_root, results_root, *words):
    """``script --smoke --seeds 0`` (with its :data:`TRAINED` arms unless ``words`` are
    given) into ``results_root/<its name>``, its results."""
    name = script.__name__.rsplit(".", 1)[-1]
    out = results_root / name
    words = words or TRAINED.get(name, ())
    return script.main(
        ["--smoke", "--seeds", "0", "--out", str(out), "--data-root", str(data_root), *words]
    )


def without_commands(results):
    """``{arm: runs}`` without each run's command (which names the process's options)."""
    return {
        arm: [{k: v for k, v in run.items() if k != "command"} for run in entry["runs"]]
        for arm, entry in results["arms"].items()
    }


def read_results(out):
    return json.loads((out / RESULTS_FILE).read_text())


@pytest.fixture(scope="module")
def smoke_runs(data_root, tmp_path_factory):
    """Every script once, for seed 0, side by side as run_all.sh runs them (two of them
    with their :data:`TRAINED` arms): ``(results folder, {script name: results})``, and
    ``"refused"``, the error of pretrained_half asked for before any pretraining."""
    root = tmp_path_factory.mktemp("experiment_results")
    with pytest.raises(SystemExit) as refused:
        smoke(pretraining, data_root, root, "--arms", "pretrained_half")
    results = {"refused": str(refused.value)}
    results["frame_prediction"] = smoke(frame_prediction, data_root, root)
    results["fp_objective"] = smoke(fp_objective, data_root, root)
    results["backbone_baseline"] = smoke(backbone_baseline, data_root, root)
    results["pretraining"] = smoke(pretraining, data_root, root)
    return root, results


def only_run(results, arm):
    (run,) = results["arms"][arm]["runs"]
    return run


def override(arm_entry, key):
    """The value of the last ``key=...`` override of an arm (the one that holds)."""
    values = [o.split("=", 1)[1] for o in arm_entry["overrides"] if o.startswith(f"{key}=")]
    return values[-1] if values else None


def family_of(label):
    """Independent of MOTION_FAMILIES: the demo's class names say their motion."""
    for prefix, family in (
        ("pan_", "pans"),
        ("zoom_", "zooms"),
        ("rotate_", "rotations"),
        ("sprite_", "sprites"),
    ):
        if label.startswith(prefix):
            return family
    assert label == "still", label
    return "still"


def family_accuracy_by_hand(per_class):
    videos, correct = {}, {}
    for label, count in per_class.items():
        family = family_of(label)
        videos[family] = videos.get(family, 0) + count["videos"]
        correct[family] = correct.get(family, 0) + count["correct"]
    return {f"family_{name}": correct[name] / videos[name] for name in videos if videos[name]}


# ---------------------------------------------------------------------- the scripts


@pytest.mark.slow
def test_every_script_reads_the_benchmark_test_videos_filmed_over_held_out_photographs(
    smoke_runs, data_root
):
    root, results = smoke_runs
    benchmark = benchmark_root(data_root, smoke=True)
    marker = json.loads((benchmark / "videos" / MARKER).read_text())
    assert marker["photos"] == sorted(TRAINING_PHOTOS)
    assert marker["test_photos"] == sorted(HELD_OUT_PHOTOS)
    assert not set(TRAINING_PHOTOS) & set(HELD_OUT_PHOTOS)
    labeled = benchmark / "labeled_split1"
    for name in NAMES:
        assert results[name]["smoke"] and results[name]["seeds"] == [0]
        assert results[name]["arms"] == read_results(root / name)["arms"]
        for arm, entry in results[name]["arms"].items():
            assert override(entry, "data.eval_files") == str(labeled / "test-*.tfrecord"), arm
            stage = override(entry, "train.stage")
            if stage == "pretrain":
                assert override(entry, "data.train_files") == str(
                    benchmark / "unlabeled" / "train-*.tfrecord"
                )
                assert override(entry, "data.val_files") == str(
                    benchmark / "unlabeled" / "holdout-*.tfrecord"
                )
            else:
                assert stage == "joint", arm
                assert override(entry, "data.val_files") == str(labeled / "holdout-*.tfrecord")
            # Smoke scores next frames on one batch; the benchmark's own runs on all clips.
            assert "train.frame_prediction_batches=null" in entry["overrides"]
            assert override(entry, "train.frame_prediction_batches") == str(SMOKE_FP_BATCHES)


@pytest.mark.slow
def test_frame_prediction_smoke_pretrains_then_joint_trains_from_those_weights(smoke_runs):
    root, all_results = smoke_runs
    results = all_results["frame_prediction"]
    assert list(results["arms"]) == [
        "pretrain_global",
        "pretrain_per_pixel",
        "joint_global",
        "joint_per_pixel",
    ]
    arms = results["arms"]
    for name, entry in arms.items():
        per_pixel = "model.per_pixel_filters=true" in entry["overrides"]
        assert per_pixel == name.endswith("per_pixel")
        assert override(entry, "train.stage") == name.split("_")[0]
        if per_pixel:  # not trained here (--arms): listed, with the arm they start from
            assert entry["runs"] == []
            continue
        run = only_run(results, name)
        assert run["seed"] == 0 and run["steps"] == 2
        assert run["model_dir"] == str(root / "frame_prediction" / "runs" / name / "seed0")
        assert {"ssim", "ssim_luma", "psnr", "copy_ssim", "copy_psnr", "val_loss"} <= set(
            run["metrics"]
        )
        assert entry["summary"]["ssim"] == {"mean": run["metrics"]["ssim"], "std": None, "n": 1}
        # What training cost, as the run folder records it.
        assert run["cost"] == common.read_cost(run["model_dir"])
        assert 0 < run["cost"]["cpu_seconds"] and 0 < run["cost"]["wall_seconds"]
    assert not results["complete"]
    assert arms["joint_per_pixel"]["init_from"] == "pretrain_per_pixel"
    for kind in ("global",):
        joint, pretrain = arms[f"joint_{kind}"], only_run(results, f"pretrain_{kind}")
        assert joint["init_from"] == f"pretrain_{kind}"
        source = only_run(results, f"joint_{kind}")["initialised_from"]
        assert source.startswith(pretrain["model_dir"] + "/")
        assert (
            arms[f"pretrain_{kind}"]["init_from"] is None and pretrain["initialised_from"] is None
        )
        # train.frame_prediction_batches=1 of the smoke setting: one batch of whole clips
        # (a pretraining report's clips are its next-frame scores' alone).
        assert pretrain["metrics"]["clips"] == SMOKE_BATCH * SMOKE_FP_BATCHES


@pytest.mark.slow
def test_frame_families_scores_the_recorded_runs_by_motion_family(smoke_runs, capsys):
    root, _ = smoke_runs
    model_dirs = frame_families.recorded_run_dirs(root)
    assert [(path.parent.name, path.name) for path in model_dirs] == [
        ("pretrain_global", "seed0"),
        ("joint_global", "seed0"),
    ]
    frame_families.main([str(path) for path in model_dirs])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + len(model_dirs) * len(MOTION_FAMILIES)
    for model_dir in model_dirs:
        scores = model_dir / frame_families.SCORES_SUBDIR / "metrics.json"
        metrics = json.loads(scores.read_text())
        families = frame_families.family_scores(metrics["per_class"])
        # Every test video's frames in exactly one family: 13 classes, 5 families.
        assert list(families) == list(MOTION_FAMILIES)
        assert sum(f["all"]["frames"] for f in families.values()) == metrics["frames"]
        assert sum(f["future_frame"]["frames"] for f in families.values()) == metrics["clips"]
    # Scores of the latest checkpoint are reused; those of another are scored again.
    written = scores.stat().st_mtime_ns
    assert frame_families.scored(model_dir) == metrics and scores.stat().st_mtime_ns == written
    scores.write_text(json.dumps({**metrics, "checkpoint": "another/ckpt-1"}))
    assert frame_families.scored(model_dir)["checkpoint"] == metrics["checkpoint"]


@pytest.mark.slow
def test_joint_runs_record_family_accuracy_gradient_shares_and_training_accuracy(smoke_runs):
    _, all_results = smoke_runs
    checked = 0
    for name, arm in (
        ("frame_prediction", "joint_global"),
        ("fp_objective", "alpha_0.1"),
        ("backbone_baseline", "backbone_only"),
        ("pretraining", "scratch_half"),
    ):
        run = only_run(all_results[name], arm)
        report = json.loads((run_layout(run["model_dir"]).root / REPORT).read_text())
        accuracy = report["video_accuracy"]
        assert accuracy["videos"] == SMOKE_TEST_VIDEOS == run["metrics"]["videos"]
        assert sum(c["videos"] for c in accuracy["per_class"].values()) == SMOKE_TEST_VIDEOS
        by_hand = family_accuracy_by_hand(accuracy["per_class"])
        assert set(by_hand) == {
            f"family_{f}" for f in ("pans", "zooms", "rotations", "sprites", "still")
        }
        assert {k: v for k, v in run["metrics"].items() if k.startswith("family_")} == by_hand
        assert "per_class" not in run["metrics"]
        rows = read_epoch_log(run_layout(run["model_dir"]).log)
        assert len(rows) == 1  # one epoch: the means are that epoch's measurements
        assert run["metrics"]["top1_accuracy"] == float(rows[-1]["top1_accuracy"])
        shares = {k: float(v) for k, v in rows[0].items() if k.startswith("share_") and v}
        assert {k: v for k, v in run["metrics"].items() if k.startswith("share_")} == shares
        assert report.get("gradient_shares", {}) == shares
        if arm == "backbone_only":
            assert not shares  # one loss term: no balance to measure
        else:
            assert run["metrics"]["share_frame_prediction_of_backbone"] + run["metrics"][
                "share_classification_of_backbone"
            ] == pytest.approx(1.0)
            checked += 1
    assert checked == 3


@pytest.mark.slow
def test_fp_objective_by_arms_and_backbone_baseline_share_the_alpha_0_1_run(smoke_runs):
    root, all_results = smoke_runs
    results = all_results["fp_objective"]
    assert list(results["arms"]) == [f"alpha_{alpha}" for alpha in ALPHAS]
    for alpha in ALPHAS:
        entry = results["arms"][f"alpha_{alpha}"]
        assert override(entry, "loss.alpha") == alpha and override(entry, "train.stage") == "joint"
    # --arms alpha_0.1: the other three are listed, not trained.
    assert [arm for arm, entry in results["arms"].items() if entry["runs"]] == ["alpha_0.1"]
    assert not results["complete"] and "--arms alpha_0.1 --smoke" in results["command"]
    assert not (root / "fp_objective" / "runs" / "alpha_1").exists()
    shared_run = only_run(results, "alpha_0.1")
    assert 0.0 <= shared_run["metrics"]["video_top1"] <= 1.0

    results = all_results["backbone_baseline"]
    assert results["complete"]
    assert "train.classifier_only=true" in results["arms"]["backbone_only"]["overrides"]
    assert "train.classifier_only=true" not in results["arms"]["dynamonet"]["overrides"]
    assert "same_as" not in only_run(results, "backbone_only")
    # DynamoNet's arm is fp_objective's alpha_0.1 with the same config: taken, not trained.
    reused = only_run(results, "dynamonet")
    assert reused["model_dir"] == shared_run["model_dir"]
    assert reused["model_dir"] == str(root / "fp_objective" / "runs" / "alpha_0.1" / "seed0")
    assert reused["same_as"] == ["fp_objective", "alpha_0.1"]
    assert {k: v for k, v in reused.items() if k not in ("command", "same_as")} == {
        k: v for k, v in shared_run.items() if k != "command"
    }
    assert not (root / "backbone_baseline" / "runs" / "dynamonet").exists()
    assert results["machine"]["tensorflow"] == tf.__version__ and results["machine"]["cores"] >= 1


@pytest.mark.slow
def test_pretraining_takes_three_arms_from_the_other_experiments_and_trains_the_halves(
    smoke_runs, data_root
):
    root, all_results = smoke_runs
    # Asked for before pretrain (frame_prediction's pretrain_global) had a run: refused.
    assert all_results["refused"].startswith(
        "error: arm pretrained_half starts from arm pretrain's run of seed 0, which has not "
        "finished"
    )
    assert "--arms pretrain --seeds 0" in all_results["refused"]
    results = all_results["pretraining"]
    assert results["complete"] and list(results["arms"]) == list(pretraining.PRETRAINING.arms)
    for arm, (experiment, other) in {
        "pretrain": ("frame_prediction", "pretrain_global"),
        # An arm that starts from another's run is taken too when that run starts there.
        "pretrained_full": ("frame_prediction", "joint_global"),
        "scratch_full": ("fp_objective", "alpha_0.1"),
    }.items():
        run, source = only_run(results, arm), only_run(all_results[experiment], other)
        assert run["model_dir"] == source["model_dir"] and run["same_as"] == [experiment, other]
        assert run["metrics"] == source["metrics"] and run["cost"] == source["cost"]
        assert not (root / "pretraining" / "runs" / arm).exists()
    pretrain_dir = only_run(results, "pretrain")["model_dir"]
    for arm in ("pretrained_full", "pretrained_half"):
        assert results["arms"][arm]["init_from"] == "pretrain"
        assert only_run(results, arm)["initialised_from"].startswith(pretrain_dir + "/")
    assert (
        root / "pretraining" / "runs" / "pretrained_half" / "seed0" / "init_report.json"
    ).exists()
    assert only_run(results, "scratch_half")["initialised_from"] is None
    for arm in ("pretrained_half", "scratch_half"):
        run = only_run(results, arm)
        assert "same_as" not in run
        assert run["model_dir"] == str(root / "pretraining" / "runs" / arm / "seed0")
        assert override(results["arms"][arm], "data.train_files") == str(
            data_root / "smoke" / "labeled_split1_half" / "train-*.tfrecord"
        )
    assert "video_top1" in results["arms"]["scratch_half"]["summary"]


@pytest.mark.slow
def test_finished_runs_are_not_trained_again_nor_runs_recorded_whose_folders_are_gone(
    smoke_runs, data_root, tmp_path, monkeypatch
):
    root, all_results = smoke_runs

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(common, "Trainer", no_training)
    for script, name in zip(SCRIPTS, NAMES):
        assert smoke(script, data_root, root)["arms"] == all_results[name]["arms"]
    # A later checkout at the same path: results.json kept, run folders gone (not in git).
    # Every run is taken from the records, those that start from another run's included.
    for name in NAMES:
        shutil.move(root / name / "runs", tmp_path / name)
    try:
        for script, name in zip(SCRIPTS, NAMES):
            assert smoke(script, data_root, root)["arms"] == all_results[name]["arms"]
        # --collect (every arm) trains nothing and gathers the finished runs.
        for script, name in zip(SCRIPTS, NAMES):
            collected = smoke(script, data_root, root, "--collect")
            assert "--collect" in collected["command"]
            assert without_commands(collected) == without_commands(all_results[name])
    finally:
        for name in NAMES:
            shutil.move(tmp_path / name, root / name / "runs")


def test_command_line_defaults_and_the_command_recorded():
    args = common.parse_args(FP_OBJECTIVE, [])
    assert args.seeds == [0, 1, 2, 3, 4] and str(args.out) == "experiments/results/fp_objective"
    assert not args.collect
    assert common.command(args) == "python -m experiments.fp_objective --seeds 0 1 2 3 4"
    assert common.seed_command(args, 1) == (
        "python -m experiments.fp_objective --seeds 1 --out experiments/results/fp_objective_seed1"
    )
    args = common.parse_args(FP_OBJECTIVE, ["--steps", "500", "--smoke"])
    assert str(args.out) == "experiments/results/smoke/fp_objective"
    assert (
        common.command(args)
        == "python -m experiments.fp_objective --seeds 0 1 2 3 4 --steps 500 --smoke"
    )
    assert common.base_overrides(args)[-2:] == ["train.epochs=1", "train.steps_per_epoch=500"]
    args = common.parse_args(FP_OBJECTIVE, ["--collect", "--seeds", "3", "--arms", "alpha_1"])
    assert args.collect and common.command(args) == (
        "python -m experiments.fp_objective --seeds 3 --arms alpha_1 --collect"
    )
    for bad in (["--seeds", "1", "1"], ["--seeds", "-1"], ["--steps", "0"]):
        with pytest.raises(SystemExit):
            common.parse_args(FP_OBJECTIVE, bad)


# ---------------------------------------------------------------------- half of the labels


def write_videos(path, counts):
    """Fake labeled videos (frames are not decoded here): ``counts`` is ``{class: videos}``."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for label, (name, count) in enumerate(counts.items()):
            for index in range(count):
                writer.write(
                    encode_video_example([b"jpeg"] * (3 + index), label, name, f"{name}_{index}")
                )


def shard_bytes(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.glob("train-*.tfrecord"))}


def test_half_subset_keeps_half_of_each_class_rounded_down_at_least_one(tmp_path):
    counts = {"pan": 4, "zoom": 5, "still": 1, "spin": 2, "sprite": 7}
    write_videos(tmp_path / "train-00000-of-00002.tfrecord", dict(list(counts.items())[:2]))
    write_videos(tmp_path / "train-00001-of-00002.tfrecord", dict(list(counts.items())[2:]))
    manifest = write_half_subset(tmp_path / "train-*.tfrecord", tmp_path / "half", seed=0)
    per_class = {"pan": 2, "zoom": 2, "still": 1, "spin": 1, "sprite": 3}
    assert {name: half_count(n) for name, n in counts.items()} == per_class
    assert manifest["subsets"]["train"]["per_class"] == per_class
    assert manifest["half_of"]["rule"] == RULE and manifest["half_of"]["per_class_source"] == counts
    kept = [
        tf.train.SequenceExample.FromString(r.numpy())
        .context.feature["clip/media_id"]
        .bytes_list.value[0]
        .decode()
        for r in tf.data.TFRecordDataset(
            sorted(map(str, (tmp_path / "half").glob("train-*.tfrecord")))
        )
    ]
    assert sorted(kept) == manifest["half_of"]["media_ids"] and len(kept) == sum(per_class.values())
    assert {name: sum(m.startswith(f"{name}_") for m in kept) for name in counts} == per_class
    assert json.loads((tmp_path / "half" / "manifest.json").read_text()) == manifest
    assert not list((tmp_path / "half").glob("*.tmp-*"))


def test_half_subset_is_deterministic_reused_and_refuses_another_source(tmp_path):
    write_videos(tmp_path / "train-00000-of-00001.tfrecord", {"a": 6, "b": 9, "c": 4})
    source = tmp_path / "train-*.tfrecord"
    first = write_half_subset(source, tmp_path / "first", seed=0)
    second = write_half_subset(source, tmp_path / "second", seed=0)
    other = write_half_subset(source, tmp_path / "other", seed=1)
    assert shard_bytes(tmp_path / "first") == shard_bytes(tmp_path / "second")
    assert first["half_of"]["media_ids"] == second["half_of"]["media_ids"]
    assert other["half_of"]["media_ids"] != first["half_of"]["media_ids"]
    before = (tmp_path / "first" / "manifest.json").stat().st_mtime_ns
    assert write_half_subset(source, tmp_path / "first", seed=0) == first
    assert (tmp_path / "first" / "manifest.json").stat().st_mtime_ns == before
    with pytest.raises(PrepareError, match="holds a subset"):
        write_half_subset(source, tmp_path / "first", seed=1)


def test_git_state_is_dirty_for_changed_code_but_not_for_changed_results(tmp_path, monkeypatch):
    import subprocess

    def git(*words):
        subprocess.run(["git", *words], cwd=tmp_path, check=True, capture_output=True)

    results = tmp_path / "experiments" / "results" / "fp_objective" / RESULTS_FILE
    results.parent.mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    for path in (results, tmp_path / "docs" / "RESULTS.md", tmp_path / "code.py"):
        path.write_text("one\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(common, "REPO", tmp_path)
    commit, dirty = common.git_state()
    assert len(commit) == 40 and dirty is False
    results.write_text("two\n")
    (tmp_path / "docs" / "RESULTS.md").write_text("two\n")
    assert common.git_state() == (commit, False)
    (tmp_path / "code.py").write_text("two\n")
    assert common.git_state() == (commit, True)
