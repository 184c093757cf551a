"""experiments/frame_families.py: next-frame scores grouped by motion family."""

import json

import pytest

from dynamonet_tf.frame_metrics import psnr_of_mse
from experiments import frame_families
from experiments.claims import FRAME_PREDICTION, RESULTS_FILE


def means(values):
    return dict(zip(("ssim", "psnr", "mse"), values))


def class_scores(frames, model, copy, future=None):
    """A metrics.json per_class entry: (ssim, psnr, mse) of the model and of copying, over
    all frames and (``future``: ``(frames, model, copy)``, default the same) frame T+1."""
    frames_t1, model_t1, copy_t1 = future or (frames, model, copy)
    return {
        "frames": frames,
        "model": means(model),
        "copy_last_frame": means(copy),
        "future_frame": {
            "frames": frames_t1,
            "model": means(model_t1),
            "copy_last_frame": means(copy_t1),
        },
    }


def test_families_are_frame_weighted_means_of_their_classes_in_both_scopes():
    per_class = {
        "pan_left": class_scores(
            10,
            (0.8, 24.0, 0.004),
            (0.6, 22.0, 0.008),
            future=(2, (0.7, 20.0, 0.01), (0.5, 19, 0.02)),
        ),
        "pan_right": class_scores(
            30,
            (0.9, 28.0, 0.002),
            (0.7, 23.0, 0.006),
            future=(6, (0.9, 26.0, 0.003), (0.6, 21, 0.01)),
        ),
        "still": class_scores(5, (1.0, 60.0, 1e-6), (1.0, 100.0, 0.0)),
    }
    families = frame_families.family_scores(per_class)
    assert list(families) == ["pans", "still"]  # only the families present, in their order
    pans = families["pans"]["all"]
    assert pans["frames"] == 40
    assert pans["model"]["ssim"] == pytest.approx((10 * 0.8 + 30 * 0.9) / 40)
    assert pans["model"]["psnr"] == pytest.approx((10 * 24.0 + 30 * 28.0) / 40)
    assert pans["copy_last_frame"]["mse"] == pytest.approx((10 * 0.008 + 30 * 0.006) / 40)
    assert pans["model"]["psnr_of_mean_mse"] == pytest.approx(psnr_of_mse(0.0025))
    future = families["pans"]["future_frame"]
    assert future["frames"] == 8
    assert future["model"]["ssim"] == pytest.approx((2 * 0.7 + 6 * 0.9) / 8)
    assert future["copy_last_frame"]["ssim"] == pytest.approx((2 * 0.5 + 6 * 0.6) / 8)
    assert families["still"]["all"]["copy_last_frame"]["psnr_of_mean_mse"] == 100.0  # capped


def test_classes_of_another_dataset_are_refused_by_name():
    per_class = {"pan_left": class_scores(1, (1, 1, 1), (1, 1, 1))}
    per_class["ApplyEyeMakeup"] = per_class["pan_left"]
    with pytest.raises(frame_families.FamilyError, match="classes ApplyEyeMakeup are not"):
        frame_families.family_scores(per_class)


def test_the_table_has_a_row_per_run_and_family_with_signed_differences():
    per_class = {
        "zoom_in": class_scores(
            8, (0.95, 30.4, 0.001), (0.9, 30.0, 0.002), future=(1, (0.8, 1, 1), (0.85, 1, 1))
        ),
        "still": class_scores(2, (0.9999, 60.0, 1e-6), (1.0, 100.0, 0.0)),
    }
    text = frame_families.table(
        [("pretrain_global, seed2", frame_families.family_scores(per_class))]
    )
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| run | family | frames | SSIM (RGB), model")
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells[:6] == ["pretrain_global, seed2", "zooms", "8", "0.950", "0.900", "+0.050"]
    assert cells[6:9] == ["0.800", "0.850", "-0.050"]  # frame T+1 alone
    assert cells[9:12] == ["30.4", "30.0", "+0.4"]
    still = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert still[3:6] == ["1.000", "1.000", "+0.000"]  # rounded, then signed: not -0.000
    assert still[9:12] == ["60.0", "100.0", "-40.0"]


def write_recorded(results_dir, runs):
    """A frame-prediction results.json recording ``runs``: ``(arm, seed, model_dir)`` or
    ``(arm, seed, model_dir, config_digest)``."""
    out = results_dir / FRAME_PREDICTION.name
    out.mkdir(parents=True, exist_ok=True)
    arms = {arm: {"runs": []} for arm in FRAME_PREDICTION.arms}
    for arm, seed, model_dir, *digest in runs:
        run = {"seed": seed, "model_dir": str(model_dir), "config_digest": (digest or ["d"])[0]}
        arms[arm]["runs"].append(run)
    (out / RESULTS_FILE).write_text(json.dumps({"arms": arms}))


def test_the_recorded_runs_on_this_machine_are_taken_by_arm_then_seed(tmp_path):
    folders = {name: tmp_path / "runs" / name for name in ("j10", "j2", "p3", "gone")}
    for name, folder in folders.items():
        if name != "gone":
            folder.mkdir(parents=True)
    write_recorded(
        tmp_path / "results",
        [
            ("joint_global", 10, folders["j10"]),
            ("joint_global", 2, folders["j2"]),
            ("pretrain_global", 3, folders["p3"]),
            ("pretrain_per_pixel", 3, folders["gone"]),  # recorded, its folder not here
        ],
    )
    found = frame_families.recorded_run_dirs(tmp_path / "results")
    assert found == [folders["p3"], folders["j2"], folders["j10"]]


