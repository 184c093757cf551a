import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import structural_similarity

from dynamonet_tf.frame_metrics import (
    MAX_PSNR,
    SSIM_BORDER,
    SSIM_SETTINGS,
    FramePredictionScores,
    frame_scores,
    luma,
    psnr,
    ssim,
    ssim_luma,
)


def smooth_frames(seed, shape=(48, 56, 3)):
    rng = np.random.default_rng(seed)
    coarse = rng.random((shape[0] // 8, shape[1] // 8, 3))
    return np.kron(coarse, np.ones((8, 8, 1)))[: shape[0], : shape[1]]


def test_ssim_agrees_with_tensorflow():
    """tf.image.ssim uses the same 11x11 Gaussian (sigma 1.5) window and constants."""
    a = smooth_frames(0)
    b = np.clip(a + np.random.default_rng(1).normal(scale=0.05, size=a.shape), 0, 1)
    expected = float(tf.image.ssim(tf.constant(a[None]), tf.constant(b[None]), max_val=1.0)[0])
    assert ssim(a, b) == pytest.approx(expected, abs=2e-3)
    expected_y = float(
        tf.image.ssim(
            tf.constant(luma(a)[None, ..., None]),
            tf.constant(luma(b)[None, ..., None]),
            max_val=1.0,
        )[0]
    )
    assert ssim_luma(a, b) == pytest.approx(expected_y, abs=2e-3)
    assert ssim(a, a) == pytest.approx(1.0)


def test_psnr_matches_its_definition_and_is_capped():
    a = smooth_frames(2)
    b = np.clip(a + 0.1, 0, 1)
    mse = np.mean((a - b) ** 2)
    assert psnr(a, b) == pytest.approx(10 * np.log10(1 / mse))
    assert psnr(a, a) == MAX_PSNR


def test_luma_weights():
    np.testing.assert_allclose(
        luma(np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])), [0.299, 0.587, 0.114]
    )


def test_an_all_true_mask_changes_nothing():
    """Masked SSIM averages skimage's map over the same interior its mean SSIM uses."""
    a, b = smooth_frames(3), np.clip(smooth_frames(3) + smooth_frames(4) * 0.2 - 0.1, 0, 1)
    everywhere = np.ones(a.shape[:2], bool)
    expected = structural_similarity(a, b, channel_axis=-1, **SSIM_SETTINGS)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-12)
    assert ssim(a, b, everywhere) == pytest.approx(expected, abs=1e-12)
    assert ssim_luma(a, b, everywhere) == pytest.approx(ssim_luma(a, b), abs=1e-12)
    assert psnr(a, b, everywhere) == pytest.approx(psnr(a, b))
    assert frame_scores(a, b, everywhere) == pytest.approx(
        {**frame_scores(a, b), **{f"masked_{k}": v for k, v in frame_scores(a, b).items()}}
    )


def test_masked_scores_cover_only_the_masked_pixels():
    a = smooth_frames(5)
    b = a.copy()
    b[:, 28:] = np.clip(b[:, 28:] + 0.2, 0, 1)  # errors in the right half only
    right = np.zeros(a.shape[:2], bool)
    right[:, 28:] = True
    assert psnr(a, b, right) == pytest.approx(
        10 * np.log10(1 / np.mean((a[:, 28:] - b[:, 28:]) ** 2))
    )
    assert psnr(a, b, ~right) == MAX_PSNR
    _, full = structural_similarity(luma(a), luma(b), full=True, **SSIM_SETTINGS)
    interior = np.zeros_like(right)
    interior[SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER] = True
    assert ssim_luma(a, b, right) == pytest.approx(full[right & interior].mean())
    far_left = np.zeros_like(right)
    far_left[:, : 28 - SSIM_BORDER - 1] = True  # beyond the reach of the 11 x 11 window
    assert ssim(a, b, right) < ssim(a, b) < ssim(a, b, far_left) == pytest.approx(1.0)


def test_a_mask_outside_the_ssim_interior_is_refused():
    a = smooth_frames(6)
    border = np.zeros(a.shape[:2], bool)
    border[:SSIM_BORDER] = True
    with pytest.raises(ValueError, match="no pixel"):
        ssim(a, a, border)


def test_mismatched_shapes_are_named():
    a = np.zeros((2, 16, 16, 3))
    with pytest.raises(ValueError, match="share one shape"):
        FramePredictionScores().add("video", a, a[:1], a)


def test_psnr_of_mean_mse_weighs_every_frame_alike_where_mean_psnr_does_not():
    """A still frame copied exactly scores the 100 dB cap; averaged with a frame off by 0.1
    everywhere (20 dB), mean PSNR says 60 dB, the PSNR of the mean MSE (0.005) 23.01 dB."""
    still = np.full((2, 16, 16, 3), 0.5)
    truth = still.copy()
    truth[1] += 0.1
    scores = FramePredictionScores()
    scores.add("video", still, truth, truth)  # the model is exact; copying is off in frame 2
    summary = scores.summary()["copy_last_frame"]
    assert summary["psnr"] == pytest.approx((100.0 + 20.0) / 2)
    assert summary["mse"] == pytest.approx(0.01 / 2)
    assert summary["psnr_of_mean_mse"] == pytest.approx(10 * np.log10(1 / 0.005))
    assert scores.summary()["model"]["psnr_of_mean_mse"] == 100.0


def test_per_class_scores_are_those_of_each_class_alone():
    """Each class's means equal those of a scorer given that class's videos only; ids that do
    not all name a class give no classes."""
    rng = np.random.default_rng(3)
    clips = {
        f"{label}/v{index}": rng.random((3, 3, 16, 16, 3))
        for label, index in (("pan", 0), ("still", 0), ("pan", 1))
    }
    everything = FramePredictionScores()
    alone = {"pan": FramePredictionScores(), "still": FramePredictionScores()}
    for video, (frames, truth, predicted) in clips.items():
        everything.add(video, frames, truth, predicted)
        alone[video.split("/")[0]].add(video, frames, truth, predicted)
    per_class = everything.per_class()
    assert list(per_class) == ["pan", "still"]
    for label, scores in alone.items():
        assert per_class[label] == scores.summary()  # summed in the same order: exact
    assert per_class["pan"]["videos"] == 2 and per_class["pan"]["frames"] == 6
    everything.add("loose", *clips["pan/v0"])
    assert everything.per_class() == {}
