"""Paper §4.5: is the frame-prediction loss what makes the motion filters useful, and how
much of it?

Joint training from scratch on the benchmark with loss.alpha in {0, 0.01, 0.1, 1} (the
paper's is 0.1; at 0 the filters are shaped by the classification loss alone): video-level
accuracy, the joint model's next-frame SSIM on the test videos, and alpha * L_FP's share of
the gradient on the backbone::

    python -m experiments.fp_objective [--seeds 0 1 2 3 4] [--steps N] [--smoke]
"""

from experiments import common
from experiments.claims import ALPHAS, FP_OBJECTIVE

ARMS = tuple(common.Arm(f"alpha_{alpha}", (f"loss.alpha={alpha}",)) for alpha in ALPHAS)


def run(args):
    return common.run_on_benchmark(args, ARMS)


def main(argv=None):
    return common.main(run, FP_OBJECTIVE, argv)


if __name__ == "__main__":
    main()
