"""Action recognition and next-frame prediction on whole video files.

A video is decoded with PyAV at the short side its model's training data were prepared at
(:attr:`VideoModel.decode_short_side`; FFmpeg's area resampling, as ``data/prepare.py``
stores training frames), subsampled to its frames 0, s, 2s, ... (``s`` the run's
``data.frame_stride``, the spacing of its training clips) and cut into every
non-overlapping clip of T of those frames as :func:`~dynamonet_tf.data.pipelines.eval_dataset`
cuts evaluation videos (the last clip padded by repeating the last kept frame), and each clip
is preprocessed as in evaluation (bilinear resize to the model's short side, centre crop) and
run through the model: the clips and the preprocessing are those of
:mod:`dynamonet_tf.data.clips`, the functions evaluation and the export use, so a video's
model input differs from ``evaluate.py``'s for its prepared frames only by their JPEG coding.
The video's class probabilities are the mean of its clips' softmax scores, the
paper's test protocol (:func:`dynamonet_tf.video_accuracy.video_score`).

The model comes from either of two places, with the same numbers:

- :class:`ExportedModel`: a SavedModel written by :func:`dynamonet_tf.export.export_saved_model`
  (``export.py``), through its signatures;
- :class:`RunModel`: a training run loaded with :func:`dynamonet_tf.runs.load_run`, through
  the Keras model and the preprocessing the export's signatures run,
  :func:`~dynamonet_tf.data.clips.preprocess_video`.

``predict.py`` is the command line over this module.
"""

import dataclasses
import fractions
import json
from pathlib import Path
from typing import Optional

import av
import numpy as np
import tensorflow as tf
from PIL import Image

from dynamonet_tf import export
from dynamonet_tf.atomic_files import atomic_write_with
from dynamonet_tf.config import ExperimentConfig
from dynamonet_tf.data.clips import (
    decode_short_side,
    preprocess_video,
    subsample_frames,
    video_clips,
)
from dynamonet_tf.data.datasets import VIDEO_EXTENSIONS
from dynamonet_tf.data.pipelines import list_files
from dynamonet_tf.data.prepare import read_manifest
from dynamonet_tf.data.video import VideoDecodeError, decode_video
from dynamonet_tf.layout import MANIFEST, PathLike
from dynamonet_tf.names import LOGITS, PREDICTED_FRAMES
from dynamonet_tf.runs import model_kind
from dynamonet_tf.video_accuracy import video_score

FRAME_FORMATS = (".mp4", ".gif")
VALID_VIDEOS = f"a video file FFmpeg can decode ({', '.join(VIDEO_EXTENSIONS)}, ...)"
VALID_EXPORTS = "a directory written by export.py"
# Frame rate of written frames when the source video does not declare one.
DEFAULT_FPS = 25.0


class InferenceError(Exception):
    """A video, model or output that cannot be used; the message names the path and what
    would be valid, in one line."""


class VideoModel:
    """A DynamoNet model that takes raw ``uint8`` clips: what an export and a run share.

    Attributes:
        source: the export dir or checkpoint it was loaded from, for messages.
        kind: ``"joint"``, ``"classifier"`` or ``"pretrain"``.
        num_frames, short_side, crop_size: the clip geometry it was trained on.
        decode_short_side: the short side to decode video files at (:func:`read_video`):
            that of the frames of its prepared training data, which training and evaluation
            resize (bilinearly) to ``short_side``; ``short_side`` when unknown
            (:func:`~dynamonet_tf.data.clips.decode_short_side`).
        frame_stride: its clips hold every ``frame_stride``-th frame of a video (the run's
            ``data.frame_stride``).
        label_names: the class names in class-index order; ``None`` for a model without a
            classifier (``"pretrain"``).
    """

    source: str
    kind: str
    num_frames: int
    frame_stride: int = 1
    short_side: int
    decode_short_side: int
    crop_size: int
    label_names: list

    @property
    def classifies(self) -> bool:
        return self.kind != "pretrain"

    @property
    def predicts_frames(self) -> bool:
        return self.kind != "classifier"

    def probabilities(self, clips: np.ndarray) -> np.ndarray:
        """uint8 clips of :func:`~dynamonet_tf.data.clips.video_clips` (already strided),
        ``(batch, time, height, width, 3)`` -> float32 ``(batch, classes)`` softmax."""
        raise NotImplementedError

    def predicted_frames(self, clips: np.ndarray) -> np.ndarray:
        """uint8 clips of :func:`~dynamonet_tf.data.clips.video_clips`, ``(batch, time, height,
        width, 3)`` -> float32 ``(batch, time, crop_size, crop_size, 3)`` in [0, 1]: frame ``t``
        predicts clip frame ``t + 1``."""
        raise NotImplementedError

    def crop(self, frames: np.ndarray) -> tf.Tensor:
        """uint8 ``(batch, time, height, width, 3)`` -> the float32 model input in [0, 1],
        ``(batch, time, crop_size, crop_size, 3)``: the evaluation preprocessing,
        :func:`~dynamonet_tf.data.clips.preprocess_video`."""
        return preprocess_video(frames, short_side=self.short_side, crop_size=self.crop_size)


