"""experiments/frame_families.py: next-frame scores grouped by motion family."""

import json

import pytest

from dynamonet_tf.frame_metrics import psnr_of_mse
from experiments import frame_families


def class_scores(frames, model, copy):
    """A metrics.json per_class entry: (ssim, psnr, mse) of the model and of copying."""

    def means(values):
        return dict(zip(("ssim", "psnr", "mse"), values))

    return {"frames": frames, "model": means(model), "copy_last_frame": means(copy)}


def test_families_are_frame_weighted_means_of_their_classes():
    per_class = {
        "pan_left": class_scores(10, (0.8, 24.0, 0.004), (0.6, 22.0, 0.008)),
        "pan_right": class_scores(30, (0.9, 28.0, 0.002), (0.7, 23.0, 0.006)),
        "still": class_scores(5, (1.0, 60.0, 1e-6), (1.0, 100.0, 0.0)),
    }
    families = frame_families.family_scores(per_class)
    assert list(families) == ["pans", "still"]  # only the families present, in their order
    pans = families["pans"]["model"]
    assert pans["frames"] == 40
    assert pans["ssim"] == pytest.approx((10 * 0.8 + 30 * 0.9) / 40)
    assert pans["psnr"] == pytest.approx((10 * 24.0 + 30 * 28.0) / 40)
    assert pans["mse"] == pytest.approx((10 * 0.004 + 30 * 0.002) / 40)
    assert pans["psnr_of_mean_mse"] == pytest.approx(psnr_of_mse(0.0025))
    assert families["still"]["copy_last_frame"]["psnr_of_mean_mse"] == 100.0  # capped


def test_the_table_has_a_row_per_run_and_family_with_signed_differences():
    per_class = {
        "zoom_in": class_scores(8, (0.95, 30.4, 0.001), (0.9, 30.0, 0.002)),
        "still": class_scores(2, (0.9999, 60.0, 1e-6), (1.0, 100.0, 0.0)),
    }
    text = frame_families.table(
        [("pretrain_global, seed2", frame_families.family_scores(per_class))]
    )
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| run | family | frames | SSIM (RGB), model")
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells[:6] == ["pretrain_global, seed2", "zooms", "8", "0.950", "0.900", "+0.050"]
    assert cells[6:9] == ["30.4", "30.0", "+0.4"]
    still = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert still[3:9] == ["1.000", "1.000", "+0.000", "60.0", "100.0", "-40.0"]


def test_finished_runs_are_found_by_arm_and_seed(tmp_path):
    runs = tmp_path / "frame_prediction" / "runs"
    for arm, seed, finished in (
        ("joint_global", 10, True),
        ("joint_global", 2, True),
        ("pretrain_global", 3, True),
        ("pretrain_global", 4, False),  # still training: no report
    ):
        folder = runs / arm / f"seed{seed}"
        folder.mkdir(parents=True)
        if finished:
            (folder / "report.json").write_text(json.dumps({}))
    found = [(path.parent.name, path.name) for path in frame_families.run_dirs(tmp_path)]
    assert found == [
        ("pretrain_global", "seed3"),
        ("joint_global", "seed2"),
        ("joint_global", "seed10"),
    ]


def test_no_run_is_one_line_naming_the_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        frame_families.main([str(tmp_path / "missing")])
    message = str(error.value)
    assert message.startswith("error: ") and "missing" in message and "\n" not in message
