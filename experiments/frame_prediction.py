"""Paper Table 3 and Figure 3: next-frame prediction on photographs never seen in training.

Pretrains on unlabeled demo clips filmed over 12 photographs and scores the predicted next
frames (SSIM on RGB and luma, PSNR, the Huber loss) on clips filmed over 4 others, against
copying the last frame. Arms: one filter per frame (the paper) and a filter per pixel (our
extension, ``model.per_pixel_filters``)::

    python -m experiments.frame_prediction [--seeds 0 1 2] [--steps N] [--smoke]
"""

from experiments import common
from experiments.claims import FRAME_PREDICTION
from experiments.datasets import photo_split_data

ARMS = (
    common.Arm("global_filters"),
    common.Arm("per_pixel_filters", ("model.per_pixel_filters=true",)),
)


def run(args):
    train_files, held_out_files = photo_split_data(args.data_root, args.smoke)
    shared = (
        "train.stage=pretrain",
        f"data.train_files={train_files}",
        f"data.eval_files={held_out_files}",
    )
    return common.run_experiment(args, ARMS, shared)


def main(argv=None):
    return common.main(run, FRAME_PREDICTION, argv)


if __name__ == "__main__":
    main()
