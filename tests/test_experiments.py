"""The experiment scripts end to end on tiny data, the half-label subset, the aggregation over
seeds, and the results page rendered from results files."""

import dataclasses
import json

import pytest
import tensorflow as tf

from dynamonet_tf.data.prepare import PrepareError
from dynamonet_tf.data.schema import encode_video_example
from experiments import (
    backbone_baseline,
    common,
    fp_objective,
    frame_prediction,
    make_results,
    pretraining,
)
from experiments.claims import FP_OBJECTIVE, RESULTS_FILE
from experiments.datasets import HELD_OUT_PHOTOS, TRAINING_PHOTOS
from experiments.label_subset import RULE, half_count, write_half_subset


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """One folder of tiny prepared demos, shared by every script's smoke run."""
    return tmp_path_factory.mktemp("experiment_data")


def smoke(script, data_root, out):
    return script.main(
        ["--smoke", "--seeds", "0", "--out", str(out), "--data-root", str(data_root)]
    )


def read_results(out):
    return json.loads((out / RESULTS_FILE).read_text())


# ---------------------------------------------------------------------- the scripts


@pytest.mark.slow
def test_frame_prediction_smoke_scores_both_filter_kinds_on_held_out_photographs(
    data_root, tmp_path
):
    results = smoke(frame_prediction, data_root, tmp_path)
    assert results == read_results(tmp_path) and results["complete"] and results["smoke"]
    assert list(results["arms"]) == ["global_filters", "per_pixel_filters"]
    assert "model.per_pixel_filters=true" in results["arms"]["per_pixel_filters"]["overrides"]
    for arm in results["arms"].values():
        (run,) = arm["runs"]
        assert run["seed"] == 0 and run["steps"] == 2
        assert run["metrics"]["clips"] > 0
        assert {"ssim", "ssim_luma", "psnr", "copy_ssim", "copy_psnr"} <= set(run["metrics"])
        assert arm["summary"]["ssim"] == {"mean": run["metrics"]["ssim"], "std": None, "n": 1}
        # Trained on clips of the training photographs, scored on the held-out ones.
        assert any(
            "training_photos" in o for o in arm["overrides"] if o.startswith("data.train_files=")
        )
        assert any(
            "held_out_photos" in o for o in arm["overrides"] if o.startswith("data.eval_files=")
        )
    assert not set(TRAINING_PHOTOS) & set(HELD_OUT_PHOTOS)
    for folder, photos in (
        ("training_photos", TRAINING_PHOTOS),
        ("held_out_photos", HELD_OUT_PHOTOS),
    ):
        marker = data_root / "smoke" / "photo_split" / folder / "videos" / ".complete"
        assert json.loads(marker.read_text())["photos"] == sorted(photos)


@pytest.mark.slow
def test_fp_objective_and_backbone_baseline_smoke_share_the_from_scratch_run(
    data_root, tmp_path, monkeypatch
):
    fp_out, backbone_out = tmp_path / "fp_objective", tmp_path / "backbone_baseline"
    fp_results = smoke(fp_objective, data_root, fp_out)
    assert [arm["overrides"][-1] for arm in fp_results["arms"].values()] == [
        "loss.alpha=0.1",
        "loss.alpha=0",
    ]
    assert 0.0 <= fp_results["arms"]["alpha_0"]["runs"][0]["metrics"]["video_top1"] <= 1.0
    shared_run = fp_results["arms"]["alpha_0.1"]["runs"][0]

    results = smoke(backbone_baseline, data_root, backbone_out)
    assert "train.classifier_only=true" in results["arms"]["backbone_only"]["overrides"]
    assert "train.classifier_only=true" not in results["arms"]["dynamonet"]["overrides"]
    assert {"video_top1", "clip_top1"} <= set(
        results["arms"]["backbone_only"]["runs"][0]["metrics"]
    )
    assert "same_as" not in results["arms"]["backbone_only"]["runs"][0]
    # DynamoNet's arm is fp_objective's alpha_0.1 with the same config: taken, not trained.
    (reused,) = results["arms"]["dynamonet"]["runs"]
    assert (
        reused["model_dir"]
        == shared_run["model_dir"]
        == str(fp_out / "runs" / "alpha_0.1" / "seed0")
    )
    assert reused["metrics"] == shared_run["metrics"] and reused["same_as"] == [
        "fp_objective",
        "alpha_0.1",
    ]
    assert not (backbone_out / "runs" / "dynamonet").exists()
    assert results["machine"]["tensorflow"] == tf.__version__ and results["machine"]["cores"] >= 1
    page = section(make_results.render(tmp_path), backbone_baseline.BACKBONE_BASELINE)
    assert (
        f'- "DynamoNet (backbone + filters)" (seeds 0) are the runs of '
        f"fp_objective's arm alpha_0.1: "
        f"the same config and seeds, trained once (`{shared_run['model_dir']}`)."
    ) in page
    assert (
        f"**Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores; "
        f"TensorFlow {tf.__version__}" in page
    )

    # Another config (one more step) is not the shared run's: the arm would train its own.
    args = common.parse_args(
        backbone_baseline.BACKBONE_BASELINE, ["--smoke", "--out", str(backbone_out)]
    )
    arm = backbone_baseline.ARMS[0]
    config = common.load_config(
        common.REPO / common.CONFIG, [*results["arms"]["dynamonet"]["overrides"], "train.seed=0"]
    )
    assert common.finished_run(args, arm, 0, config)[0] == fp_out / "runs" / "alpha_0.1" / "seed0"
    other = dataclasses.replace(config, train=dataclasses.replace(config.train, steps_per_epoch=3))
    assert common.finished_run(args, arm, 0, other) == (
        backbone_out / "runs" / "dynamonet" / "seed0",
        None,
    )

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(common, "Trainer", no_training)
    assert smoke(fp_objective, data_root, fp_out)["arms"] == fp_results["arms"]
    assert smoke(backbone_baseline, data_root, backbone_out)["arms"] == results["arms"]


