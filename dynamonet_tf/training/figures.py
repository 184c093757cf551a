"""TensorBoard figures of a training run: the paper's Figure 3 and the motion filters."""

import numpy as np
import tensorflow as tf

from dynamonet_tf.frame_prediction import figure
from dynamonet_tf.names import FILTERS, PREDICTED_FRAMES
from dynamonet_tf.plots import figure_to_rgb

# Each filter tap becomes a block of this many pixels (nearest neighbour).
FILTER_TAP_PIXELS = 8


def log_prediction_images(writer, step, frames, outputs, targets):
    """Writes TensorBoard images of the first clip of a batch.

    ``frame_prediction``: the paper's Figure 3 as ``evaluate_frame_prediction.py`` draws it
    (:func:`~dynamonet_tf.frame_prediction.figure`: ground truth | prediction |
    |difference| | optical flow, with SSIM and PSNR against copying the last frame),
    rendered to one RGB image. ``filters``: each frame's k x k filter, scaled to its own
    maximum.

    Args:
        frames: the model's input, ``(batch, T, height, width, 3)`` in [0, 1]; only the
            first clip is drawn.
        outputs: the model's outputs on ``frames`` (``predicted_frames``, ``filters``).
        targets: the batch's targets (``predicted_frames``: the next frames).
    """
    clip, truth, predicted = (
        np.asarray(tf.cast(tensor[0], tf.float32))
        for tensor in (frames, targets[PREDICTED_FRAMES], outputs[PREDICTED_FRAMES])
    )
    image = figure_to_rgb(figure(clip, truth, predicted, title=f"validation clip, step {step}"))
    filters = tf.cast(outputs[FILTERS][0], tf.float32)
    filters = filters / tf.reduce_max(filters, axis=(1, 2), keepdims=True)
    filters = tf.repeat(tf.repeat(filters, FILTER_TAP_PIXELS, axis=1), FILTER_TAP_PIXELS, axis=2)
    padded = tf.pad(filters, [[0, 0], [1, 1], [1, 1]], constant_values=1.0)
    with writer.as_default(step=step):
        tf.summary.image("frame_prediction", image[None])
        tf.summary.image("filters", tf.concat(tf.unstack(padded), axis=1)[None, ..., None])
