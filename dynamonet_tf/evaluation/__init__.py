"""Action recognition evaluation of trained runs: the paper's test protocol (§4.3, Table 5).

Every clip of each test video is classified at the centre crop, or at 3 crops along the long
side; the softmax scores of all views of a video are averaged, and the video counts as
correct when its true class ranks first (top-1) or in the first five (top-5) of that
average. UCF101 and HMDB51 report the mean over their 3 splits.

- :mod:`~dynamonet_tf.evaluation.protocol`: the core, :func:`evaluate_clips` (any callable
  from frames to logits, any dataset of ``(frames, info)`` batches; the trainer's end-of-run
  accuracy uses it too), the class names and video counts of a prepared manifest, and
  :func:`check_videos_read`: the videos read compared with those the manifest lists.
- :mod:`~dynamonet_tf.evaluation.splits`: what ``evaluate.py`` runs (:func:`plan_splits`,
  :func:`evaluate_split`, :func:`summarise_splits`): it finds runs and data and checks that
  they fit together.
- :mod:`~dynamonet_tf.evaluation.outputs`: ``metrics.json``, ``predictions.csv``,
  ``confusion.png``, ``summary.json`` and the printed table (:func:`format_table`).
- :func:`confusion_figure` (from :mod:`dynamonet_tf.plots`): the confusion matrix drawn
  with matplotlib, as ``confusion.png`` shows it.
"""

from dynamonet_tf.evaluation.outputs import format_table, write_outputs, write_summary
from dynamonet_tf.evaluation.protocol import (
    ALLOW_MISSING_FLAG,
    HEADLINE,
    ClipScores,
    EvaluationError,
    ManifestVideos,
    VideoShortfall,
    check_videos_read,
    class_names,
    evaluate_clips,
    manifest_videos,
    model_logits,
    score_clips,
)
from dynamonet_tf.evaluation.splits import (
    DATASETS,
    SplitPlan,
    evaluate_split,
    plan_splits,
    summarise_splits,
)
from dynamonet_tf.plots import confusion_figure

__all__ = [
    "ALLOW_MISSING_FLAG",
    "DATASETS",
    "HEADLINE",
    "ClipScores",
    "EvaluationError",
    "ManifestVideos",
    "SplitPlan",
    "VideoShortfall",
    "check_videos_read",
    "class_names",
    "confusion_figure",
    "evaluate_clips",
    "evaluate_split",
    "format_table",
    "manifest_videos",
    "model_logits",
    "plan_splits",
    "score_clips",
    "summarise_splits",
    "write_outputs",
    "write_summary",
]