@pytest.mark.slow
def test_pretraining_smoke_by_arms_then_whole(data_root, tmp_path):
    def run(*arms):
        words = ["--smoke", "--seeds", "0", "--out", str(tmp_path), "--data-root", str(data_root)]
        return pretraining.main(words + (["--arms", *arms] if arms else []))

    # --arms: only those arms train; an arm needs the run it starts from.
    with pytest.raises(
        SystemExit,
        match="arm pretrained_half starts from arm pretrain's run of seed 0, which has "
        "not finished .*--arms pretrain --seeds 0",
    ):
        run("pretrained_half")
    results = run("scratch_half")
    assert [name for name, arm in results["arms"].items() if arm["runs"]] == ["scratch_half"]
    assert not results["complete"] and "--seeds 0 --arms scratch_half --smoke" in results["command"]
    assert not (tmp_path / "runs" / "pretrain").exists()
    results = run("pretrain", "pretrained_half")
    assert [name for name, arm in results["arms"].items() if arm["runs"]] == [
        "pretrain",
        "pretrained_half",
        "scratch_half",
    ]

    # The whole experiment then trains the two arms left and gathers the others.
    results = run()
    assert results["complete"] and list(results["arms"]) == list(pretraining.PRETRAINING.arms)
    assert "ssim" in results["arms"]["pretrain"]["runs"][0]["metrics"]
    for arm in ("pretrained_full", "pretrained_half"):
        assert (tmp_path / "runs" / arm / "seed0" / "init_report.json").exists()
        assert results["arms"][arm]["init_from"] == "pretrain"
    for arm in ("scratch_full", "scratch_half"):
        assert not (tmp_path / "runs" / arm / "seed0" / "init_report.json").exists()
    half = [
        o for o in results["arms"]["scratch_half"]["overrides"] if o.startswith("data.train_files=")
    ]
    assert half == [
        f"data.train_files={data_root / 'smoke' / 'labeled_split1_half' / 'train-*.tfrecord'}"
    ]
    assert "video_top1" in results["arms"]["scratch_half"]["summary"]


def test_command_line_defaults_and_the_command_recorded():
    args = common.parse_args(FP_OBJECTIVE, [])
    assert args.seeds == [0, 1, 2] and str(args.out) == "experiments/results/fp_objective"
    assert common.command(args) == "python -m experiments.fp_objective --seeds 0 1 2"
    assert common.seed_command(args, 1) == (
        "python -m experiments.fp_objective --seeds 1 --out experiments/results/fp_objective_seed1"
    )
    args = common.parse_args(FP_OBJECTIVE, ["--steps", "500", "--smoke"])
    assert str(args.out) == "experiments/results/smoke/fp_objective"
    assert (
        common.command(args)
        == "python -m experiments.fp_objective --seeds 0 1 2 --steps 500 --smoke"
    )
    assert common.base_overrides(args)[-2:] == ["train.epochs=1", "train.steps_per_epoch=500"]
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
