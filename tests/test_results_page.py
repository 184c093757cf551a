"""The statistics over seeds and docs/RESULTS.md rendered from results files."""

import json

import numpy as np
import pytest

from experiments import common, make_results, pretraining
from experiments.aggregate import summarize, summarize_runs
from experiments.claims import CLAIMS, FP_OBJECTIVE, RESULTS_FILE

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
