"""Quality of predicted frames: SSIM and PSNR, against the ground truth and a baseline.

The conventions of the design notes (§5), after Mathieu et al.'s protocol (paper Table 3):
SSIM is scikit-image's ``structural_similarity`` with Gaussian weights (sigma 1.5, an 11x11
window), population covariance and ``data_range=1``, computed on RGB (averaged over the
channels) and on luma (Y of BT.601). Frames are floats in [0, 1], ``(height, width, 3)``.
The baseline every predictor must beat is copying the last seen frame.
"""

import numpy as np
from skimage.metrics import structural_similarity

# PSNR of a perfect prediction is infinite; frames are scored at most this high so that
# averages stay finite (an MSE of 1e-10 on [0, 1] pixels).
MAX_PSNR = 100.0
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


def luma(frames):
    """Y (BT.601) of RGB frames ``(..., 3)`` in [0, 1]."""
    return np.asarray(frames, np.float64) @ _LUMA_WEIGHTS


def ssim(reference, frame):
    """SSIM of one RGB frame ``(height, width, 3)`` against ``reference``."""
    return structural_similarity(
        np.asarray(reference, np.float64),
        np.asarray(frame, np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=-1,
    )


def ssim_luma(reference, frame):
    """SSIM of the luma of one RGB frame against that of ``reference``."""
    return structural_similarity(
        luma(reference),
        luma(frame),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
    )


def psnr(reference, frame):
    """PSNR in dB of one frame against ``reference``, capped at :data:`MAX_PSNR`."""
    error = np.mean((np.asarray(reference, np.float64) - np.asarray(frame, np.float64)) ** 2)
    return min(MAX_PSNR, 10.0 * np.log10(1.0 / max(error, 1e-300)))


def frame_prediction_scores(targets, predicted, previous):
    """Mean SSIM (RGB, luma) and PSNR of ``predicted`` and of the copy-last-frame baseline.

    Args:
        targets: the true next frames, ``(clips, time, height, width, 3)`` in [0, 1].
        predicted: the model's predictions of them, same shape.
        previous: the frames the predictions were made from (frame t for target t + 1),
            same shape: copying them is the baseline.

    Returns:
        ``{"model": {...}, "copy_last_frame": {...}}``, each with ``ssim``, ``ssim_luma`` and
        ``psnr`` averaged over every frame of every clip.
    """
    targets, predicted, previous = (np.asarray(a) for a in (targets, predicted, previous))
    if not targets.shape == predicted.shape == previous.shape or targets.ndim != 5:
        raise ValueError(
            "targets, predicted and previous frames must share one shape (clips, time, "
            f"height, width, 3); got {targets.shape}, {predicted.shape}, {previous.shape}."
        )
    scores = {}
    for name, frames in (("model", predicted), ("copy_last_frame", previous)):
        pairs = list(zip(targets.reshape((-1,) + targets.shape[2:]), frames.reshape((-1,) + frames.shape[2:])))
        scores[name] = {
            "ssim": float(np.mean([ssim(t, f) for t, f in pairs])),
            "ssim_luma": float(np.mean([ssim_luma(t, f) for t, f in pairs])),
            "psnr": float(np.mean([psnr(t, f) for t, f in pairs])),
        }
    return scores
