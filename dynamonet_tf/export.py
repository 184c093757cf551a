"""SavedModel export of DynamoNet models that serve raw ``uint8`` video.

:func:`export_saved_model` writes a TensorFlow SavedModel whose signatures take a batch of
raw RGB video, ``uint8`` ``(batch, num_frames * frame_stride, height, width, 3)`` of any batch
size, height and width, and do the evaluation preprocessing of
:func:`dynamonet_tf.data.pipelines.eval_dataset` inside the graph, with the same function
(:func:`dynamonet_tf.data.clips.preprocess_video`):
keeping every ``frame_stride``-th frame (frames 0, s, 2s, ...: the spacing the run trained on,
its ``data.frame_stride``), conversion to [0, 1], bilinear resize of the short side to
``short_side`` keeping the aspect ratio, centre crop to ``crop_size``. The client gives the
video at its native frame rate, ``num_frames * frame_stride`` consecutive frames per clip,
and the export strides it; with ``frame_stride`` 1 (the default) that is ``num_frames``
frames, all used; a video of another length is refused (``InvalidArgumentError``). A client
needs TensorFlow only, not this package::

    loaded = tf.saved_model.load(export_dir)
    scores = loaded.signatures["serving_default"](video=video)   # video: uint8
    scores["top_k_labels"]                                       # (batch, top_k) strings

Signatures (each output a dict entry; which exist depends on the model kind):

- ``serving_default`` (joint, classifier): ``probabilities`` float32 ``(batch, classes)``,
  the softmax of the logits; ``top_k_indices`` int32 ``(batch, top_k)``;
  ``top_k_labels`` string ``(batch, top_k)``; ``top_k_probabilities`` float32
  ``(batch, top_k)``, best first.
- ``predict_frames`` (joint, pretrain): ``predicted_frames`` float32
  ``(batch, num_frames, crop_size, crop_size, 3)`` in [0, 1], the prediction of frames
  2..T+1 of the cropped (strided) clip from its frames 1..T; ``filters`` float32
  ``(batch, num_frames, k, k)``, the dynamic motion filters.
- ``motion_features`` (joint, classifier): ``ar_features`` float32 ``(batch, ar_units)``,
  the output of the ``ar_fc`` layer; joint models add ``dmr`` float32 ``(batch, dmr_units)``.
- ``labels`` (joint, classifier), no input: ``labels`` string ``(classes,)``.
- ``metadata``, no input: ``metadata``, the JSON string of the metadata asset.

Each signature is also an attribute of the loaded object (``loaded.labels()``), and the
metadata (model kind, backbone, num_frames, frame_stride, short_side, decode_short_side,
crop_size, classes, top_k, label names, input shape, signatures) is the asset
``assets/dynamonet_export.json``, readable without TensorFlow. ``decode_short_side`` is the
short side of the frames the model's training data were stored at (``data/prepare.py``,
FFmpeg's area resampling), null when unknown: a client that resizes a video to it before
calling a signature gives it the frames evaluation gives the model, up to their JPEG coding.

The export is a ``tf.Module`` saved with ``tf.saved_model.save`` rather than Keras'
``ExportArchive`` (``model.export``), because ``ExportArchive.write_out`` always adds a
``serving_default`` signature, aliasing the first endpoint when none has that name: a
pretrain export would then answer ``serving_default`` with predicted frames, where clients
expect classification or no such signature. A ``tf.Module`` also keeps the metadata asset
and the signatures as named attributes of the loaded object.

The module saves the ``tf.Variable`` s the signatures read (as ``ExportArchive`` tracks
the variables its endpoints use), not the Keras model, whose Keras variables would be saved as
copies that the signatures' graph does not read (:func:`_variables_read_by`). So the export
loads wherever a SavedModel does: TensorFlow Serving (its C++ loader), ``saved_model_cli run``
and ``tf.compat.v1.saved_model.loader.load`` in a graph-mode session, which restore each
variable by name through the ``saver_def`` and run the signatures' tensors by name, as well
as ``tf.saved_model.load``. For TensorFlow Serving, export into a numbered version folder
of the model's base path (``export_dir=".../dynamonet/1"``): the staging folders beside it
(``.1.partial-*``) are not numbers, so the server never sees a half-written version.
"""

import json
import os
import shutil
from collections.abc import Sequence
from typing import Optional

import keras
import tensorflow as tf

