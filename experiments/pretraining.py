"""Paper Tables 1 and 2: self-supervised pretraining against training from scratch, with all
and with half of the labeled training videos.

Per seed: pretraining (frame prediction only) on the demo's unlabeled clips, then joint
training on the labeled demo set from those weights and from scratch, on all the training
videos and on a fixed half of each class's (:mod:`experiments.label_subset`). Both arms
train alike; only the initial weights differ::

    python -m experiments.pretraining [--seeds 0 1 2] [--steps N] [--smoke]
"""

from pathlib import Path

from experiments import common
from experiments.claims import PRETRAINING
from experiments.datasets import demo_data
from experiments.label_subset import write_half_subset

HALF_SEED = 0  # one fixed half for every training seed, as Table 2 has one


def arms(demo, half_files):
    """The arms, given the prepared demo and the half subset's files."""
    full, half = f"data.train_files={demo.labeled_train}", f"data.train_files={half_files}"
    return (
        common.Arm("pretrain", ("train.stage=pretrain", f"data.train_files={demo.unlabeled}")),
        common.Arm("pretrained_full", ("train.stage=joint", full), init_from="pretrain"),
        common.Arm(
            "scratch_full", ("train.stage=joint", full), same_as=("fp_objective", "alpha_0.1")
        ),
        common.Arm("pretrained_half", ("train.stage=joint", half), init_from="pretrain"),
        common.Arm("scratch_half", ("train.stage=joint", half)),
    )


def run(args):
    demo = demo_data(args.data_root, args.smoke)
    half_dir = Path(args.data_root) / ("smoke" if args.smoke else "") / "labeled_split1_half"
    write_half_subset(demo.labeled_train, half_dir, seed=HALF_SEED)
    # Every arm is scored on the labeled test videos: pretraining on their frame prediction.
    shared = (f"data.eval_files={demo.labeled_test}",)
    return common.run_experiment(args, arms(demo, half_dir / "train-*.tfrecord"), shared)


def main(argv=None):
    return common.main(run, PRETRAINING, argv)


if __name__ == "__main__":
    main()
