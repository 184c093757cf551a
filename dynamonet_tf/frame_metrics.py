"""Quality of predicted frames: SSIM and PSNR, against the ground truth and a baseline.

The conventions of docs/DESIGN.md §5, after Mathieu et al.'s protocol (paper Table 3):
SSIM is scikit-image's ``structural_similarity`` with :data:`SSIM_SETTINGS` (Gaussian
weights, sigma 1.5, an 11x11 window, population covariance, ``data_range=1``), computed on
RGB (averaged over the channels) and on luma (Y of BT.601). PSNR is capped at
:data:`MAX_PSNR`. Frames are floats in [0, 1], ``(height, width, 3)``.

Mean PSNR over frames (``psnr``, the usual report) is dominated by nearly still frames, whose
PSNR is huge for copying the last frame; ``psnr_of_mean_mse``, the PSNR of the mean squared
error over all frames, weighs every frame's error alike: quote it to compare models with
each other or with the baseline, and mean PSNR (the paper's Table 3 protocol) to compare with
the paper.

Every score can be restricted to a mask of pixels (Mathieu et al. score only the moving
area): PSNR then takes the mean squared error over the masked pixels, SSIM the mean of its
per-pixel map over them.

The baseline every predictor must beat is copying the last seen frame:
:class:`FramePredictionScores` scores both on the same frames and sums the scores by video.
"""

import collections

import numpy as np
from skimage.metrics import structural_similarity

SSIM_SETTINGS = {
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
    "data_range": 1.0,
}
# scikit-image averages the SSIM map without this border, where its Gaussian window (radius
# int(3.5 * sigma + 0.5) = 5 pixels) reaches past the image; masked SSIM leaves it out too.
SSIM_BORDER = 5
# PSNR of a perfect prediction is infinite; frames are scored at most this high so that
# averages stay finite (the PSNR of an MSE of 1e-10 on [0, 1] pixels).
MAX_PSNR = 100.0
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])

METRICS = ("ssim", "ssim_luma", "psnr", "mse")
MASKED_METRICS = tuple(f"masked_{metric}" for metric in METRICS)
PREDICTORS = ("model", "copy_last_frame")


def luma(frames):
    """Y (BT.601) of RGB frames ``(..., 3)`` in [0, 1]."""
    return np.asarray(frames, np.float64) @ _LUMA_WEIGHTS


def _ssim_map(reference, frame, channel_axis=None):
    """The per-pixel SSIM map, ``(height, width)`` or ``(height, width, channels)``."""
    _, full = structural_similarity(
        np.asarray(reference, np.float64),
        np.asarray(frame, np.float64),
        channel_axis=channel_axis,
        full=True,
        **SSIM_SETTINGS,
    )
    return full


def _mean_ssim(ssim_map, mask=None):
    """The mean of an SSIM map inside its border: scikit-image's mean SSIM without a mask."""
    interior = ssim_map[SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER]
    if mask is None:
        return float(interior.mean())
    selected = interior[np.asarray(mask, bool)[SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER]]
    if not selected.size:
        raise ValueError(
            f"the mask selects no pixel at least {SSIM_BORDER} pixels inside the frame, "
            "where SSIM is defined."
        )
    return float(selected.mean())


def _mse(squared_error, mask=None):
    """The mean of per-pixel squared errors ``(height, width, channels)``, inside ``mask``."""
    if mask is not None:
        squared_error = squared_error[np.asarray(mask, bool)]
        if not squared_error.size:
            raise ValueError("the mask selects no pixel.")
    return float(np.mean(squared_error))


def psnr_of_mse(error):
    """PSNR in dB of a mean squared error on [0, 1] pixels, capped at :data:`MAX_PSNR`."""
    return float(min(MAX_PSNR, 10.0 * np.log10(1.0 / max(error, 1e-300))))


def ssim(reference, frame, mask=None):
    """SSIM of one RGB frame ``(height, width, 3)`` against ``reference``, over the three
    channels; with ``mask`` ``(height, width)``, only over the pixels where it is True."""
    return _mean_ssim(_ssim_map(reference, frame, channel_axis=-1), mask)