from dynamonet_tf.atomic_files import atomic_directory
from dynamonet_tf.config import DataConfig, with_options
from dynamonet_tf.data.clips import preprocess_video
from dynamonet_tf.layout import PathLike
from dynamonet_tf.names import (
    AR_LAYER,
    DMR,
    FILTERS,
    KIND_OUTPUTS,
    LOGITS,
    MODEL_KINDS,
    PREDICTED_FRAMES,
)
from dynamonet_tf.ownership import EXPORT_MARKER, OwnershipError, check_replaceable

SERVING_DEFAULT = "serving_default"
PREDICT_FRAMES = "predict_frames"
MOTION_FEATURES = "motion_features"
LABELS = "labels"
METADATA = "metadata"

AR_FEATURES = "ar_features"
METADATA_FILE = os.path.basename(EXPORT_MARKER)  # in assets/: what marks a folder as an export
# Where the metadata asset is written before tf.saved_model.save copies it into assets/.
_ASSET_SOURCE = ".asset-source"

_SIGNATURE_NAMES = (SERVING_DEFAULT, PREDICT_FRAMES, MOTION_FEATURES, LABELS, METADATA)
_KIND_SIGNATURES = {
    "pretrain": [PREDICT_FRAMES, METADATA],
    "joint": [SERVING_DEFAULT, PREDICT_FRAMES, MOTION_FEATURES, LABELS, METADATA],
    "classifier": [SERVING_DEFAULT, MOTION_FEATURES, LABELS, METADATA],
}


def model_kind(model):
    """``"joint"``, ``"classifier"`` or ``"pretrain"``, from the outputs of ``model``."""
    outputs = model.output
    names = set(outputs) if isinstance(outputs, dict) else None
    layers = {layer.name for layer in model.layers}
    for kind in MODEL_KINDS:
        # Classifying kinds also need the layer of their AR features.
        if names == KIND_OUTPUTS[kind] and (kind == "pretrain" or AR_LAYER in layers):
            return kind
    expected = "; ".join(f"{kind}: {sorted(outputs)}" for kind, outputs in KIND_OUTPUTS.items())
    raise ValueError(
        "export_saved_model needs a model built by build_dynamonet, whose outputs are a dict "
        f"with the keys of one kind ({expected}) and, to classify, a layer {AR_LAYER!r}; got "
        f"{sorted(names) if names else outputs!r}."
    )