class ExportedModel(VideoModel):
    """A SavedModel of :func:`~dynamonet_tf.export.export_saved_model`, used through its
    ``serving_default`` and ``predict_frames`` signatures.

    The signatures take native-rate video and keep every ``frame_stride``-th frame; a clip of
    :func:`~dynamonet_tf.data.clips.video_clips` (already strided) is given to them with each
    frame repeated ``frame_stride`` times, the native-rate input whose kept frames are exactly
    the clip. Its ``decode_short_side`` is the metadata's (``short_side`` for an export that
    does not record it).
    """

    def __init__(self, export_dir):
        export_dir = Path(export_dir)
        self.source = str(export_dir)
        metadata_path = export_dir / "assets" / export.METADATA_FILE
        if not export_dir.is_dir():
            raise InferenceError(
                f"{export_dir}: no such directory; --export takes {VALID_EXPORTS}."
            )
        if not (export_dir / "saved_model.pb").is_file():
            raise InferenceError(
                f"{export_dir}: not a SavedModel (no saved_model.pb); --export takes "
                f"{VALID_EXPORTS}."
            )
        if not metadata_path.is_file():
            raise InferenceError(
                f"{export_dir}: a SavedModel but not a DynamoNet export (no assets/"
                f"{export.METADATA_FILE}); --export takes {VALID_EXPORTS}."
            )
        try:
            metadata = json.loads(metadata_path.read_text())
            self.kind = metadata["model_kind"]
            self.num_frames = metadata["num_frames"]
            # Exports written before the stride was recorded served consecutive frames.
            self.frame_stride = metadata.get("frame_stride", 1)
            self.short_side = metadata["short_side"]
            # Absent from older exports, None when the export did not know it.
            self.decode_short_side = metadata.get("decode_short_side") or self.short_side
            self.crop_size = metadata["crop_size"]
            self.label_names = metadata["label_names"]
            signatures = metadata["signatures"]
        except (ValueError, KeyError, TypeError) as error:
            raise InferenceError(
                f"{metadata_path}: unreadable DynamoNet export metadata ({type(error).__name__}: "
                f"{error}); export the model again with export.py."
            ) from None
        try:
            # Kept as an attribute: the signatures need the loaded object alive.
            self._saved_model = tf.saved_model.load(str(export_dir))
        except (tf.errors.OpError, ValueError, OSError, IndexError) as error:
            reason = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            if isinstance(error, IndexError):  # TensorFlow's word for a truncated variables file
                reason = f"{export_dir / 'variables'} is truncated: {reason}"
            raise InferenceError(
                f"{export_dir}: the SavedModel cannot be loaded ({reason}); export the model "
                "again with export.py."
            ) from None
        missing = sorted(set(signatures) - set(self._saved_model.signatures))
        if missing:
            raise InferenceError(
                f"{export_dir}: the export lacks the signatures {missing} its metadata lists; "
                "export the model again with export.py."
            )

    def probabilities(self, clips: np.ndarray) -> np.ndarray:
        outputs = self._saved_model.signatures[export.SERVING_DEFAULT](
            video=self._native_rate(clips)
        )
        return outputs["probabilities"].numpy()

    def predicted_frames(self, clips: np.ndarray) -> np.ndarray:
        outputs = self._saved_model.signatures[export.PREDICT_FRAMES](
            video=self._native_rate(clips)
        )
        return outputs[PREDICTED_FRAMES].numpy()

    def _native_rate(self, clips):
        # The export keeps frames 0, s, 2s, ... of these: the clip's frames.
        return tf.constant(np.repeat(clips, self.frame_stride, axis=1))