def ssim_luma(reference, frame, mask=None):
    """SSIM of the luma of one RGB frame against that of ``reference`` (``mask`` as in
    :func:`ssim`)."""
    return _mean_ssim(_ssim_map(luma(reference), luma(frame)), mask)


def psnr(reference, frame, mask=None):
    """PSNR in dB of one frame against ``reference``, capped at :data:`MAX_PSNR`; with ``mask``
    ``(height, width)``, from the mean squared error over the pixels where it is True."""
    error = (np.asarray(reference, np.float64) - np.asarray(frame, np.float64)) ** 2
    return psnr_of_mse(_mse(error, mask))


def frame_scores(reference, frame, mask=None):
    """All scores of one RGB frame ``(height, width, 3)`` against ``reference``.

    Returns:
        ``{"ssim", "ssim_luma", "psnr", "mse"}`` over the whole frame, and with ``mask``
        ``(height, width)`` also ``masked_ssim``, ``masked_ssim_luma``, ``masked_psnr`` and
        ``masked_mse`` over its pixels. Each SSIM map is computed once for both.
    """
    rgb_map = _ssim_map(reference, frame, channel_axis=-1)
    luma_map = _ssim_map(luma(reference), luma(frame))
    error = (np.asarray(reference, np.float64) - np.asarray(frame, np.float64)) ** 2
    mse = _mse(error)
    scores = {
        "ssim": _mean_ssim(rgb_map),
        "ssim_luma": _mean_ssim(luma_map),
        "psnr": psnr_of_mse(mse),
        "mse": mse,
    }
    if mask is not None:
        masked_mse = _mse(error, mask)
        scores.update(
            masked_ssim=_mean_ssim(rgb_map, mask),
            masked_ssim_luma=_mean_ssim(luma_map, mask),
            masked_psnr=psnr_of_mse(masked_mse),
            masked_mse=masked_mse,
        )
    return scores


def clip_arrays(frames, next_frames, predicted):
    """``(frames, next_frames, predicted)`` of one clip as float64 arrays, checked to share
    one shape ``(time, height, width, 3)``; ValueError naming the shapes otherwise."""
    frames, next_frames, predicted = (
        np.asarray(a, np.float64) for a in (frames, next_frames, predicted)
    )
    if not frames.shape == next_frames.shape == predicted.shape or frames.ndim != 4:
        raise ValueError(
            "frames, next frames and predicted frames must share one shape (time, height, "
            f"width, 3); got {frames.shape}, {next_frames.shape}, {predicted.shape}."
        )
    return frames, next_frames, predicted