def export_saved_model(
    model: keras.Model,
    export_dir: PathLike,
    data: Optional[DataConfig] = None,
    *,
    label_names: Optional[Sequence[str]] = None,
    top_k: int = 5,
    backbone: Optional[str] = None,
    decode_short_side: Optional[int] = None,
    overwrite: bool = False,
    **options,
) -> dict:
    """Exports a DynamoNet model as a SavedModel that serves raw ``uint8`` video.

    The signatures are described in the module docstring. The SavedModel is written to a
    temporary directory beside ``export_dir`` and renamed into place when complete
    (:func:`~dynamonet_tf.atomic_files.atomic_directory`), so an export that fails leaves
    neither a half-written ``export_dir`` nor temporary files. A killed process leaves only
    hidden ``.<name>.partial-*`` (or ``.<name>.old-*``) directories beside ``export_dir``,
    never a half-written ``export_dir``; the next export to ``export_dir`` removes them (and
    puts back an earlier export that a kill left moved aside), and nothing is left elsewhere.

    Args:
        model: a model from :func:`~dynamonet_tf.models.build_dynamonet` ("joint",
            "classifier" or "pretrain"), input ``(batch, num_frames, crop_size, crop_size, 3)``.
        export_dir: the directory to create (a local path).
        data: the run's :class:`~dynamonet_tf.config.DataConfig` (None: the defaults), whose
            clip geometry the signatures apply: ``short_side`` (frames are resized so that
            their short side is this), ``crop_size`` (side of the centre crop; must equal
            the model's input height and width) and ``frame_stride`` (the signatures take
            ``num_frames * frame_stride`` frames at the video's native rate and keep frames
            0, s, 2s, ... of them, the spacing the model was trained on).
        options: ``DataConfig`` fields replacing those of ``data`` (``crop_size=64``).
        label_names: one name per class, in class-index order (models with logits only);
            default ``"0"``, ``"1"``, ...
        top_k: number of best classes ``serving_default`` returns (<= classes).
        backbone: the backbone's name, recorded in the metadata (the model does not know it).
        decode_short_side: the short side the run's prepared frames were stored at
            (:func:`~dynamonet_tf.data.clips.decode_short_side`), recorded in the metadata for
            clients and :class:`~dynamonet_tf.inference.ExportedModel`; None: unknown.
        overwrite: replace an existing export in ``export_dir`` (a folder holding
            ``assets/dynamonet_export.json``). Nothing else is ever replaced: a folder of a run
            (``config.yaml``, ``checkpoints/``), of prepared data, or of any other files.

    Returns:
        The metadata dict that was written to ``assets/dynamonet_export.json``.

    Raises:
        ValueError: an unsupported model or an invalid argument.
        FileExistsError: ``export_dir`` is a file, a non-empty directory that is not an
            export, or an export and not ``overwrite``.
    """
    kind = model_kind(model)
    data = with_options(data or DataConfig(), **options)
    short_side, crop_size, frame_stride = data.short_side, data.crop_size, data.frame_stride
    num_frames = _check_geometry(model, crop_size)
    if decode_short_side is not None:
        _check_positive("decode_short_side", decode_short_side)
    classifies = kind != "pretrain"
    num_classes = model.output[LOGITS].shape[-1] if classifies else None
    if classifies:
        label_names = _check_label_names(label_names, num_classes)
        _check_top_k(top_k, num_classes)
    elif label_names is not None:
        raise ValueError("A 'pretrain' model has no classes: leave label_names unset.")

    export_dir = os.path.abspath(os.fspath(export_dir))
    _check_destination(export_dir, overwrite)
    signatures = _KIND_SIGNATURES[kind]
    metadata = {
        "model_kind": kind,
        "backbone": backbone,
        "num_frames": num_frames,
        "frame_stride": frame_stride,
        "short_side": short_side,
        "decode_short_side": decode_short_side,
        "crop_size": crop_size,
        "num_classes": num_classes,
        "top_k": top_k if classifies else None,
        "label_names": label_names,
        # Native-rate frames: every frame_stride-th one is kept.
        "input": {"dtype": "uint8", "shape": [None, num_frames * frame_stride, None, None, 3]},
        "signatures": signatures,
    }

    os.makedirs(os.path.dirname(export_dir), exist_ok=True)
    with atomic_directory(export_dir) as staging:
        # The asset is copied into the SavedModel's assets/ on saving, so its source must not
        # be that copy; it lives in the staging folder rather than in a temporary folder
        # elsewhere, so that a killed export leaves nothing outside the staging folder, which
        # the next export removes.
        asset_dir = os.path.join(staging, _ASSET_SOURCE)
        os.mkdir(asset_dir)
        metadata_path = os.path.join(asset_dir, METADATA_FILE)
        with open(metadata_path, "w") as file:
            json.dump(metadata, file, indent=2)
        module = _ServingModule(
            model, metadata_path, label_names, short_side, crop_size, frame_stride, top_k
        )
        tf.saved_model.save(
            module,
            staging,
            signatures={name: getattr(module, name) for name in signatures},
        )
        shutil.rmtree(asset_dir)
    return metadata


class _ServingModule(tf.Module):
    """The exported object: the variables the signatures read (``serving_variables``, not the
    Keras model: :func:`_variables_read_by`), the metadata asset, and one ``tf.function`` per
    signature (attributes named as the signatures)."""

    def __init__(
        self, model, metadata_path, label_names, short_side, crop_size, frame_stride, top_k
    ):
        super().__init__(name="dynamonet_export")
        self.metadata_file = tf.saved_model.Asset(metadata_path)
        # The native-rate frames of one clip; striding leaves the model's num_frames.
        clip_length = model.input_shape[1] * frame_stride
        video_spec = tf.TensorSpec((None, clip_length, None, None, 3), tf.uint8, name="video")

        def model_input(video):
            # A loaded signature does not check the input's shape against its spec: without
            # this, T consecutive frames given to a strided export would be served silently.
            check = tf.debugging.assert_equal(
                tf.shape(video)[1],
                clip_length,
                message=f"video must hold {clip_length} frames at the native rate: one clip "
                f"of {model.input_shape[1]} frames {frame_stride} apart",
            )
            with tf.control_dependencies([check]):
                video = tf.identity(video)
            return preprocess_video(
                video, short_side=short_side, crop_size=crop_size, frame_stride=frame_stride
            )

        # One sub-model per signature, so that each runs only the layers its outputs need.
        def submodel(outputs):
            return keras.Model(model.input, outputs)

        self.metadata = _signature(
            lambda: {METADATA: tf.io.read_file(self.metadata_file.asset_path)}, []
        )

        if PREDICTED_FRAMES in model.output:
            predictor = submodel(
                {PREDICTED_FRAMES: model.output[PREDICTED_FRAMES], FILTERS: model.output[FILTERS]}
            )

            def predict_frames(video):
                return _as_float32(predictor(model_input(video), training=False))

            self.predict_frames = _signature(predict_frames, [video_spec])

        if LOGITS in model.output:
            labels = tf.constant(label_names, tf.string)
            classifier = submodel(model.output[LOGITS])
            features = {AR_FEATURES: model.get_layer(AR_LAYER).output}
            if DMR in model.output:
                features[DMR] = model.output[DMR]
            featurizer = submodel(features)

            def serving_default(video):
                logits = classifier(model_input(video), training=False)
                probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
                best = tf.math.top_k(probabilities, k=top_k)
                return {
                    "probabilities": probabilities,
                    "top_k_indices": best.indices,
                    "top_k_labels": tf.gather(labels, best.indices),
                    "top_k_probabilities": best.values,
                }

            def motion_features(video):
                return _as_float32(featurizer(model_input(video), training=False))

            self.serving_default = _signature(serving_default, [video_spec])
            self.motion_features = _signature(motion_features, [video_spec])
            self.labels = _signature(lambda: {LABELS: labels}, [])

        # What the signatures read, saved as the variables themselves: see _variables_read_by.
        self.serving_variables = _variables_read_by(
            [getattr(self, name) for name in _SIGNATURE_NAMES if hasattr(self, name)]
        )


