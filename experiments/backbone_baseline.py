"""Paper Tables 4 and 5: DynamoNet against the plain backbone classifier it is built on.

Joint training from scratch on the benchmark of DynamoNet (backbone, action head and
dynamic motion filters, alpha = 0.1) and of the backbone with the action head only
(``train.classifier_only=true``); video-level top-1 on the test videos, overall and per
motion family (pans, zooms, rotations, sprites, still)::

    python -m experiments.backbone_baseline [--seeds 0 1 2 3 4] [--steps N] [--smoke]
"""

from experiments import common
from experiments.claims import BACKBONE_BASELINE

ARMS = (
    common.Arm("dynamonet", ("loss.alpha=0.1",), same_as=("fp_objective", "alpha_0.1")),
    common.Arm("backbone_only", ("train.classifier_only=true",)),
)


def run(args):
    return common.run_on_benchmark(args, ARMS)


def main(argv=None):
    return common.main(run, BACKBONE_BASELINE, argv)


if __name__ == "__main__":
    main()
