"""The names every part of DynamoNet-TF agrees on, defined once.

Model outputs (the keys of a model's output dict, the targets' keys of the training
pipeline, the losses' keys), the model kinds and the outputs of each, the training stages,
the backbone names and the frame-prediction loss reductions. This module imports nothing
from the package, so every layer may import it (docs/DESIGN.md §9).
"""

from typing import NamedTuple

# Model outputs: a dict keyed by these names.
LOGITS = "logits"  # (batch, classes) float32: the action scores before the softmax
PREDICTED_FRAMES = "predicted_frames"  # (batch, time, height, width, 3) in [0, 1]
FILTERS = "filters"  # (batch, time, k, k): each frame's dynamic motion filter
DMR = "dmr"  # (batch, dmr_units): the dynamic motion representation

# The label index of a video without a label (unlabeled data, TFRecords and readers).
UNLABELED = -1

# The model input's name and the layer whose output is the AR (appearance) features.
FRAMES_INPUT = "frames"
AR_LAYER = "ar_fc"

# The labeled datasets of the evaluation protocol and their official splits: UCF101, HMDB51
# and the demo have three, Kinetics-400 one validation set.
DATASET_SPLITS = {"ucf101": (1, 2, 3), "hmdb51": (1, 2, 3), "kinetics400": (1,), "demo": (1, 2, 3)}

# pretrain: frame prediction only; joint: frame prediction and classification (DynamoNet);
# classifier: the plain backbone + action head baseline of the ablations.
MODEL_KINDS = ("pretrain", "joint", "classifier")
KIND_OUTPUTS = {
    "pretrain": frozenset({PREDICTED_FRAMES, FILTERS}),
    "joint": frozenset({LOGITS, PREDICTED_FRAMES, FILTERS, DMR}),
    "classifier": frozenset({LOGITS}),
}

# pretrain trains a "pretrain" model; joint and finetune a "joint" one (or a "classifier"
# with train.classifier_only).
STAGES = ("pretrain", "joint", "finetune")


def kind_of_stage(stage, classifier_only=False):
    """The model kind a training ``stage`` trains: ``"pretrain"``, ``"joint"`` or
    ``"classifier"``."""
    if stage == "pretrain":
        return "pretrain"
    return "classifier" if classifier_only else "joint"


# How L_FP reduces the Huber loss: frame_sum sums over each predicted frame's pixels and
# channels and averages over frames (paper eq. 2); pixel_mean averages over pixels too.
FP_REDUCTIONS = ("frame_sum", "pixel_mean")


class BackboneSpec(NamedTuple):
    """What a backbone name says: ``resnext50`` is ``BackboneSpec(50, resnext=True,
    stc=False)``; an ``stc_`` prefix adds STC blocks."""

    depth: int
    resnext: bool
    stc: bool


RESNET_DEPTHS = (10, 18, 34, 50, 101, 152)
RESNEXT_DEPTHS = (50, 101, 152)  # bottleneck depths only
STC_PREFIX = "stc_"


def _backbones():
    specs = {}
    for stc in (False, True):
        prefix = STC_PREFIX if stc else ""
        for family, depths in (("resnet", RESNET_DEPTHS), ("resnext", RESNEXT_DEPTHS)):
            for depth in depths:
                specs[f"{prefix}{family}{depth}"] = BackboneSpec(depth, family == "resnext", stc)
    return specs


# Every backbone name, in a stable order: resnet10 ... resnext152, then their stc_ variants.
BACKBONES = _backbones()