def _variables_read_by(functions):
    """The ``tf.Variable`` s that the traced ``functions`` read, each once, in order of first use.

    A Keras 3 variable (TensorFlow backend) wraps a ``tf.Variable``, which is what a traced
    function captures. Saving the Keras model (or its Keras variables) maps each Keras variable
    to a *new* variable of the SavedModel's graph (``Variable_N``, initialised from the wrapped
    one: ``keras/src/backend/tensorflow/core.py``, ``_export_to_saved_model_graph``), and
    only that copy is in the object graph, hence in the checkpoint and the restore op of the
    ``saver_def``. The signatures' graph reads the other variable, which nothing restores:
    ``tf.saved_model.load`` rebinds the captures through the object graph and works, but a
    loader that runs the graph as written (TensorFlow Serving's C++ loader,
    ``saved_model_cli run``, ``tf.compat.v1.saved_model.loader.load``) fails with "Could
    not find variable dmr/bias". Saving these captured variables instead makes the restore op
    assign exactly the variables the signatures read, each by its own name, once.
    """
    seen, variables = set(), []
    for function in functions:
        for variable in function.get_concrete_function().variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                variables.append(variable)
    return variables


def _signature(function, input_signature):
    """``function`` as a ``tf.function`` without AutoGraph: it has no Python control flow on
    tensors to convert, and AutoGraph writes each converted function to a file in TMPDIR that
    only a normal exit deletes, so every killed export left a dozen or more of them there."""
    return tf.function(function, input_signature=input_signature, autograph=False)


def _as_float32(outputs):
    # Under mixed precision ar_fc and dmr compute in (b)float16; every output is float32.
    return {name: tf.cast(value, tf.float32) for name, value in outputs.items()}


def _check_geometry(model, crop_size):
    """Checks the crop against the model's input; returns the model's num_frames."""
    _, num_frames, height, width, channels = model.input_shape
    if channels != 3:
        raise ValueError(f"The export serves RGB video; the model's input has {channels} channels.")
    if (height, width) != (crop_size, crop_size):
        raise ValueError(
            f"crop_size {crop_size} must equal the model's input height and width; the model "
            f"takes {height}x{width} frames."
        )
    return num_frames


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def _check_label_names(label_names, num_classes):
    if label_names is None:
        return [str(index) for index in range(num_classes)]
    if isinstance(label_names, (str, bytes)):
        raise ValueError("label_names must be a sequence of names, not a single string.")
    label_names = list(label_names)
    if not all(isinstance(label, str) for label in label_names):
        raise ValueError("label_names must all be strings.")
    if len(label_names) != num_classes:
        raise ValueError(
            f"label_names has {len(label_names)} names but the model has {num_classes} classes."
        )
    return label_names


def _check_top_k(top_k, num_classes):
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_classes:
        raise ValueError(
            f"top_k must be an integer from 1 to the model's {num_classes} classes; got {top_k!r}."
        )


def _check_destination(export_dir, overwrite):
    """Refuses to write over anything but an export (:mod:`dynamonet_tf.ownership`)."""
    try:
        check_replaceable(
            export_dir,
            "export",
            overwrite,
            option="overwrite=True",
            name=f"export_dir {export_dir}",
        )
    except OwnershipError as error:
        raise FileExistsError(str(error)) from None
