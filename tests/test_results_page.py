"""The statistics over seeds and docs/RESULTS.md rendered from results files."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from experiments import common, make_results
from experiments.aggregate import paired_difference, summarize, summarize_runs, verdict
from experiments.claims import ALPHAS, CLAIMS, FP_OBJECTIVE, PRETRAINING, RESULTS_FILE

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


def test_paired_difference_interval_is_the_one_sample_t_interval_and_the_sign_test_exact():
    differences = [0.04, -0.01, 0.03, 0.05, 0.02]
    found = paired_difference(differences)
    reference = stats.ttest_1samp(differences, 0.0).confidence_interval(0.95)
    np.testing.assert_allclose([found["low"], found["high"]], [reference.low, reference.high])
    assert found["n"] == 5 and (found["higher"], found["lower"], found["tied"]) == (4, 1, 0)
    # Two-sided: P(4 or more of 5 one way) twice = 2 * (5 + 1) / 32.
    assert found["sign_p"] == pytest.approx(2 * 6 / 32)
    assert verdict(found) == "no detectable difference"  # the interval holds 0
    # Ties are dropped from the sign test: 3 of 3 non-tied one way.
    tied = paired_difference([0.1, 0.0, 0.2, 0.3, 0.0])
    assert tied["tied"] == 2 and tied["sign_p"] == pytest.approx(2 / 8)


def test_the_detectable_effect_has_the_stated_power():
    """At the detectable difference, a two-sided paired t test over n seeds at the same spread
    rejects with probability ~80 % (the noncentral t, not the formula)."""
    differences = [0.02, -0.01, 0.03, 0.0, 0.01]
    found = paired_difference(differences)
    n, std = found["n"], found["std"]
    noncentrality = found["detectable"] / (std / math.sqrt(n))
    critical = stats.t.ppf(0.975, n - 1)
    power = stats.nct.sf(critical, n - 1, noncentrality) + stats.nct.cdf(
        -critical, n - 1, noncentrality
    )
    assert 0.75 < power < 0.85
    # Twice the spread, twice the detectable difference; more seeds, less.
    assert paired_difference(np.multiply(differences, 2))["detectable"] == pytest.approx(
        2 * found["detectable"]
    )
    assert paired_difference(differences * 2)["detectable"] < found["detectable"]


@pytest.mark.parametrize(
    "differences, expected",
    [
        ([0.02, 0.03, 0.025, 0.04, 0.03], "matches"),
        ([-0.02, -0.03, -0.025, -0.04, -0.03], "opposite"),
        ([0.02, -0.03, 0.025, 0.04, -0.03], "no detectable difference"),
        ([0.05, 0.05, 0.05], "matches"),  # no spread: the interval is the point
        ([0.05, 0.05], "no detectable difference"),  # ... but not from 2 seeds
        ([0.0, 0.0, 0.0], "no detectable difference"),
        ([0.3], "one seed"),
    ],
)
def test_verdict_needs_the_interval_to_exclude_zero(differences, expected):
    assert verdict(paired_difference(differences)) == expected


# ---------------------------------------------------------------------- the results page


def arm_entry(values, alpha, cpu_seconds=1800.0):
    runs = [
        {
            "seed": seed,
            "model_dir": f"runs/{alpha}/seed{seed}",
            "steps": 3000,
            "command": f"python -m experiments.fp_objective --seeds {seed}",
            "cost": {"cpu_seconds": cpu_seconds, "wall_seconds": cpu_seconds / 2},
            "git": {"commit": "0123456789abcdef", "dirty": False},
            "metrics": {
                "video_top1": v,
                "mean_class_accuracy": v,
                "clip_top1": v,
                "videos": 260,
                "ssim": 0.9,
                "share_frame_prediction_of_backbone": 0.25,
                "top1_accuracy": 0.875,
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


def fake_results(top1_with, top1_without, others=(0.5, 0.5, 0.5, 0.5, 0.5)):
    """A results file of fp_objective: per-seed top-1 of alpha 0.1 and alpha 0, ``others``
    for alpha 0.01 and 1."""
    values = {"0.1": top1_with, "0": top1_without}
    return {
        "experiment": "fp_objective",
        "command": "python -m experiments.fp_objective --seeds 0 1 2 3 4",
        "git_commit": "0123456789abcdef",
        "git_dirty": False,
        "config": "configs/default.yaml",
        "seeds": list(range(len(top1_with))),
        "steps": None,
        "smoke": False,
        "complete": True,
        "updated": "2026-01-01T00:00:00+00:00",
        "machine": {
            "cpu": "a CPU",
            "cores": 2,
            "gpus": [],
            "tensorflow": "2.20.0",
            "keras": "3.15.1",
        },
        "arms": {f"alpha_{alpha}": arm_entry(values.get(alpha, others), alpha) for alpha in ALPHAS},
    }


def render_with(tmp_path, results, name="fp_objective"):
    (tmp_path / name).mkdir(exist_ok=True)
    (tmp_path / name / RESULTS_FILE).write_text(json.dumps(results))
    return make_results.render(tmp_path)


def section(page, title):
    start = page.index(f"## {title}")
    end = page.find("\n## ", start + 1)
    return page[start : end if end > 0 else None]


WITH = [0.50, 0.55, 0.52, 0.58, 0.51]
WITHOUT = [0.45, 0.47, 0.46, 0.50, 0.47]


def test_results_page_renders_the_numbers_and_the_interval_of_a_results_file(tmp_path):
    page = render_with(tmp_path, fake_results(WITH, WITHOUT))
    text = section(page, FP_OBJECTIVE.title)
    mean, std = np.mean(WITH) * 100, np.std(WITH, ddof=1) * 100
    assert f"| alpha = 0.1 | {mean:.1f} ± {std:.1f} | {mean:.1f} ± {std:.1f} |" in text
    differences = np.subtract(WITH, WITHOUT) * 100
    low, high = stats.ttest_1samp(differences, 0.0).confidence_interval(0.95)
    assert (
        f"- video top-1 (%), alpha = 0.1 vs alpha = 0: {np.mean(WITH) * 100:.1f} vs "
        f"{np.mean(WITHOUT) * 100:.1f}; difference +{np.mean(differences):.1f} "
        f"[+{low:.1f}, +{high:.1f}] over seeds 0, 1, 2, 3, 4; sign test p = 0.0625 "
        "(5 higher, 0 lower)"
    ) in text
    assert "Verdict: **matches the paper**." in text
    assert "Counted: accuracies over 260 test videos (one video is 0.38 points)" in text
    assert "`python -m experiments.fp_objective --seeds 0 1 2 3 4` (complete;" in text
    assert "| alpha = 0 | 2 | 46.0 | 46.0 | 46.0 | 87.5 | 0.900 | 25.0 |" in text  # a seed's row
    glance = section(page, "At a glance")
    assert (
        f"| The frame-prediction objective and its weight alpha | alpha = 0.1 vs alpha = 0, "
        f"video top-1 (%) | {np.mean(WITH) * 100:.1f} vs {np.mean(WITHOUT) * 100:.1f} (5 seeds) "
        f"| +{np.mean(differences):.1f} [+{low:.1f}, +{high:.1f}] | 0.0625 | **matches the "
        "paper** |"
    ) in glance
    assert "| DynamoNet against its plain backbone, by motion family | DynamoNet" in glance
    assert "not run yet" in glance
    for claim in CLAIMS.values():
        if claim is not FP_OBJECTIVE:
            assert f"**Not run yet.** `{claim.command}` trains" in section(page, claim.title)
    # Cost: 4 arms x 5 seeds x 0.5 CPU hours.
    cost = section(page, "Where the numbers come from")
    assert "**Machine: a CPU, 2 cores; TensorFlow 2.20.0, Keras 3.15.1.**" in cost
    assert "| `fp_objective` | 20 of 20 | 3000 | 0123456789 | 10.00 | 5.00 |" in cost
    assert "| `pretraining` | not run yet |" in cost


@pytest.mark.parametrize(
    "with_, without, verdict_text",
    [
        (WITHOUT, WITH, "**opposite to the paper**"),
        ([0.5, 0.45, 0.6, 0.44, 0.5], WITHOUT, "**no detectable difference at this scale**"),
        ([0.5], [0.4], "one seed: no interval yet"),
    ],
)
def test_results_page_states_the_verdict_against_the_paper(tmp_path, with_, without, verdict_text):
    results = fake_results(with_, without, others=[0.5] * len(with_))
    text = section(render_with(tmp_path, results), FP_OBJECTIVE.title)
    assert f"alpha = 0.1 vs alpha = 0: {np.mean(with_) * 100:.1f}" in text
    line = next(line for line in text.splitlines() if "alpha = 0.1 vs alpha = 0:" in line)
    assert line.endswith(f"Verdict: {verdict_text}.")


def test_a_contrast_the_paper_does_not_make_is_judged_against_our_expectation(tmp_path):
    text = section(render_with(tmp_path, fake_results(WITH, WITHOUT)), FP_OBJECTIVE.title)
    line = next(line for line in text.splitlines() if "alpha = 1 vs alpha = 0:" in line)
    assert "the paper's only alpha is 0.1" in line
    assert line.endswith("Verdict: **matches our expectation**.")  # 50 % against WITHOUT


def test_results_page_of_no_results_says_not_run_yet_with_each_command(tmp_path):
    page = make_results.render(tmp_path)
    for claim in CLAIMS.values():
        assert f"**Not run yet.** `python -m experiments.{claim.name}` trains" in section(
            page, claim.title
        )
    make_results.main(["--results-dir", str(tmp_path), "--out", str(tmp_path / "RESULTS.md")])
    assert (tmp_path / "RESULTS.md").read_text() == page


def test_a_discussion_is_shown_and_flagged_when_written_for_other_results(tmp_path, capsys):
    results = fake_results(WITH, WITHOUT)
    text = section(render_with(tmp_path, results), FP_OBJECTIVE.title)
    assert "**What we see:** not written yet for these results." in text
    make_results.main(["--results-dir", str(tmp_path), "--stamp"])
    (stamp,) = capsys.readouterr().out.splitlines()
    assert stamp == f"fp_objective: <!-- results: {make_results.results_digest(results)} -->"
    discussion = tmp_path / "fp_objective" / make_results.DISCUSSION
    discussion.write_text(stamp.removeprefix("fp_objective: ") + "\nThe loss helps here.\n")
    text = section(make_results.render(tmp_path), FP_OBJECTIVE.title)
    assert "**What we see:** The loss helps here." in text and "read it with care" not in text
    # New numbers (another seed's top-1): the discussion no longer describes them.
    render_with(tmp_path, fake_results([*WITH[:4], 0.9], WITHOUT))
    assert "read it with care" in section(make_results.render(tmp_path), FP_OBJECTIVE.title)


def test_results_page_compares_the_gains_of_pretraining_seed_by_seed(tmp_path):
    top1 = {
        "pretrained_full": [0.625, 0.75, 0.5],
        "scratch_full": [0.25, 0.25, 0.25],
        "pretrained_half": [0.375, 0.625, 0.25],
        "scratch_half": [0.125, 0.125, 0.125],
    }
    arms = {}
    for arm in PRETRAINING.arms:
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
        arms[arm] = {"overrides": [], "init_from": None, "runs": runs, "summary": {}}
        arms[arm]["summary"] = summarize_runs(runs)
    results = dict(fake_results([0.5], [0.4]), experiment="pretraining", arms=arms, seeds=[0, 1, 2])
    results["complete"] = False
    page = render_with(tmp_path, results, name="pretraining")
    # Gains with half the labels .25, .5, .125 against .375, .5, .25 with all: lower, tied, lower.
    differences = np.subtract([0.25, 0.5, 0.125], [0.375, 0.5, 0.25]) * 100
    low, high = stats.ttest_1samp(differences, 0.0).confidence_interval(0.95)
    assert (
        "gain from pretraining, half the labels vs gain from pretraining, all labels: "
        "29.2 vs 37.5; "
        f"difference −{-np.mean(differences):.1f} [−{-low:.1f}, +{high:.1f}] over seeds 0, 1, 2; "
        "sign test p = 0.5 (0 higher, 2 lower, 1 tied)"
    ) in section(page, PRETRAINING.title)
    # The cost table counts runs without a recorded cost as unmeasured.
    assert "| `pretraining` | 12 of 15 (partial) | 10 | unknown | 0.00 (+12 unmeasured) |" in page


def test_the_committed_results_page_is_the_rendering_of_the_committed_results(monkeypatch):
    """docs/RESULTS.md holds no figure typed by hand: it is experiments/results/ rendered."""
    monkeypatch.chdir(common.REPO)
    assert make_results.RESULTS_PAGE.read_text() == make_results.render(make_results.RESULTS_DIR)
