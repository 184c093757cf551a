"""The printed tables: dynamonet_tf/text_table.py and evaluate_frame_prediction.py's scores."""

import pytest

from dynamonet_tf.cli.evaluate_frame_prediction import print_metrics
from dynamonet_tf.text_table import text_table


def test_columns_two_spaces_apart_whatever_the_widths():
    table = text_table(["", "a very long header", "b"], [["row", 1.5, "a long cell"]])
    assert table.splitlines() == [
        "       a very long header            b",
        "  row                 1.5  a long cell",
    ]
    assert text_table(["x", "y"], [["1", "2"]], align="rr", indent=0) == "x  y\n1  2"
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        text_table(["a", "b", "c"], [["1", "2"]])


def scores(ssim, psnr, masked):
    values = {"ssim": ssim, "ssim_luma": ssim + 0.01, "psnr": psnr, "psnr_of_mean_mse": psnr - 1}
    if masked:
        values.update({f"masked_{key}": value - 0.1 for key, value in list(values.items())})
    return values


def frame_metrics(masked):
    scope = {
        "frames": 32,
        "model": scores(0.84401, 21.9105, masked),
        "copy_last_frame": scores(0.8798, 23.7247, masked),
    }
    if masked:
        scope["masked_frames"] = 20
    return {
        "checkpoint": "runs/pretrain/checkpoints/ckpt-200",
        "clips": 4,
        "clip_frames": 9,
        "frame_stride": 1,
        "videos": 2,
        **scope,
        "future_frame": {**scope, "frames": 4},
        "flow_mask": {"method": "Farneback", "threshold_px": 1.0} if masked else False,
    }


@pytest.mark.parametrize("masked", [False, True])
def test_frame_prediction_table_has_units_spaced_headers_and_says_which_psnr(masked, capsys):
    print_metrics(frame_metrics(masked), "out")
    lines = capsys.readouterr().out.splitlines()
    headers = ("SSIM", "SSIM (Y)", "PSNR dB (mean of frames)", "PSNR dB (of mean MSE)")
    header = lines[3]
    assert lines[2] == "all predicted frames (32 frames" + (", 20 with motion)" if masked else ")")
    assert all(f"  {name}" in header for name in headers), header
    assert "psnr_of_mean_mse" not in header
    rows = lines[4 : 8 if masked else 6]
    labels = ["DynamoNet", "copy last frame"]
    labels += [f"{label}, moving area" for label in labels] if masked else []
    assert [row[2:].split("  ")[0] for row in rows] == labels
    assert rows[0].split()[-4:] == ["0.8440", "0.8540", "21.91", "20.91"]
    if masked:
        assert rows[2].split()[-4:] == ["0.7440", "0.7540", "21.81", "20.81"]
        assert "moving area: pixels whose Farneback flow is longer than 1.0 px" in lines[-4]
    text = " ".join(lines[-3:])
    assert text.startswith("Which PSNR to quote: PSNR dB (mean of frames) to compare with ")
    assert "Table 3" in text and "PSNR dB (of mean MSE) as the robust one" in text