def test_no_run_on_this_machine_is_one_line(tmp_path, monkeypatch):
    write_recorded(tmp_path, [("joint_global", 0, tmp_path / "gone")])
    monkeypatch.setattr(frame_families, "RESULTS_DIR", tmp_path)
    with pytest.raises(SystemExit) as error:
        frame_families.main([])
    message = str(error.value)
    assert message.startswith("error: no run recorded in ") and "\n" not in message
    assert str(tmp_path / FRAME_PREDICTION.name / RESULTS_FILE) in message
    assert not (tmp_path / FRAME_PREDICTION.name / frame_families.FAMILIES_FILE).exists()
    assert not (tmp_path / FRAME_PREDICTION.name / frame_families.FAMILIES_JSON).exists()


def test_a_folder_that_is_not_a_run_is_one_line_naming_it(tmp_path):
    with pytest.raises(SystemExit) as error:
        frame_families.main([str(tmp_path / "missing")])
    message = str(error.value)
    assert message.startswith("error: ") and "missing" in message and "\n" not in message


def fake_families(ssim):
    per_class = {"pan_left": class_scores(4, (ssim, 25.0, 0.003), (0.6, 22.0, 0.006))}
    return frame_families.family_scores(per_class)


def test_scores_of_recorded_runs_whose_folders_are_gone_are_kept_and_the_rest_named(
    tmp_path, monkeypatch
):
    here = tmp_path / "runs" / "here"
    here.mkdir(parents=True)
    write_recorded(
        tmp_path,
        [
            ("pretrain_global", 4, here, "d4"),
            ("pretrain_global", 2, tmp_path / "gone2", "d2"),  # kept from families.json
            ("joint_global", 3, tmp_path / "gone3", "new"),  # its kept scores are of "old"
            ("joint_global", 1, tmp_path / "gone1", "d1"),  # never scored
        ],
    )
    earlier = [
        {
            "arm": "pretrain_global",
            "seed": 2,
            "config_digest": "d2",
            "checkpoint": "ckpt-9",
            "families": fake_families(0.7),
        },
        {
            "arm": "joint_global",
            "seed": 3,
            "config_digest": "old",
            "checkpoint": "ckpt-9",
            "families": fake_families(0.71),
        },
        {
            "arm": "pretrain_per_pixel",
            "seed": 0,
            "config_digest": "d0",
            "checkpoint": "ckpt-9",
            "families": fake_families(0.72),
        },  # no longer recorded: dropped
    ]
    experiment = tmp_path / FRAME_PREDICTION.name
    (experiment / frame_families.FAMILIES_JSON).write_text(json.dumps({"runs": earlier}))
    scored_dirs = []

    def family_rows(model_dir):
        scored_dirs.append(model_dir)
        return fake_families(0.9), "ckpt-3000"

    monkeypatch.setattr(frame_families, "_family_rows", family_rows)
    monkeypatch.setattr(frame_families, "RESULTS_DIR", tmp_path)
    frame_families.main([])
    assert scored_dirs == [here]  # only the folder on this machine is scored
    kept = json.loads((experiment / frame_families.FAMILIES_JSON).read_text())
    assert [(run["arm"], run["seed"], run["checkpoint"]) for run in kept["runs"]] == [
        ("pretrain_global", 2, "ckpt-9"),
        ("pretrain_global", 4, "ckpt-3000"),
    ]
    assert kept["runs"][1]["config_digest"] == "d4"
    assert kept["runs"][1]["families"] == json.loads(json.dumps(fake_families(0.9)))
    assert kept["unscored"] == ["joint_global, seed1", "joint_global, seed3"]
    page = (experiment / frame_families.FAMILIES_FILE).read_text()
    assert page == frame_families.render(kept)
    rows = [line for line in page.splitlines() if line.startswith("| pretrain_global")]
    assert [row.split("|")[1].strip() for row in rows] == [
        "pretrain_global, seed2",
        "pretrain_global, seed4",
    ]
    assert [row.split("|")[4].strip() for row in rows] == ["0.700", "0.900"]
    assert page.rstrip().endswith("joint_global, seed1; joint_global, seed3.")


@pytest.mark.parametrize("damaged", ['{"runs": [', '{"runs": [{"arm": "joint_global"}]}'])
def test_a_damaged_families_json_is_one_line_and_left_as_found(tmp_path, monkeypatch, damaged):
    write_recorded(tmp_path, [("joint_global", 0, tmp_path / "gone")])
    path = tmp_path / FRAME_PREDICTION.name / frame_families.FAMILIES_JSON
    path.write_text(damaged)
    monkeypatch.setattr(frame_families, "RESULTS_DIR", tmp_path)
    with pytest.raises(SystemExit) as error:
        frame_families.main([])
    message = str(error.value)
    assert message.startswith(f"error: {path} is not the families.json") and "\n" not in message
    assert path.read_text() == damaged
    assert not (tmp_path / FRAME_PREDICTION.name / frame_families.FAMILIES_FILE).exists()


def test_the_committed_families_page_is_the_rendering_of_the_committed_scores():
    experiment = frame_families.RESULTS_DIR / FRAME_PREDICTION.name
    families = json.loads((experiment / frame_families.FAMILIES_JSON).read_text())
    assert (experiment / frame_families.FAMILIES_FILE).read_text() == frame_families.render(
        families
    )
    recorded = {
        frame_families.run_label(arm, seed) for (arm, seed), _ in frame_families.recorded_in_order()
    }
    scored = {frame_families.run_label(run["arm"], run["seed"]) for run in families["runs"]}
    assert scored | set(families["unscored"]) == recorded and not scored & set(families["unscored"])