class RunModel(VideoModel):
    """The Keras model of a training run (a :class:`~dynamonet_tf.runs.LoadedRun`).

    Its ``decode_short_side`` is read from the manifest of the run's prepared data
    (:func:`~dynamonet_tf.data.clips.decode_short_side`).

    Args:
        run: the loaded run.
        label_names: one name per class (see :func:`run_label_names`); ignored for a
            ``"pretrain"`` run; default the class indices.
    """

    def __init__(self, run, label_names=None):
        config = run.config
        self.model = run.model
        self.source = str(run.checkpoint)
        self.kind = model_kind(config)
        self.num_frames = config.data.num_frames
        self.frame_stride = config.data.frame_stride
        self.short_side = config.data.short_side
        self.decode_short_side = decode_short_side(config.data)
        self.crop_size = config.data.crop_size
        self.label_names = None
        if self.classifies:
            num_classes = self.model.output[LOGITS].shape[-1]
            self.label_names = label_names or [str(index) for index in range(num_classes)]
            if len(self.label_names) != num_classes:
                raise InferenceError(
                    f"{self.source}: {len(self.label_names)} label names for a model of "
                    f"{num_classes} classes."
                )

    def probabilities(self, clips: np.ndarray) -> np.ndarray:
        logits = self.model(self.crop(clips), training=False)[LOGITS]
        return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1).numpy()

    def predicted_frames(self, clips: np.ndarray) -> np.ndarray:
        outputs = self.model(self.crop(clips), training=False)
        return tf.cast(outputs[PREDICTED_FRAMES], tf.float32).numpy()


def run_label_names(config: ExperimentConfig, labels_file: Optional[PathLike] = None) -> tuple:
    """The class names of a run's model and where they come from: ``(names, source)``.

    ``labels_file`` (one name per line) when given; else the ``"classes"`` of the
    ``manifest.json`` (:func:`~dynamonet_tf.data.prepare.read_manifest`) of the shards of
    ``data.eval_files`` or ``data.train_files`` (absolute in the config a run saves; an
    older run's relative paths resolve against the working directory); else
    ``(None, None)``. A run that does not classify gives ``(None, None)``.

    Raises:
        InferenceError: the file is unreadable, or its names do not match
            ``data.num_classes``.
        PrepareError: an unreadable manifest.
    """
    if not config.train.labeled:
        return None, None
    if labels_file is not None:
        try:
            lines = Path(labels_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise InferenceError(
                f"--labels {labels_file}: cannot be read ({error.__class__.__name__})."
            ) from None
        names, source = [line.strip() for line in lines if line.strip()], f"--labels {labels_file}"
    else:
        names, source = _manifest_classes(config)
        if names is None:
            return None, None
    if len(names) != config.data.num_classes:
        remedy = "" if labels_file is not None else "; pass --labels FILE with one name per line"
        raise InferenceError(
            f"{source} lists {len(names)} class names but the model has data.num_classes = "
            f"{config.data.num_classes}{remedy}."
        )
    return names, source


def _manifest_classes(config):
    for pattern in (config.data.eval_files, config.data.train_files):
        if not pattern:
            continue
        try:
            files = list_files(pattern)
        except FileNotFoundError:
            continue  # the run's data is not on this machine: no names from it
        manifest = read_manifest(files)
        if manifest and manifest.get("classes"):
            return list(manifest["classes"]), str(Path(files[0]).parent / MANIFEST)
    return None, None


def read_video(path: PathLike, short_side: int) -> tuple:
    """Decodes every frame of a video file at ``short_side`` (area resampling).

    For a model's input, ``short_side`` is its :attr:`VideoModel.decode_short_side`, not its
    ``short_side``: the clips' preprocessing then resizes the frames to ``short_side`` as
    training and evaluation resize the prepared frames.

    Returns:
        ``(frames, fps)``: uint8 ``(time, height, width, 3)`` with the short side
        ``short_side``, and the frame rate (0.0 when the file does not say).

    Raises:
        InferenceError: a missing path, a directory, or a file that is not a decodable video.
    """
    path = Path(path)
    if not path.exists():
        raise InferenceError(f"{path}: no such file; expected {VALID_VIDEOS}.")
    if path.is_dir():
        raise InferenceError(f"{path}: is a directory; expected {VALID_VIDEOS}.")
    try:
        return decode_video(path, short_side=short_side)
    except VideoDecodeError as error:
        raise InferenceError(
            f"{path}: cannot be decoded ({error}); expected {VALID_VIDEOS}."
        ) from None


@dataclasses.dataclass(frozen=True)
class VideoPrediction:
    """What a model makes of one video of ``num_frames`` frames.

    Attributes:
        num_frames: frames of the video.
        num_clips: clips it was cut into.
        frame_stride: the model's clips hold every ``frame_stride``-th frame of the video;
            ``kept = ceil(num_frames / frame_stride)`` frames (0, s, 2s, ...) are used.
        probabilities: float64 ``(classes,)``, the mean of the clips' softmax scores;
            ``None`` for a model without a classifier.
        label_names: the class names, ``None`` without a classifier.
        predicted_frames: float32 ``(kept - 1, crop_size, crop_size, 3)`` in [0, 1], the
            prediction of kept frames 1..kept-1 (0-based; video frames s, 2s, ...), each
            from the kept frame before it in its clip; ``None`` unless asked for.
        true_frames: float32, the same shape: the centre-cropped frames they predict.
    """

    num_frames: int
    num_clips: int
    frame_stride: int = 1
    probabilities: np.ndarray = None
    label_names: list = None
    predicted_frames: np.ndarray = None
    true_frames: np.ndarray = None

    def top_k(self, k: int = 5) -> list:
        """``[(label, probability), ...]``, the ``k`` most probable classes, best first."""
        ranked = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(self.label_names[index], float(self.probabilities[index])) for index in ranked]


