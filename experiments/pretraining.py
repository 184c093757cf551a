"""Paper Tables 1 and 2: self-supervised pretraining against training from scratch, with all
and with half of the labeled training videos.

Per seed: pretraining (frame prediction only) on the benchmark's unlabeled clips, then joint
training on its labeled videos from those weights and from scratch, on all the training
videos and on a fixed half of each class's (:mod:`experiments.label_subset`). Both arms
train alike; only the initial weights differ. Three arms are other experiments' runs, taken
when finished: the pretraining and joint training of frame_prediction's filter per frame,
and fp_objective's alpha = 0.1 from scratch::

    python -m experiments.pretraining [--seeds 0 1 2 3 4] [--steps N] [--smoke]
"""

from pathlib import Path

from experiments import common
from experiments.claims import PRETRAINING
from experiments.datasets import benchmark_data, benchmark_root
from experiments.label_subset import write_half_subset

HALF_SEED = 0  # one fixed half for every training seed, as Table 2 has one


def arms(benchmark, half_files):
    """The arms, given the prepared benchmark and the half subset's files."""
    pretrain = common.benchmark_overrides(benchmark, "pretrain")
    full = common.benchmark_overrides(benchmark, "joint")
    half = (*full, f"data.train_files={half_files}")
    return (
        common.Arm("pretrain", pretrain, same_as=("frame_prediction", "pretrain_global")),
        common.Arm(
            "pretrained_full",
            full,
            init_from="pretrain",
            same_as=("frame_prediction", "joint_global"),
        ),
        common.Arm(
            "scratch_full", (*full, "loss.alpha=0.1"), same_as=("fp_objective", "alpha_0.1")
        ),
        common.Arm("pretrained_half", half, init_from="pretrain"),
        common.Arm("scratch_half", half),
    )


def run(args):
    benchmark = benchmark_data(args.data_root, args.smoke)
    half_dir = Path(benchmark_root(args.data_root, args.smoke)).parent / "labeled_split1_half"
    write_half_subset(benchmark.train, half_dir, seed=HALF_SEED)
    return common.run_experiment(args, arms(benchmark, Path(half_dir) / "train-*.tfrecord"))


def main(argv=None):
    return common.main(run, PRETRAINING, argv)


if __name__ == "__main__":
    main()
