"""Paper Table 3 and Figure 3: next-frame prediction on photographs never seen in training.

Per seed: pretraining (frame prediction only) on the benchmark's unlabeled clips, then joint
training on its labeled training videos from those weights, each with one filter per frame
(the paper) and with a filter per pixel (our extension, ``model.per_pixel_filters``). Every
model's next frames (SSIM on RGB and luma, PSNR, the Huber loss) are scored on all whole
clips of the test videos, filmed over other photographs, against copying the last frame::

    python -m experiments.frame_prediction [--seeds 0 1 2 3 4] [--steps N] [--smoke]
"""

from experiments import common
from experiments.claims import FRAME_PREDICTION
from experiments.datasets import benchmark_data

PER_PIXEL = ("model.per_pixel_filters=true",)


def arms(benchmark):
    pretrain = common.benchmark_overrides(benchmark, "pretrain")
    joint = common.benchmark_overrides(benchmark, "joint")
    return (
        common.Arm("pretrain_global", pretrain),
        common.Arm("pretrain_per_pixel", (*pretrain, *PER_PIXEL)),
        common.Arm("joint_global", joint, init_from="pretrain_global"),
        common.Arm("joint_per_pixel", (*joint, *PER_PIXEL), init_from="pretrain_per_pixel"),
    )


def run(args):
    return common.run_experiment(args, arms(benchmark_data(args.data_root, args.smoke)))


def main(argv=None):
    return common.main(run, FRAME_PREDICTION, argv)


if __name__ == "__main__":
    main()