def predict_video(
    model: VideoModel, frames: np.ndarray, *, with_frames: bool = False, batch_size: int = 8
) -> "VideoPrediction":
    """Classifies a video and, with ``with_frames``, predicts its next frames.

    Args:
        model: a :class:`VideoModel` (:class:`ExportedModel` or :class:`RunModel`).
        frames: uint8 ``(time, height, width, 3)``, the whole video, any frame size.
        with_frames: also return the predicted next frames (a model with frame prediction).
        batch_size: clips per model call (bounds memory, not the result).

    Returns:
        A :class:`VideoPrediction`.
    """
    if with_frames and not model.predicts_frames:
        raise InferenceError(
            f"{model.source}: a {model.kind} model has no frame-prediction branch."
        )
    clips = video_clips(frames, model.num_frames, model.frame_stride)
    batches = [clips[start : start + batch_size] for start in range(0, len(clips), batch_size)]
    result = {}
    if model.classifies:
        clip_probabilities = np.concatenate([model.probabilities(batch) for batch in batches])
        result["probabilities"] = video_score(clip_probabilities)
        result["label_names"] = model.label_names
    if with_frames:
        # Clip k's output t predicts kept frame k * T + t + 1, so the clips' outputs in order
        # predict kept frames 1, 2, ...; those beyond the last kept frame (padding) are dropped.
        kept = subsample_frames(frames, model.frame_stride)
        predicted = np.concatenate([model.predicted_frames(batch) for batch in batches])
        predicted = predicted.reshape(-1, *predicted.shape[2:])
        result["predicted_frames"] = predicted[: len(kept) - 1]
        result["true_frames"] = model.crop(kept[None, 1:]).numpy()[0]
    return VideoPrediction(
        num_frames=len(frames), num_clips=len(clips), frame_stride=model.frame_stride, **result
    )


def write_frames(
    path: PathLike, true_frames: np.ndarray, predicted_frames: np.ndarray, fps: float = DEFAULT_FPS
) -> None:
    """Writes true and predicted frames side by side (true left) as an MP4 or a GIF.

    MP4 is H.264 (MPEG-4 Part 2 where FFmpeg lacks it) in yuv420p, which needs even sides,
    so odd sides are padded with black. GIF: Pillow merges identical consecutive frames into
    one longer frame, so a still stretch plays as long but counts fewer frames.

    The file is written whole or not at all (a hidden ``.<stem>.partial<suffix>`` beside it,
    then renamed): an existing ``path`` is replaced only by a complete file.

    Args:
        path: ``.mp4`` or ``.gif``; missing parent directories are created.
        true_frames, predicted_frames: ``(time, height, width, 3)`` in [0, 1].
        fps: frames per second of the output.

    Raises:
        InferenceError: another extension, no frames, or a file that cannot be written.
    """
    path = Path(path)
    if path.suffix.lower() not in FRAME_FORMATS:
        raise InferenceError(f"{path}: frames are written as {' or '.join(FRAME_FORMATS)}.")
    if len(predicted_frames) == 0:
        raise InferenceError(f"{path}: a video of one frame has no next frame to predict.")
    pairs = np.concatenate([true_frames, predicted_frames], axis=2)
    pairs = np.round(np.clip(pairs, 0, 1) * 255).astype(np.uint8)

    def write(temporary):
        if path.suffix.lower() == ".gif":
            images = [Image.fromarray(pair) for pair in pairs]
            images[0].save(
                temporary,
                save_all=True,
                append_images=images[1:],
                duration=round(1000 / fps),
                loop=0,
            )
        else:
            _write_mp4(temporary, pairs, fps)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Hidden, and with the extension PIL and PyAV choose the format by.
        temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
        atomic_write_with(path, write, temporary=temporary)
    except (OSError, av.FFmpegError) as error:
        raise InferenceError(
            f"{path}: cannot be written ({type(error).__name__}: {error})."
        ) from None


def _write_mp4(path, frames, fps):
    _, height, width, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)))
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fractions.Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18"}  # visually lossless: prediction errors stay visible
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
