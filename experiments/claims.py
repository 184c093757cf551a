"""What each experiment tests: the paper's claim, its numbers, and how a result is judged.

One :class:`Claim` per experiment script. The scripts take from it the names of their arms;
``make_results.py`` takes everything else: the tables' rows and columns, the paper's numbers
and the :class:`Comparison` s whose direction decides whether a result goes the paper's way.
Nothing here loads TensorFlow, so the results page renders without it.
"""

import dataclasses
from pathlib import Path

from dynamonet_tf.data.demo import DEMO_CLASSES, MOTION_FAMILIES
from experiments.datasets import BENCHMARK, HELD_OUT_PHOTOS, TRAINING_PHOTOS

RESULTS_DIR = Path("experiments") / "results"  # <name>/results.json; --smoke: smoke/<name>/
RESULTS_FILE = "results.json"
RESULTS_PAGE = Path("docs") / "RESULTS.md"  # make_results.py renders it from the results files


@dataclasses.dataclass(frozen=True)
class Metric:
    """A column: ``key`` in a run's metrics, shown as ``format(value * scale, spec)``."""

    key: str
    label: str
    spec: str = ".3f"
    scale: float = 1.0

    def format(self, value):
        return format(value * self.scale, self.spec)


@dataclasses.dataclass(frozen=True)
class Row:
    """A table row: the metrics ``prefix + metric.key`` of ``arm``'s runs."""

    label: str
    arm: str
    prefix: str = ""


