"""Renders the example figures of the README from synthetic data: no training, no internet.

    python docs/figures/render.py [--out FOLDER]

- ``figure3_example.png``: the paper's Figure 3 as ``evaluate_frame_prediction.py`` draws it
  (:func:`dynamonet_tf.frame_prediction.figure`), for a synthetic clip, a textured square
  moving over a textured background, and a made-up "prediction" (the square moved 70% of
  the way, blurred): not a trained model's.
- ``confusion_ucf101_synthetic.png``: ``confusion.png`` as ``evaluate.py`` draws it
  (:func:`dynamonet_tf.plots.confusion_figure`) for UCF101's 101 classes, with counts from
  synthetic predictions (fixed seed), not a trained model's.
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from dynamonet_tf.atomic_files import atomic_write
from dynamonet_tf.frame_prediction import figure
from dynamonet_tf.plots import confusion_figure, figure_to_png

HERE = Path(__file__).resolve().parent
SEED = 0
SIZE, T = 64, 8  # DynamoNet's pretraining clips: 8 frames (+1 to predict) of 64 pixels
SQUARE = 20
VELOCITY = (3, 1)  # pixels per frame, (dx, dy): right and a little down
# The "prediction" moves the square this share of its true step, a typical undershoot.
PREDICTED_SHARE = 0.7

# UCF101's classes in the order of its classInd.txt (ids 1..101).
UCF101_CLASSES = """
ApplyEyeMakeup ApplyLipstick Archery BabyCrawling BalanceBeam BandMarching BaseballPitch
Basketball BasketballDunk BenchPress Biking Billiards BlowDryHair BlowingCandles
BodyWeightSquats Bowling BoxingPunchingBag BoxingSpeedBag BreastStroke BrushingTeeth
CleanAndJerk CliffDiving CricketBowling CricketShot CuttingInKitchen Diving Drumming Fencing
FieldHockeyPenalty FloorGymnastics FrisbeeCatch FrontCrawl GolfSwing Haircut Hammering
HammerThrow HandstandPushups HandstandWalking HeadMassage HighJump HorseRace HorseRiding
HulaHoop IceDancing JavelinThrow JugglingBalls JumpingJack JumpRope Kayaking Knitting LongJump
Lunges MilitaryParade Mixing MoppingFloor Nunchucks ParallelBars PizzaTossing PlayingCello
PlayingDaf PlayingDhol PlayingFlute PlayingGuitar PlayingPiano PlayingSitar PlayingTabla
PlayingViolin PoleVault PommelHorse PullUps Punch PushUps Rafting RockClimbingIndoor
RopeClimbing Rowing SalsaSpin ShavingBeard Shotput SkateBoarding Skiing Skijet SkyDiving
SoccerJuggling SoccerPenalty StillRings SumoWrestling Surfing Swing TableTennisShot TaiChi
TennisSwing ThrowDiscus TrampolineJumping Typing UnevenBars VolleyballSpiking WalkingWithDog
WallPushups WritingOnBoard YoYo
""".split()
# About UCF101 split 1's test set: 3783 videos, 37 or 38 per class.
VIDEOS_PER_CLASS = 37


def texture(rng, height, width, sigma):
    """Smooth colour noise ``(height, width, 3)`` stretched to [0, 1]."""
    noise = cv2.GaussianBlur(rng.random((height, width, 3)), (0, 0), sigma)
    return (noise - noise.min()) / (noise.max() - noise.min())


def synthetic_clip(rng):
    """``(frames 1..T, frames 2..T+1, "prediction" of frames 2..T+1)``, each
    ``(T, SIZE, SIZE, 3)`` in [0, 1]: the square at frame t sits ``t * VELOCITY`` from its
    start; the "prediction" of frame t + 1 moves it ``PREDICTED_SHARE`` of the step from
    frame t, bilinearly, and blurs the frame."""
    background = 0.6 * texture(rng, SIZE, SIZE, 4.0)
    square = texture(rng, SQUARE, SQUARE, 1.5)

    def frame(position):
        """The background with the square's top left corner at ``position`` (x, y), in
        sub-pixel steps (the square is resampled bilinearly onto the frame)."""
        x, y = position
        shift = np.float32([[1, 0, x], [0, 1, y]])
        placed = cv2.warpAffine(square, shift, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
        inside = cv2.warpAffine(
            np.ones((SQUARE, SQUARE), np.float64), shift, (SIZE, SIZE), flags=cv2.INTER_LINEAR
        )[..., None]
        return inside * placed + (1 - inside) * background

    start = np.array([8.0, 14.0])
    step = np.array(VELOCITY, np.float64)
    clip = np.stack([frame(start + t * step) for t in range(T + 1)])
    predicted = np.stack(
        [
            cv2.GaussianBlur(frame(start + (t + PREDICTED_SHARE) * step), (0, 0), 0.7)
            for t in range(T)
        ]
    )
    return clip[:-1], clip[1:], np.clip(predicted, 0.0, 1.0)


def synthetic_confusion(rng):
    """Video counts ``(101, 101)``: each class's videos are right about 80% of the time
    (a per-class rate drawn around it), and the wrong ones go mostly to three classes fixed
    per class, the rest anywhere, as a trained model's mistakes cluster."""
    classes = len(UCF101_CLASSES)
    counts = np.zeros((classes, classes), np.int64)
    for true in range(classes):
        right = rng.beta(8, 2)  # a mean of 0.8
        confusable = rng.choice(np.delete(np.arange(classes), true), 3, replace=False)
        for _ in range(VIDEOS_PER_CLASS):
            if rng.random() < right:
                counts[true, true] += 1
            elif rng.random() < 0.7:
                counts[true, rng.choice(confusable)] += 1
            else:
                counts[true, rng.integers(classes)] += 1
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder of the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)

    frames, next_frames, predicted = synthetic_clip(rng)
    title = (
        f"SYNTHETIC example: a textured square moving {VELOCITY[0]} px right, {VELOCITY[1]} px "
        f"down per frame; the prediction is made up ({PREDICTED_SHARE:.0%} of the step, "
        "blurred), not a trained model's"
    )
    atomic_write(
        args.out / "figure3_example.png",
        figure_to_png(figure(frames, next_frames, predicted, title=title)),
    )

    counts = synthetic_confusion(rng)
    drawn = confusion_figure(
        counts,
        UCF101_CLASSES,
        dataset="UCF101 (SYNTHETIC predictions, not a trained model)",
        split=1,
        checkpoint=f"none: counts drawn at random, seed {SEED}",
        top1=np.trace(counts) / counts.sum(),
    )
    atomic_write(args.out / "confusion_ucf101_synthetic.png", figure_to_png(drawn))


if __name__ == "__main__":
    main()
