"""The TFRecord schema of prepared videos: the TF Model Garden video ``SequenceExample``.

One record per video. Context: ``clip/label/index`` (int64), ``clip/label/text`` (bytes),
``clip/media_id`` (bytes); feature list ``image/encoded``: one JPEG per frame, in order.
Files written here load in Model Garden's video input and theirs load here. Unlabeled
videos have label index -1 and an empty label text.
"""

import tensorflow as tf

from dynamonet_tf.names import UNLABELED

LABEL_INDEX_KEY = "clip/label/index"
LABEL_TEXT_KEY = "clip/label/text"
MEDIA_ID_KEY = "clip/media_id"
IMAGE_KEY = "image/encoded"


def encode_video_example(jpeg_frames, label, label_name, media_id):
    """Serialises one video: ``jpeg_frames`` a sequence of JPEG ``bytes``, in order."""
    example = tf.train.SequenceExample()
    context = example.context.feature
    context[LABEL_INDEX_KEY].int64_list.value.append(int(label))
    context[LABEL_TEXT_KEY].bytes_list.value.append(label_name.encode("utf-8"))
    context[MEDIA_ID_KEY].bytes_list.value.append(media_id.encode("utf-8"))
    frames = example.feature_lists.feature_list[IMAGE_KEY]
    for jpeg in jpeg_frames:
        frames.feature.add().bytes_list.value.append(jpeg)
    # In key order: the protobuf runtime (upb) serialises a map in the order of a hash table
    # seeded per process, so the same video would come out as other bytes in another process
    # (a resumed preparation, or the same command run again).
    return example.SerializeToString(deterministic=True)


def parse_video_example(serialized):
    """Parses one serialised video (works in ``tf.data``).

    Returns a dict: ``frames`` (string tensor of JPEGs, ``(num_frames,)``), ``label``
    (int64 scalar, -1 when unlabeled or absent), ``label_name`` and ``media_id`` (string
    scalars, empty when absent).
    """
    context, sequence = tf.io.parse_single_sequence_example(
        serialized,
        context_features={
            LABEL_INDEX_KEY: tf.io.VarLenFeature(tf.int64),
            LABEL_TEXT_KEY: tf.io.VarLenFeature(tf.string),
            MEDIA_ID_KEY: tf.io.VarLenFeature(tf.string),
        },
        sequence_features={IMAGE_KEY: tf.io.FixedLenSequenceFeature([], tf.string)},
    )

    def first(key, default):
        # The default is appended so that an absent key yields it as the first value.
        values = tf.concat([context[key].values, tf.constant([default], context[key].dtype)], 0)
        return values[0]

    return {
        "frames": sequence[IMAGE_KEY],
        "label": first(LABEL_INDEX_KEY, UNLABELED),
        "label_name": first(LABEL_TEXT_KEY, ""),
        "media_id": first(MEDIA_ID_KEY, ""),
    }
