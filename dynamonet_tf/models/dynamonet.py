"""DynamoNet: a 3D backbone with a dynamic-motion-filter head and an action head.

Paper §3 and §4.1; docs/DESIGN.md §3.3. Three functional models share layer names, so
weights move between them by name (:func:`transfer_weights`):

- ``"pretrain"``: frame prediction only (no classifier variables). Outputs
  ``predicted_frames`` and ``filters``.
- ``"joint"``: frame prediction and action classification. Outputs ``logits``,
  ``predicted_frames``, ``filters`` and ``dmr``.
- ``"classifier"``: the plain backbone + action head baseline, for ablations. Output
  ``logits``.

Every model takes raw frames in [0, 1], ``(batch, time, height, width, 3)``, and normalises
them itself for the backbone; the dynamic filters act on the raw frames, so predicted frames
are in the targets' [0, 1] range. A clip of ``time + 1`` frames gives the input and the
targets of frame prediction: :func:`dynamonet_tf.data.clips.split_clip`.

Frame-prediction head (on the deepest backbone features, which worked best in the paper):
2 x (Conv3D 64, BN, ReLU) -> global average pool -> FC to ``time * k * k`` -> softmax over
each frame's ``k * k`` taps -> filters ``(batch, time, k, k)``; filter ``t`` applied to input
frame ``t`` predicts frame ``t + 1``. Action head: 2 x (Conv3D 64, BN, ReLU) -> pool -> FC
``ar_units`` (ReLU) = AR. DMR: flattened filters -> FC ``dmr_units`` (ReLU). Classifier:
FC ``num_classes`` on concat(AR, DMR).

Beyond the paper, ``per_pixel_filters=True`` gives every pixel its own filter (the dynamic
local filtering of De Brabandere et al., NIPS 2016): the FC predicts a ``filter_grid`` x
``filter_grid`` grid of softmax filters per frame, interpolated bilinearly to every pixel
(convex combinations of filters, so each still sums to 1). The ``filters`` output, and so
the DMR, is then each frame's mean filter over the grid, ``(batch, time, k, k)`` as before.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any, Optional, Union

import keras

from dynamonet_tf.config import DataConfig, ModelConfig
from dynamonet_tf.layers import (
    HE_CONV_INITIALIZER,
    HE_DENSE_INITIALIZER,
    CentreTapBias,
    DynamicFilter,
    FrameNormalization,
    batch_norm,
)
from dynamonet_tf.models.backbones import build_backbone, model_config
from dynamonet_tf.names import (
    AR_LAYER,
    DMR,
    FILTERS,
    FRAMES_INPUT,
    LOGITS,
    MODEL_KINDS,
    PREDICTED_FRAMES,
)

# A NumPy array or a tensor.
ArrayLike = Any

# Per-channel statistics of Kinetics-400 frames in [0, 1] (Hara et al.'s training code).
KINETICS_MEAN = (0.4345, 0.4051, 0.3775)
KINETICS_STD = (0.2768, 0.2713, 0.2737)


def _conv_head(features, prefix, filters, synchronized):
    x = features
    for index in (1, 2):
        x = keras.layers.Conv3D(
            filters,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer=HE_CONV_INITIALIZER,
            name=f"{prefix}_conv{index}",
        )(x)
        x = batch_norm(f"{prefix}_bn{index}", synchronized)(x)
        x = keras.layers.ReLU(name=f"{prefix}_relu{index}")(x)
    return keras.layers.GlobalAveragePooling3D(name=f"{prefix}_pool")(x)


def _per_pixel_filters(filter_logits, time, kernel_size, grid, frame_size):
    """Softmax filters on a ``grid`` x ``grid`` grid per frame from their flat logits.

    Returns the per-pixel filters ``(batch, time, height, width, k, k)``, interpolated
    bilinearly from the grid, and each frame's mean filter over the grid ``(batch, time, k, k)``.
    """
    taps = kernel_size * kernel_size
    height, width = frame_size
    layers, f32 = keras.layers, dict(dtype="float32")
    logits = layers.Reshape((time, grid, grid, taps), name="fp_filter_taps", **f32)(filter_logits)
    filters = layers.Softmax(axis=-1, name="fp_filter_softmax", **f32)(logits)
    # Time folded into channels: one image of time * taps channels to resize and average.
    filters = layers.Permute((2, 3, 1, 4), name="fp_filter_grid", **f32)(filters)
    filters = layers.Reshape((grid, grid, time * taps), name="fp_filter_stack", **f32)(filters)
    mean = layers.GlobalAveragePooling2D(name="fp_filter_mean", **f32)(filters)
    mean = layers.Reshape((time, kernel_size, kernel_size), name=FILTERS, **f32)(mean)
    field = layers.Resizing(
        height, width, interpolation="bilinear", name="fp_filter_resize", **f32
    )(filters)
    field = layers.Reshape((height, width, time, taps), name="fp_filter_unstack", **f32)(field)
    field = layers.Permute((3, 1, 2, 4), name="fp_filter_field", **f32)(field)
    field = layers.Reshape(
        (time, height, width, kernel_size, kernel_size), name="fp_pixel_filters", **f32
    )(field)
    return field, mean


def build_dynamonet(
    kind: str = "joint",
    config: Union[ModelConfig, str, None] = None,
    *,
    input_shape: Optional[tuple] = None,
    num_classes: Optional[int] = None,
    filter_implementation: Optional[str] = None,
    filter_padding: Optional[str] = None,
    grouped_conv_implementation: str = "auto",
    name: Optional[str] = None,
    **options,
) -> keras.Model:
    """Builds a DynamoNet model of the given ``kind`` ("pretrain", "joint", "classifier").

    Args:
        kind: one of :data:`dynamonet_tf.names.MODEL_KINDS`.
        config: the :class:`~dynamonet_tf.config.ModelConfig` (its fields: the backbone and
            its options, ``kernel_size`` of the motion filters, ``per_pixel_filters`` and
            ``filter_grid`` (see the module docstring), ``head_filters``, ``ar_units``,
            ``dmr_units``, ``dropout_rate`` on concat(AR, DMR), ``initial_centre_weight``
            (see :class:`CentreTapBias`), ``sync_batch_norm`` (backbone and heads)); a
            backbone name is short for ``ModelConfig(backbone=name)``; None: the defaults.
        input_shape: ``(time, height, width, channels)`` of the input frames; default, the
            clip shape of ``DataConfig()`` (:attr:`DataConfig.clip_shape`).
        num_classes: number of actions (joint and classifier models).
        filter_implementation, filter_padding: passed to :class:`DynamicFilter` when given.
        grouped_conv_implementation: passed to the backbone (speed only).
        options: fields of ``ModelConfig`` replacing those of ``config``.

    Frames are normalised for the backbone with Kinetics-400's statistics
    (``KINETICS_MEAN``, ``KINETICS_STD``).

    Returns:
        A ``keras.Model`` whose input is ``frames`` and whose outputs are a dict.
    """
    config = model_config(config, **options)
    mean, std = KINETICS_MEAN, KINETICS_STD
    kernel_size, filter_grid = config.kernel_size, config.filter_grid
    per_pixel_filters, head_filters = config.per_pixel_filters, config.head_filters
    initial_centre_weight = config.initial_centre_weight
    filter_options = {
        option: value
        for option, value in (
            ("implementation", filter_implementation),
            ("padding", filter_padding),
        )
        if value is not None
    }
    if input_shape is None:
        input_shape = DataConfig().clip_shape
    if kind not in MODEL_KINDS:
        raise ValueError(f"Unknown DynamoNet kind {kind!r}; valid kinds: {', '.join(MODEL_KINDS)}.")
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(
            "DynamoNet input_shape must be (time, height, width, channels) without the batch "
            f"axis; got {input_shape}."
        )
    normalize = FrameNormalization(mean, std, name="normalize")
    if input_shape[-1] != len(mean):
        raise ValueError(
            f"DynamoNet input_shape {input_shape} has {input_shape[-1]} channels but the "
            f"normalisation statistics have {len(mean)} (mean={tuple(mean)}); frames must be RGB "
            "unless mean and std are given per channel."
        )
    classifies = kind != "pretrain"
    if classifies and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
    ):
        raise ValueError(
            f"A {kind!r} DynamoNet needs num_classes, an integer of at least 2; "
            f"got {num_classes!r}."
        )
    if not classifies and num_classes is not None:
        raise ValueError("A 'pretrain' DynamoNet has no classifier: leave num_classes unset.")

    synchronized = config.sync_batch_norm
    frames = keras.Input(shape=input_shape, name=FRAMES_INPUT)
    normalized = normalize(frames)
    features = build_backbone(
        config,
        input_shape=input_shape,
        grouped_conv_implementation=grouped_conv_implementation,
        name="backbone",
    )(normalized)

    outputs = {}
    if kind != "classifier":
        time = input_shape[0]
        taps = kernel_size * kernel_size
        cells = filter_grid * filter_grid if per_pixel_filters else 1
        filter_features = _conv_head(features, "fp", head_filters, synchronized)
        filter_logits = keras.layers.Dense(
            time * cells * taps,
            kernel_initializer=HE_DENSE_INITIALIZER,
            bias_initializer=(
                "zeros"
                if initial_centre_weight is None
                else CentreTapBias(kernel_size, initial_centre_weight)
            ),
            dtype="float32",
            name="fp_filter_fc",
        )(filter_features)
        # Filter logits, softmax and filters stay float32 under mixed precision.
        if per_pixel_filters:
            applied, filters = _per_pixel_filters(
                filter_logits, time, kernel_size, filter_grid, input_shape[1:3]
            )
        else:
            filter_logits = keras.layers.Reshape(
                (time, taps), dtype="float32", name="fp_filter_taps"
            )(filter_logits)
            filters = keras.layers.Softmax(axis=-1, dtype="float32", name="fp_filter_softmax")(
                filter_logits
            )
            filters = keras.layers.Reshape(
                (time, kernel_size, kernel_size), dtype="float32", name=FILTERS
            )(filters)
            applied = filters
        outputs[PREDICTED_FRAMES] = DynamicFilter(
            kernel_size, per_pixel=per_pixel_filters, name=PREDICTED_FRAMES, **filter_options
        )(frames, applied)
        outputs[FILTERS] = filters

    if classifies:
        action = keras.layers.Dense(
            config.ar_units,
            activation="relu",
            kernel_initializer=HE_DENSE_INITIALIZER,
            name=AR_LAYER,
        )(_conv_head(features, "ar", head_filters, synchronized))
        if kind == "joint":
            dmr = keras.layers.Dense(
                config.dmr_units,
                activation="relu",
                kernel_initializer=HE_DENSE_INITIALIZER,
                name=DMR,
            )(keras.layers.Flatten(name="dmr_flatten")(filters))
            outputs[DMR] = dmr
            action = keras.layers.Concatenate(name="ar_dmr_concat")([action, dmr])
        if config.dropout_rate:
            action = keras.layers.Dropout(config.dropout_rate, name="classifier_dropout")(action)
        outputs[LOGITS] = keras.layers.Dense(
            num_classes, kernel_initializer=HE_DENSE_INITIALIZER, dtype="float32", name=LOGITS
        )(action)

    return keras.Model(frames, outputs, name=name or f"dynamonet_{kind}")


@dataclasses.dataclass
class WeightTransferReport:
    """Which layers of a target model received weights from a source model.

    ``loaded``: same name and weight shapes, copied. ``new``: absent from the source, left as
    initialised. ``mismatched``: present in both with different shapes (for example a
    classifier for another number of classes), left as initialised. ``unused``: source
    layers with no counterpart in the target. Names of layers inside a nested model (the
    backbone) are prefixed with its name: ``backbone/conv1``.
    """

    loaded: list
    new: list
    mismatched: list
    unused: list

    def __str__(self):
        lines = [
            f"loaded {len(self.loaded)} layers, {len(self.new)} new, "
            f"{len(self.mismatched)} with mismatched shapes, {len(self.unused)} unused"
        ]
        for title, names in (
            ("new", self.new),
            ("mismatched", self.mismatched),
            ("unused", self.unused),
        ):
            if names:
                lines.append(f"  {title}: {', '.join(names)}")
        return "\n".join(lines)


def weighted_layers(model: keras.Model, prefix: str = "") -> dict:
    """``{qualified name: layer}`` for every layer with weights, descending into sub-models."""
    layers = {}
    for layer in model.layers:
        qualified = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            layers.update(weighted_layers(layer, f"{qualified}/"))
        elif layer.weights:
            layers[qualified] = layer
    return layers


def transfer_weights(
    source: keras.Model, target: keras.Model, reinitialize: Sequence[str] = ()
) -> "WeightTransferReport":
    """Copies weights from ``source`` into ``target`` layer by layer, matching names.

    Non-trainable weights (BatchNorm statistics) move too. Layers named in ``reinitialize``
    (e.g. ``("logits",)`` when fine-tuning on new classes) keep their initial weights and are
    reported as ``new``. Returns a :class:`WeightTransferReport`.
    """
    source_layers = weighted_layers(source)
    target_layers = weighted_layers(target)
    report = WeightTransferReport(loaded=[], new=[], mismatched=[], unused=[])
    for name, layer in target_layers.items():
        if name not in source_layers or name in reinitialize:
            report.new.append(name)
            continue
        values = source_layers[name].get_weights()
        shapes = [tuple(v.shape) for v in values]
        if shapes != [tuple(w.shape) for w in layer.weights]:
            report.mismatched.append(name)
            continue
        layer.set_weights(values)
        report.loaded.append(name)
    report.unused = [name for name in source_layers if name not in target_layers]
    return report
