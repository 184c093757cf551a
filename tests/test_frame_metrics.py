import numpy as np
import pytest
import tensorflow as tf

from dynamonet_tf.frame_metrics import MAX_PSNR, frame_prediction_scores, luma, psnr, ssim, ssim_luma


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
    expected_y = float(tf.image.ssim(tf.constant(luma(a)[None, ..., None]), tf.constant(luma(b)[None, ..., None]), max_val=1.0)[0])
    assert ssim_luma(a, b) == pytest.approx(expected_y, abs=2e-3)
    assert ssim(a, a) == pytest.approx(1.0)


def test_psnr_matches_its_definition_and_is_capped():
    a = smooth_frames(2)
    b = np.clip(a + 0.1, 0, 1)
    mse = np.mean((a - b) ** 2)
    assert psnr(a, b) == pytest.approx(10 * np.log10(1 / mse))
    assert psnr(a, a) == MAX_PSNR


def test_luma_weights():
    np.testing.assert_allclose(luma(np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])), [0.299, 0.587, 0.114])


def test_scores_prefer_the_better_predictor():
    frames = np.stack([np.roll(smooth_frames(3), shift, axis=1) for shift in range(4)])[None]
    previous, targets = frames[:, :-1], frames[:, 1:]
    scores = frame_prediction_scores(targets, targets, previous)
    assert scores["model"] == {"ssim": pytest.approx(1.0), "ssim_luma": pytest.approx(1.0), "psnr": MAX_PSNR}
    baseline = scores["copy_last_frame"]
    assert baseline["ssim"] < 0.99 and baseline["psnr"] < 40
    assert baseline["psnr"] == pytest.approx(np.mean([psnr(t, p) for t, p in zip(targets[0], previous[0])]))


def test_mismatched_shapes_are_named():
    a = np.zeros((1, 2, 8, 8, 3))
    with pytest.raises(ValueError, match="share one shape"):
        frame_prediction_scores(a, a[:, :1], a)
