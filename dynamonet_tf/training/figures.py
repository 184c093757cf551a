"""TensorBoard figures of a training run: the paper's Figure 3 and the motion filters."""

import tensorflow as tf

from dynamonet_tf.names import FILTERS, PREDICTED_FRAMES

# Differences are small: shown 4x brighter, clipped to [0, 1].
DIFFERENCE_GAIN = 4.0
# Each filter tap becomes a block of this many pixels (nearest neighbour).
FILTER_TAP_PIXELS = 8


def log_prediction_images(writer, step, outputs, targets):
    """Writes TensorBoard images of the first clip of a batch.

    ``frame_prediction``: rows ground truth | predicted | 4 x |difference|, one column per
    frame. ``filters``: each frame's k x k filter, scaled to its own maximum.

    Args:
        outputs: the model's outputs on the batch (``predicted_frames``, ``filters``).
        targets: the batch's targets (``predicted_frames``: the next frames).
    """
    truth = tf.cast(targets[PREDICTED_FRAMES][0], tf.float32)
    predicted = tf.cast(outputs[PREDICTED_FRAMES][0], tf.float32)
    difference = tf.clip_by_value(DIFFERENCE_GAIN * tf.abs(truth - predicted), 0.0, 1.0)
    rows = [tf.concat(tf.unstack(row), axis=1) for row in (truth, predicted, difference)]
    filters = tf.cast(outputs[FILTERS][0], tf.float32)
    filters = filters / tf.reduce_max(filters, axis=(1, 2), keepdims=True)
    filters = tf.repeat(tf.repeat(filters, FILTER_TAP_PIXELS, axis=1), FILTER_TAP_PIXELS, axis=2)
    padded = tf.pad(filters, [[0, 0], [1, 1], [1, 1]], constant_values=1.0)
    with writer.as_default(step=step):
        tf.summary.image("frame_prediction", tf.concat(rows, axis=0)[None])
        tf.summary.image("filters", tf.concat(tf.unstack(padded), axis=1)[None, ..., None])
