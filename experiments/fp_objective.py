"""Paper §4.5: is the frame-prediction loss what makes the motion filters useful?

Joint training from scratch on the labeled demo set with the paper's loss weight
(``loss.alpha=0.1``) and without frame prediction (``loss.alpha=0``: the filters are then
shaped by the classification loss alone); video-level top-1 on the test videos::

    python -m experiments.fp_objective [--seeds 0 1 2] [--steps N] [--smoke]
"""

from experiments import common
from experiments.claims import FP_OBJECTIVE

ARMS = (
    common.Arm("alpha_0.1", ("loss.alpha=0.1",)),
    common.Arm("alpha_0", ("loss.alpha=0",)),
)


def run(args):
    return common.run_on_labeled_demo(args, ARMS)


def main(argv=None):
    return common.main(run, FP_OBJECTIVE, argv)


if __name__ == "__main__":
    main()