class FramePredictionScores:
    """Scores of next-frame predictions and of copying the last frame, summed by video.

    Every predicted frame is scored twice on exactly the same pixels: the model's prediction
    of frame t + 1 and the baseline's (frame t itself) against the true frame t + 1. Means
    are over frames, in two scopes: ``all`` the T predicted frames 2..T+1 of each clip
    (frames 2..T are also inputs of the model, so these are partly reconstructions) and
    ``future_frame``, frame T + 1 alone, the one frame the model has not seen.

    With ``masked=True`` every frame comes with a mask of its moving pixels, and the masked
    scores are averaged over the frames whose mask selects any pixel; the others are
    counted as ``frames_without_motion``.
    """

    SCOPES = ("all", "future_frame")

    def __init__(self, masked=False):
        self.masked = masked
        # video -> clips, and per scope frame counts and score sums.
        self._videos = {}

    def add(self, video, frames, next_frames, predicted, masks=None):
        """Scores one clip of ``video``.

        Args:
            video: the video's id.
            frames: the model's input, frames 1..T, ``(time, height, width, 3)`` in [0, 1].
            next_frames: the truth, frames 2..T+1, same shape.
            predicted: the model's prediction of ``next_frames``, same shape.
            masks: with ``masked``, bool ``(time, height, width)``: the pixels of each next
                frame to score (its moving area).
        """
        frames, next_frames, predicted = clip_arrays(frames, next_frames, predicted)
        if self.masked != (masks is not None):
            raise ValueError("masks are required with masked=True and refused without it.")
        sums = self._videos.setdefault(
            video, {"clips": 0, **{scope: _Sums() for scope in self.SCOPES}}
        )
        sums["clips"] += 1
        for t in range(len(frames)):
            mask = masks[t] if self.masked and masks[t].any() else None
            scores = {
                "model": frame_scores(next_frames[t], predicted[t], mask),
                "copy_last_frame": frame_scores(next_frames[t], frames[t], mask),
            }
            sums["all"].add(scores, masked=mask is not None)
            if t == len(frames) - 1:
                sums["future_frame"].add(scores, masked=mask is not None)

    def summary(self):
        """Means over every frame scored: ``videos``, ``clips``, the ``all`` scope's
        ``frames``, ``model`` and ``copy_last_frame`` (dicts of metric -> mean) at the top
        level, and ``future_frame`` holding the same for frame T + 1."""
        return self._summary(self._videos.values())

    def per_class(self):
        """:meth:`summary` of each class's videos, ``{class: summary}`` in the order classes
        first appear, for ids of the form ``<class>/<name>`` (a prepared dataset's, or a
        video folder's class subfolders); ``{}`` unless every id names a class. Where one
        kind of motion is predicted well and another is not, the mean over all hides it."""
        classes = {}
        for video, sums in self._videos.items():
            label, slash, _ = video.partition("/")
            if not slash:
                return {}
            classes.setdefault(label, []).append(sums)
        return {label: self._summary(videos) for label, videos in classes.items()}

    def _summary(self, videos):
        videos = list(videos)
        totals = {scope: _Sums() for scope in self.SCOPES}
        for sums in videos:
            for scope in self.SCOPES:
                totals[scope].merge(sums[scope])
        return {
            "videos": len(videos),
            "clips": sum(sums["clips"] for sums in videos),
            **totals["all"].means(self.masked),
            "future_frame": totals["future_frame"].means(self.masked),
        }

    def per_video(self):
        """One flat dict per video, in the order videos were added: ``video``, ``clips``,
        then each scope's counts and means as ``<prefix><predictor>_<metric>``, with prefix
        "" for all frames and "future_" for frame T + 1 (None where no frame was scored)."""
        rows = []
        for video, sums in self._videos.items():
            row = {"video": video, "clips": sums["clips"]}
            for scope, prefix in zip(self.SCOPES, ("", "future_")):
                for key, value in sums[scope].means(self.masked).items():
                    if isinstance(value, dict):
                        row.update(
                            {f"{prefix}{key}_{metric}": mean for metric, mean in value.items()}
                        )
                    else:
                        row[f"{prefix}{key}"] = value
            rows.append(row)
        return rows


class _Sums:
    """Frame counts and per-predictor sums of the scores of one scope."""

    def __init__(self):
        self.frames = 0
        self.masked_frames = 0
        self.totals = {predictor: collections.defaultdict(float) for predictor in PREDICTORS}

    def add(self, scores, masked):
        self.frames += 1
        self.masked_frames += int(masked)
        for predictor in PREDICTORS:
            for metric, value in scores[predictor].items():
                self.totals[predictor][metric] += value

    def merge(self, other):
        self.frames += other.frames
        self.masked_frames += other.masked_frames
        for predictor in PREDICTORS:
            for metric, value in other.totals[predictor].items():
                self.totals[predictor][metric] += value

    def means(self, masked):
        means = {"frames": self.frames}
        if masked:
            means.update(
                masked_frames=self.masked_frames,
                frames_without_motion=self.frames - self.masked_frames,
            )
        for predictor in PREDICTORS:
            totals = self.totals[predictor]
            means[predictor] = {
                metric: totals[metric] / self.frames if self.frames else None for metric in METRICS
            }
            if masked:
                means[predictor].update(
                    {
                        metric: totals[metric] / self.masked_frames if self.masked_frames else None
                        for metric in MASKED_METRICS
                    }
                )
            for prefix in ("", "masked_") if masked else ("",):
                mse = means[predictor][f"{prefix}mse"]
                means[predictor][f"{prefix}psnr_of_mean_mse"] = (
                    None if mse is None else psnr_of_mse(mse)
                )
        return means
