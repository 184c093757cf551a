"""DynamoNet: a 3D backbone with a dynamic-motion-filter head and an action head.

Paper §3 and §4.1; the design notes, §3.3. Three functional models share layer names, so
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
targets of frame prediction: :func:`split_clip`.

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

import keras

from dynamonet_tf.layers import (
    HE_CONV_INITIALIZER,
    HE_DENSE_INITIALIZER,
    CentreTapBias,
    DynamicFilter,
    FrameNormalization,
)
from dynamonet_tf.models.backbones import build_backbone

MODEL_KINDS = ("pretrain", "joint", "classifier")

LOGITS = "logits"
PREDICTED_FRAMES = "predicted_frames"
FILTERS = "filters"
DMR = "dmr"

# Per-channel statistics of Kinetics-400 frames in [0, 1] (Hara et al.'s training code).
KINETICS_MEAN = (0.4345, 0.4051, 0.3775)
KINETICS_STD = (0.2768, 0.2713, 0.2737)


def split_clip(clip):
    """Splits a ``(batch, time + 1, ...)`` clip into model input and prediction targets.

    Returns ``(frames[:, :-1], frames[:, 1:])``: the model sees frames 1..T and predicts
    frames 2..T+1 (T - 1 reconstructed and one new future frame).
    """
    return clip[:, :-1], clip[:, 1:]


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
        x = keras.layers.BatchNormalization(
            momentum=0.9, epsilon=1e-5, synchronized=synchronized, name=f"{prefix}_bn{index}"
        )(x)
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
    kind="joint",
    *,
    backbone="stc_resnext101",
    input_shape=(16, 112, 112, 3),
    num_classes=None,
    kernel_size=5,
    per_pixel_filters=False,
    filter_grid=8,
    head_filters=64,
    ar_units=512,
    dmr_units=512,
    dropout_rate=0.0,
    initial_centre_weight=0.5,
    filter_implementation=None,
    filter_padding="zeros",
    mean=KINETICS_MEAN,
    std=KINETICS_STD,
    backbone_options=None,
    name=None,
):
    """Builds a DynamoNet model of the given ``kind`` ("pretrain", "joint", "classifier").

    Args:
        backbone: a name from :data:`dynamonet_tf.models.BACKBONES`.
        input_shape: ``(time, height, width, channels)`` of the input frames.
        num_classes: number of actions (joint and classifier models).
        kernel_size: side of the dynamic motion filters (the paper found 5 best).
        per_pixel_filters: a filter per pixel, interpolated from a ``filter_grid`` x
            ``filter_grid`` grid per frame, instead of the paper's one per frame (see the
            module docstring).
        head_filters: channels of the two convolutions of each head (64 in the paper).
        ar_units, dmr_units: widths of the AR and DMR features (DMR: 512 in the paper).
        dropout_rate: dropout on concat(AR, DMR) before the classifier.
        initial_centre_weight: weight of each filter's centre tap before training (see
            :class:`CentreTapBias`); ``None`` starts from uniform filters.
        filter_implementation, filter_padding: passed to :class:`DynamicFilter`.
        mean, std: per-channel statistics used to normalise frames for the backbone.
        backbone_options: extra options for :func:`build_backbone` (``width_multiplier``,
            ``shortcut_type``, ``conv1_t_size``, ``no_max_pool``, ...);
            ``synchronized_batch_norm`` applies to the heads' BatchNorm too.

    Returns:
        A ``keras.Model`` whose input is ``frames`` and whose outputs are a dict.
    """
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
            f"A {kind!r} DynamoNet needs num_classes, an integer of at least 2; got {num_classes!r}."
        )
    if not classifies and num_classes is not None:
        raise ValueError("A 'pretrain' DynamoNet has no classifier: leave num_classes unset.")

    backbone_options = dict(backbone_options or {})
    synchronized = backbone_options.get("synchronized_batch_norm", False)
    frames = keras.Input(shape=input_shape, name="frames")
    normalized = normalize(frames)
    features = build_backbone(
        backbone, input_shape=input_shape, name="backbone", **backbone_options
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
            kernel_size,
            implementation=filter_implementation,
            per_pixel=per_pixel_filters,
            padding=filter_padding,
            name=PREDICTED_FRAMES,
        )(frames, applied)
        outputs[FILTERS] = filters

    if classifies:
        action = keras.layers.Dense(
            ar_units, activation="relu", kernel_initializer=HE_DENSE_INITIALIZER, name="ar_fc"
        )(
            _conv_head(features, "ar", head_filters, synchronized)
        )
        if kind == "joint":
            dmr = keras.layers.Dense(
                dmr_units, activation="relu", kernel_initializer=HE_DENSE_INITIALIZER, name=DMR
            )(
                keras.layers.Flatten(name="dmr_flatten")(filters)
            )
            outputs[DMR] = dmr
            action = keras.layers.Concatenate(name="ar_dmr_concat")([action, dmr])
        if dropout_rate:
            action = keras.layers.Dropout(dropout_rate, name="classifier_dropout")(action)
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


def weighted_layers(model, prefix=""):
    """``{qualified name: layer}`` for every layer with weights, descending into sub-models."""
    layers = {}
    for layer in model.layers:
        qualified = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            layers.update(weighted_layers(layer, f"{qualified}/"))
        elif layer.weights:
            layers[qualified] = layer
    return layers


def transfer_weights(source, target, reinitialize=()):
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