@dataclasses.dataclass(frozen=True)
class Gain:
    """A derived quantity: per seed, ``of`` minus ``over`` (each an ``(arm, metric key)``)."""

    label: str
    of: tuple
    over: tuple


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Expected: ``higher`` above ``lower``, paired by seed; each an ``(arm, metric key)``
    or a :class:`Gain`.

    ``paper`` gives the paper's numbers for the same contrast; ``hypothesis`` is True for a
    contrast the paper does not make (our extension), whose direction is our expectation.
    """

    higher: tuple
    lower: tuple
    paper: str
    hypothesis: bool = False


@dataclasses.dataclass(frozen=True)
class Claim:
    """One experiment: ``name`` is its module (``python -m experiments.<name>``) and its
    results folder."""

    name: str
    title: str
    source: str  # where in the paper
    claim: str  # what the paper says, with its numbers
    setting: str  # how it is tested here
    runtime: str  # of the default command: its runs, and their time on 2 CPU cores
    arms: tuple  # names of the arms the script runs, in order
    rows: tuple  # of Row
    metrics: tuple  # of Metric
    comparisons: tuple  # of Comparison

    @property
    def command(self):
        return f"python -m experiments.{self.name}"

    def results_dir(self, smoke=False):
        """Where the script writes by default (``--out``)."""
        return RESULTS_DIR / "smoke" / self.name if smoke else RESULTS_DIR / self.name


FRAME_METRICS = (
    Metric("ssim", "SSIM (RGB)"),
    Metric("ssim_luma", "SSIM (luma)"),
    Metric("psnr", "PSNR (dB), mean over frames", ".2f"),
    # Weighs every frame's error alike, where the mean PSNR is led by the near-perfect copies
    # of still frames (frame_metrics).
    Metric("psnr_of_mean_mse", "PSNR of the mean MSE (dB)", ".2f"),
    Metric("frame_prediction_loss", "FP loss (Huber, frame sum)", ".3f"),
)
ACCURACY_METRICS = (
    Metric("video_top1", "video top-1 (%)", ".1f", 100.0),
    Metric("mean_class_accuracy", "mean class accuracy (%)", ".1f", 100.0),
    Metric("clip_top1", "clip top-1 (%)", ".1f", 100.0),
)
TOP1 = "video_top1"
FP_SHARE = "share_frame_prediction_of_backbone"
SHARE_METRICS = (Metric(FP_SHARE, "alpha L_FP's share of the backbone's gradient (%)", ".1f", 100),)
FAMILY_PREFIX = "family_"  # a run's video top-1 over the test videos of one motion family
FAMILY_METRICS = tuple(
    Metric(f"{FAMILY_PREFIX}{family}", f"{family} (%)", ".1f", 100.0) for family in MOTION_FAMILIES
)
# Against the test's: how much of the training set was memorised, and how much of what was
# learnt carries to the held-out photographs (the holdout is of the training photographs).
TRAIN_TOP1 = Metric("top1_accuracy", "training clip top-1, last epoch (%)", ".1f", 100.0)
HOLDOUT_TOP1 = Metric("val_top1_accuracy", "holdout clip top-1 (%)", ".1f", 100.0)
BENCHMARK_TEXT = (
    f"the labeled motion benchmark ({len(DEMO_CLASSES)} classes of camera or sprite motion "
    "whose photographs, crops and colours are random, so that only the motion tells them "
    f"apart; {len(TRAINING_PHOTOS)} photographs film the training videos and "
    f"{len(HELD_OUT_PHOTOS)} others ({', '.join(HELD_OUT_PHOTOS)}) the test videos)"
)
UNLABELED_TEXT = (
    f"the benchmark's {BENCHMARK['unlabeled_videos']} unlabeled clips (a random mix of pan, "
    "zoom, rotation and sprite over the training photographs)"
)

FRAME_PREDICTION = Claim(
    name="frame_prediction",
    title="Next-frame prediction",
    source="Table 3 and Figure 3, §4.6",
    claim=(
        "The dynamic motion filters predict the next frame well: SSIM 0.95 on 378 UCF101 test "
        "videos, above the 0.92 of Mathieu et al.'s multi-scale network."
    ),
    setting=(
        f"Pretraining (frame prediction only) on {UNLABELED_TEXT}, then joint training from "
        f"those weights on {BENCHMARK_TEXT}; each model's next frames are scored on every "
        "whole clip of the test videos, never seen in training, against copying the last "
        "frame: the trivial predictor that any model must beat (Mathieu et al.'s network is "
        "not available offline). Arms: one filter per frame (the paper) and a filter per "
        "pixel (our extension, interpolated from a grid of filters per frame, "
        "model.filter_grid), each after pretraining and after joint training."
    ),
    runtime="4 runs per seed, two of them per-pixel (about 1.8x the steps' time)",
    arms=("pretrain_global", "pretrain_per_pixel", "joint_global", "joint_per_pixel"),
    rows=(
        Row("pretrained, a filter per frame (paper)", "pretrain_global"),
        Row("pretrained, a filter per pixel (extension)", "pretrain_per_pixel"),
        Row("joint-trained, a filter per frame", "joint_global"),
        Row("joint-trained, a filter per pixel", "joint_per_pixel"),
        Row("copy the last frame", "pretrain_global", prefix="copy_"),
    ),
    metrics=FRAME_METRICS,
    comparisons=(
        Comparison(
            higher=("pretrain_global", "ssim"),
            lower=("pretrain_global", "copy_ssim"),
            paper=(
                "SSIM 0.95 (DynamoNet) vs 0.92 (Mathieu et al.); "
                "copying the last frame is not reported"
            ),
        ),
        Comparison(
            higher=("pretrain_global", "psnr"),
            lower=("pretrain_global", "copy_psnr"),
            paper="PSNR is not reported; a predictor worth its name beats copying",
            hypothesis=True,
        ),
        Comparison(
            higher=("pretrain_global", "psnr_of_mean_mse"),
            lower=("pretrain_global", "copy_psnr_of_mean_mse"),
            paper="not reported; the same question, every frame's error weighed alike",
            hypothesis=True,
        ),
        Comparison(
            higher=("pretrain_per_pixel", "ssim"),
            lower=("pretrain_global", "ssim"),
            paper=(
                "no counterpart: per-pixel filters are our extension, expected to fit the zooms, "
                "rotations and moving sprites that one filter per frame cannot"
            ),
            hypothesis=True,
        ),
        Comparison(
            higher=("joint_global", "ssim"),
            # Copying scores the same test clips whichever model: one row shows it.
            lower=("pretrain_global", "copy_ssim"),
            paper=(
                "not measured: the paper shows predicted frames (Figure 3) but not whether "
                "joint training keeps the predictor; expected, since L_FP stays in the loss"
            ),
            hypothesis=True,
        ),
        Comparison(
            higher=("joint_per_pixel", "ssim"),
            lower=("joint_global", "ssim"),
            paper="no counterpart (our extension), after joint training",
            hypothesis=True,
        ),
    ),
)

ALPHAS = ("0", "0.01", "0.1", "1")
FP_OBJECTIVE = Claim(
    name="fp_objective",
    title="The frame-prediction objective and its weight alpha",
    source="§4.5",
    claim=(
        "Frame prediction is what makes the filters useful: trained on UCF101 alone, DynamoNet "
        "reaches 50.2%; the same network without the prediction loss (filters learnt from the "
        "classification loss alone) 43.2%. The paper trains with alpha = 0.1, beta = 1 and "
        "reports no other alpha."
    ),
    setting=(
        f"Joint training from scratch on {BENCHMARK_TEXT}, with alpha in {{{', '.join(ALPHAS)}}} "
        "(beta = 1): video-level accuracy and the joint model's next-frame SSIM on the test "
        "videos, and alpha * L_FP's measured share of the gradient norm on the backbone (mean "
        "over the run's measurements, one every 50 steps)."
    ),
    runtime="4 runs per seed",
    arms=tuple(f"alpha_{alpha}" for alpha in ALPHAS),
    rows=tuple(Row(f"alpha = {alpha}", f"alpha_{alpha}") for alpha in ALPHAS),
    metrics=(
        *ACCURACY_METRICS,
        TRAIN_TOP1,
        Metric("ssim", "next-frame SSIM (RGB)"),
        *SHARE_METRICS,
    ),
    comparisons=(
        Comparison(
            higher=("alpha_0.1", TOP1),
            lower=("alpha_0", TOP1),
            paper="50.2% with the prediction loss vs 43.2% without (trained on UCF101 alone)",
        ),
        Comparison(
            higher=("alpha_0.01", TOP1),
            lower=("alpha_0", TOP1),
            paper="not reported (the paper's only alpha is 0.1)",
            hypothesis=True,
        ),
        Comparison(
            higher=("alpha_1", TOP1),
            lower=("alpha_0", TOP1),
            paper="not reported (the paper's only alpha is 0.1)",
            hypothesis=True,
        ),
        Comparison(
            higher=("alpha_0.1", "ssim"),
            lower=("alpha_0", "ssim"),
            paper="not reported; expected, since only alpha > 0 trains the predictor",
            hypothesis=True,
        ),
    ),
)

PRETRAINING = Claim(
    name="pretraining",
    title="Self-supervised pretraining, with all and with half of the labels",
    source="Tables 1 and 2, §4.4",
    claim=(
        "Pretraining by frame prediction on unlabeled video, then training on labels, beats "
        "training from scratch: UCF101 split 1 87.3% vs 55.4% for a 3D-ResNet-101 from scratch "
        "(Table 1); on Kinetics, 67.6% vs 66.2% with all the labels and 63.6% vs 55.4% with "
        "half of them (Table 2, STC-ResNeXt-101): the gain is largest when labels are scarce."
    ),
    setting=(
        f"Pretraining on {UNLABELED_TEXT}, then joint training on {BENCHMARK_TEXT} from the "
        "pretrained weights or from scratch, with all the training videos and with half of "
        "each class's (a fixed subset, rounded down, at least one). Both arms train alike "
        "(same steps and learning rate): only the initial weights differ."
    ),
    runtime="5 runs per seed, 3 of them shared with frame_prediction and fp_objective",
    arms=("pretrain", "pretrained_full", "scratch_full", "pretrained_half", "scratch_half"),
    rows=(
        Row("pretrained, all labels", "pretrained_full"),
        Row("from scratch, all labels", "scratch_full"),
        Row("pretrained, half the labels", "pretrained_half"),
        Row("from scratch, half the labels", "scratch_half"),
    ),
    metrics=(*ACCURACY_METRICS, TRAIN_TOP1, HOLDOUT_TOP1),
    comparisons=(
        Comparison(
            higher=("pretrained_full", TOP1),
            lower=("scratch_full", TOP1),
            paper="87.3% vs 55.4% (UCF101 split 1, Table 1); 67.6% vs 66.2% (Kinetics, Table 2)",
        ),
        Comparison(
            higher=("pretrained_half", TOP1),
            lower=("scratch_half", TOP1),
            paper="63.6% vs 55.4% (Kinetics with half the labels, Table 2)",
        ),
        Comparison(
            higher=Gain(
                "gain from pretraining, half the labels",
                ("pretrained_half", TOP1),
                ("scratch_half", TOP1),
            ),
            lower=Gain(
                "gain from pretraining, all labels",
                ("pretrained_full", TOP1),
                ("scratch_full", TOP1),
            ),
            paper=(
                "+8.2 points with half the labels (63.6% vs 55.4%) against +1.4 with all of them "
                "(67.6% vs 66.2%; Kinetics, Table 2)"
            ),
        ),
    ),
)

BACKBONE_BASELINE = Claim(
    name="backbone_baseline",
    title="DynamoNet against its plain backbone, by motion family",
    source="Tables 4 and 5, §4.7",
    claim=(
        "The dynamic motion representation adds to the backbone's: with a ResNeXt-101 on 16 "
        "frames, DynamoNet reaches 66.3% on Kinetics-400 against 65.1% for the plain 3D "
        "ResNeXt-101 (Table 4), and 91.6% / 66.2% on UCF101 / HMDB51 against 90.7% / 63.8% "
        "(Table 5)."
    ),
    setting=(
        f"Joint training from scratch on {BENCHMARK_TEXT}: DynamoNet (both heads, alpha = 0.1) "
        "against the backbone with the action head only (train.classifier_only=true); "
        "video-level accuracy over all test videos and over each motion family's: "
        + "; ".join(f"{family}: {', '.join(labels)}" for family, labels in MOTION_FAMILIES.items())
        + ". One filter per frame can represent a translation (the pans) but not a zoom, a "
        "rotation or a sprite over a still background."
    ),
    runtime="2 runs per seed, DynamoNet's shared with fp_objective",
    arms=("dynamonet", "backbone_only"),
    rows=(
        Row("DynamoNet (backbone + filters)", "dynamonet"),
        Row("plain backbone classifier", "backbone_only"),
    ),
    metrics=(ACCURACY_METRICS[0], *FAMILY_METRICS, TRAIN_TOP1),
    comparisons=(
        Comparison(
            higher=("dynamonet", TOP1),
            lower=("backbone_only", TOP1),
            paper=(
                "66.3% vs 65.1% (Kinetics-400, Table 4); 91.6% vs 90.7% (UCF101) and 66.2% vs "
                "63.8% (HMDB51, Table 5), ResNeXt-101 on 16 frames"
            ),
        ),
        *(
            Comparison(
                higher=("dynamonet", metric.key),
                lower=("backbone_only", metric.key),
                paper="not reported per kind of motion",
                hypothesis=True,
            )
            for metric in FAMILY_METRICS
        ),
    ),
)

CLAIMS = {
    claim.name: claim for claim in (FRAME_PREDICTION, FP_OBJECTIVE, PRETRAINING, BACKBONE_BASELINE)
}
