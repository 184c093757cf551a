"""The experiment scripts end to end on tiny data, the half-label subset, the aggregation over
seeds, and the results page rendered from results files."""

import dataclasses
import json

import numpy as np
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
from experiments.aggregate import summarize, summarize_runs
from experiments.claims import CLAIMS, FP_OBJECTIVE, RESULTS_FILE
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


# ---------------------------------------------------------------------- aggregation


def test_mean_and_std_over_seeds_are_numpys():
    values = [0.61, 0.55, 0.72, 0.5]
    summary = summarize(values)
    assert summary["n"] == 4
    np.testing.assert_allclose(summary["mean"], np.mean(values))
    np.testing.assert_allclose(summary["std"], np.std(values, ddof=1))
    assert summarize([0.3]) == {"mean": 0.3, "std": None, "n": 1}
    runs = [{"metrics": {"a": 1.0, "b": 2.0}}, {"metrics": {"a": 3.0}}]
    assert summarize_runs(runs) == {
        "a": {"mean": 2.0, "std": float(np.std([1.0, 3.0], ddof=1)), "n": 2}
    }


# ---------------------------------------------------------------------- the results page


def fake_results(top1_with, top1_without):
    """A results file of fp_objective with the given per-seed top-1 of its two arms."""

    def arm(values, alpha):
        runs = [
            {
                "seed": seed,
                "model_dir": f"runs/{alpha}/seed{seed}",
                "steps": 3000,
                "command": f"python -m experiments.fp_objective --seeds {seed}",
                "metrics": {
                    "video_top1": v,
                    "mean_class_accuracy": v,
                    "clip_top1": v,
                    "videos": 39,
                },
            }
            for seed, v in enumerate(values)
        ]
        return {
            "overrides": [f"loss.alpha={alpha}"],
            "init_from": None,
            "runs": runs,
            "summary": summarize_runs(runs),
        }

    return {
        "experiment": "fp_objective",
        "command": "python -m experiments.fp_objective --seeds 0 1 2",
        "git_commit": "0123456789abcdef",
        "git_dirty": False,
        "config": "configs/default.yaml",
        "seeds": [0, 1, 2],
        "steps": None,
        "smoke": False,
        "complete": True,
        "updated": "2026-01-01T00:00:00+00:00",
        "arms": {"alpha_0.1": arm(top1_with, 0.1), "alpha_0": arm(top1_without, 0)},
    }


def render_with(tmp_path, results):
    (tmp_path / "fp_objective").mkdir(exist_ok=True)
    (tmp_path / "fp_objective" / RESULTS_FILE).write_text(json.dumps(results))
    return make_results.render(tmp_path)


def section(page, claim):
    start = page.index(f"## {claim.title}")
    end = page.find("\n## ", start + 1)
    return page[start : end if end > 0 else None]


def test_results_page_renders_the_numbers_of_a_results_file(tmp_path):
    page = render_with(tmp_path, fake_results([0.5, 0.6, 0.7], [0.4, 0.45, 0.65]))
    text = section(page, FP_OBJECTIVE)
    assert (
        "| alpha = 0.1 (the paper's loss) | 60.0 ± 10.0 | 60.0 ± 10.0 | 60.0 ± 10.0 | 3 |" in text
    )
    assert "| alpha = 0 (no frame prediction) | 50.0 ± 13.2 |" in text  # std([40, 45, 65], ddof=1)
    assert "`python -m experiments.fp_objective --seeds 0 1 2` (complete; commit 0123456789" in text
    assert (
        "| alpha = 0 (no frame prediction) | 2 | 65.0 | 65.0 | 65.0 | "
        "`python -m experiments.fp_objective --seeds 2` |" in text
    )
    assert "60.0 vs 50.0 (difference 10.0 ± 5.0, seeds 0, 1, 2)" in text
    assert "Paper: 50.2% with the prediction loss vs 43.2% without" in text
    assert "Verdict: **matches the paper's direction** in all 3 seeds." in text
    assert "Accuracies are over 39 test videos: one video is 2.6 points." in text
    glance = page[page.index("## At a glance") : page.index("## Next-frame prediction")]
    assert (
        "| The frame-prediction objective | alpha = 0.1 (the paper's loss) vs alpha = 0 (no frame "
        "prediction), video top-1 (%) | 60.0 vs 50.0 (3 seeds) | **matches the paper's direction** "
        "in all 3 seeds |"
    ) in glance
    assert (
        "| DynamoNet against its plain backbone | DynamoNet (backbone + filters) vs plain "
        "backbone classifier, video top-1 (%) | not run yet | — |" in glance
    )
    for claim in CLAIMS.values():
        if claim is not FP_OBJECTIVE:
            assert f"**Not run yet.** `{claim.command}` trains" in section(page, claim)


@pytest.mark.parametrize(
    "with_, without, verdict",
    [
        ([0.4, 0.5, 0.6], [0.5, 0.6, 0.7], "**opposite to the paper's direction** in all 3 seeds"),
        ([0.5, 0.5, 0.7], [0.4, 0.6, 0.6], "**inconclusive**: higher in 2, lower in 1 of 3 seeds"),
        (
            [0.5, 0.5, 0.7],
            [0.5, 0.5, 0.8],
            "**inconclusive**: higher in 0, lower in 1, tied in 2 of 3 seeds",
        ),
        ([0.5], [0.4], "**matches the paper's direction** in its only seed"),
    ],
)
def test_results_page_states_the_direction_against_the_paper(tmp_path, with_, without, verdict):
    assert f"Verdict: {verdict}." in render_with(tmp_path, fake_results(with_, without))


def test_results_page_of_no_results_says_not_run_yet_with_each_command(tmp_path):
    page = make_results.render(tmp_path)
    for claim in CLAIMS.values():
        assert f"**Not run yet.** `python -m experiments.{claim.name}` trains" in section(
            page, claim
        )
    make_results.main(["--results-dir", str(tmp_path), "--out", str(tmp_path / "RESULTS.md")])
    assert (tmp_path / "RESULTS.md").read_text() == page


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


def test_results_page_compares_the_gains_of_pretraining_seed_by_seed(tmp_path):
    top1 = {
        "pretrained_full": [0.625, 0.75, 0.5],
        "scratch_full": [0.25, 0.25, 0.25],
        "pretrained_half": [0.375, 0.625, 0.25],
        "scratch_half": [0.125, 0.125, 0.125],
    }
    arms = {}
    for arm in pretraining.PRETRAINING.arms:
        runs = [
            {
                "seed": seed,
                "model_dir": f"runs/{arm}/seed{seed}",
                "steps": 10,
                "command": "c",
                "metrics": {"video_top1": value, "mean_class_accuracy": value, "clip_top1": value},
            }
            for seed, value in enumerate(top1.get(arm, []))
        ]
        arms[arm] = {
            "overrides": [],
            "init_from": None,
            "runs": runs,
            "summary": summarize_runs(runs),
        }
    results = dict(fake_results([0.5], [0.4]), experiment="pretraining", arms=arms)
    (tmp_path / "pretraining").mkdir()
    (tmp_path / "pretraining" / RESULTS_FILE).write_text(json.dumps(results))
    page = make_results.render(tmp_path)
    # Gains with half the labels .25, .5, .125 against .375, .5, .25 with all: lower, tied, lower.
    assert (
        "gain from pretraining, half the labels vs gain from pretraining, all labels: 29.2 vs 37.5 "
        "(difference -8.3 ± 7.2, seeds 0, 1, 2)"
    ) in section(page, pretraining.PRETRAINING)
    assert "**inconclusive**: higher in 0, lower in 2, tied in 1 of 3 seeds" in page
    glance = page[page.index("## At a glance") : page.index("## Next-frame prediction")]
    assert (
        "- Self-supervised pretraining, with all and with half of the labels: "
        "gain from pretraining, half the labels vs gain from pretraining, all labels, "
        "video top-1 (%): **inconclusive**"
    ) in glance


def test_the_committed_results_page_is_the_rendering_of_the_committed_results(monkeypatch):
    """docs/RESULTS.md holds no figure typed by hand: it is experiments/results/ rendered."""
    monkeypatch.chdir(common.REPO)
    assert make_results.RESULTS_PAGE.read_text() == make_results.render(make_results.RESULTS_DIR)
