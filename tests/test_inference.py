"""Video inference (dynamonet_tf/inference.py) and its command lines, export.py and predict.py."""

import json
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

import export as export_cli
import predict
from dynamonet_tf import export
from dynamonet_tf.config import to_dict
from dynamonet_tf.data import demo
from dynamonet_tf.data import prepare as prepare_module
from dynamonet_tf.data.clips import video_clips
from dynamonet_tf.data.datasets import read_folder
from dynamonet_tf.data.pipelines import eval_dataset
from dynamonet_tf.data.prepare import PrepareOptions, prepare
from dynamonet_tf.data.video import decode_video
from dynamonet_tf.inference import (
    ExportedModel,
    RunModel,
    predict_video,
    read_video,
    write_frames,
)
from dynamonet_tf.layout import RUN_CONFIG
from dynamonet_tf.models import build_dynamonet
from dynamonet_tf.runs import build_model, load_run
from dynamonet_tf.training.trainer import Trainer
from tiny_run import tiny_config, write_tiny_data
from videos import write_video

CLASSES = [f"pan {index}" for index in range(8)]  # write_tiny_data's 8 classes
NUM_FRAMES = 8  # T of tiny_config
SIDE = 32  # tiny_config's short side and crop
VIDEO_FRAMES = 21  # 3 clips, the last one padded with 3 copies of the final frame


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 48 x 36 MP4 of VIDEO_FRAMES frames, brighter frame by frame."""
    path = tmp_path_factory.mktemp("videos") / "walk.mp4"
    write_video(path, VIDEO_FRAMES, height=36, width=48)
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, video):
    """A joint run trained for one step, and a checkpoint of it with a sensitive classifier.

    Returns ``(model_dir, sensitive_checkpoint)``. A barely trained classifier scores every
    clip alike, so wrong clips or a wrong average would pass the tolerances. The sensitive
    checkpoint's logits layer reads only how a clip's features differ from the mean of the
    test video's clips, scaled so that its clips' logits spread by a few units.
    """
    data = write_tiny_data(tmp_path_factory.mktemp("data"))
    (data / "manifest.json").write_text(json.dumps({"classes": CLASSES}))
    model_dir = tmp_path_factory.mktemp("runs") / "joint"
    config = tiny_config(data, "joint", "train.epochs=1", "train.steps_per_epoch=1")
    Trainer(config, model_dir, progress=False).train()

    run = load_run(model_dir)
    logits = run.model.get_layer("logits")
    frames, _ = read_video(video, SIDE)
    clips = centre_crop(video_clips(frames, NUM_FRAMES))
    features = keras.Model(run.model.input, logits.input)(clips, training=False).numpy()
    kernel = np.random.default_rng(0).normal(size=(features.shape[1], len(CLASSES)))
    kernel *= 3 / ((features - features.mean(0)) @ kernel).std()
    logits.set_weights([kernel.astype(np.float32), (-features.mean(0) @ kernel).astype(np.float32)])
    # A folder of its own in the run, so that the run's latest checkpoint stays the trained one.
    sensitive = tf.train.Checkpoint(model=run.model).save(str(model_dir / "sensitive" / "ckpt"))
    return model_dir, sensitive


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """export.py run on the sensitive checkpoint; returns the export dir."""
    _, sensitive = tiny_run
    out = tmp_path_factory.mktemp("exports") / "dynamonet"
    export_cli.main(["--checkpoint", str(sensitive), "--out", str(out)])
    return out


def centre_crop(frames):
    """uint8 frames ``(..., SIDE, width, 3)``, already at the short side -> model input."""
    left = (frames.shape[-2] - SIDE) // 2
    return frames[..., left : left + SIDE, :].astype(np.float32) / 255


def test_probabilities_are_the_mean_of_the_clips_softmax(tiny_run, video):
    _, sensitive = tiny_run
    run = load_run(sensitive)
    frames, _ = read_video(video, SIDE)
    assert frames.shape == (VIDEO_FRAMES, SIDE, 43, 3)  # decoded at the short side

    # batch_size 2 splits the 3 clips over two model calls.
    prediction = predict_video(RunModel(run, CLASSES), frames, with_frames=True, batch_size=2)

    by_hand = []
    for start in range(0, VIDEO_FRAMES, NUM_FRAMES):
        indices = [min(start + t, VIDEO_FRAMES - 1) for t in range(NUM_FRAMES)]
        outputs = run.model(centre_crop(frames[indices])[None], training=False)
        by_hand.append(
            (tf.nn.softmax(outputs["logits"])[0].numpy(), outputs["predicted_frames"][0].numpy())
        )
    clip_probabilities = np.stack([probabilities for probabilities, _ in by_hand])
    assert np.ptp(clip_probabilities, axis=0).max() > 0.1  # the clips score differently
    assert prediction.num_clips == 3
    np.testing.assert_allclose(prediction.probabilities, clip_probabilities.mean(0), atol=1e-6)

    # Clip k's output t predicts frame k * T + t + 1; the padded clip's last outputs go.
    predicted = np.concatenate([frames for _, frames in by_hand])[: VIDEO_FRAMES - 1]
    np.testing.assert_allclose(prediction.predicted_frames, predicted, atol=1e-5)
    np.testing.assert_allclose(prediction.true_frames, centre_crop(frames[1:]), atol=1e-6)
    best = np.argsort(-prediction.probabilities)[:3]
    assert prediction.top_k(3) == [(CLASSES[i], prediction.probabilities[i]) for i in best]


def predict_json(capsys, *arguments):
    predict.main([*map(str, arguments), "--json"])
    return json.loads(capsys.readouterr().out)


def test_export_and_run_give_the_same_predictions(tiny_run, exported, video, capsys):
    _, sensitive = tiny_run
    [from_export] = predict_json(capsys, video, "--export", exported)
    [from_run] = predict_json(capsys, video, "--checkpoint", sensitive)
    np.testing.assert_allclose(from_export["probabilities"], from_run["probabilities"], atol=1e-5)
    assert [entry["label"] for entry in from_export["top_k"]] == [
        entry["label"] for entry in from_run["top_k"]
    ]
    assert len(from_export["top_k"]) == 5 and {e["label"] for e in from_run["top_k"]} <= set(
        CLASSES
    )
    assert (from_export["frames"], from_export["clips"]) == (VIDEO_FRAMES, 3)

    frames, _ = read_video(video, SIDE)
    by_export = predict_video(ExportedModel(exported), frames, with_frames=True)
    by_run = predict_video(RunModel(load_run(sensitive), CLASSES), frames, with_frames=True)
    np.testing.assert_allclose(by_export.predicted_frames, by_run.predicted_frames, atol=1e-5)


def test_export_cli_carries_the_manifest_labels_and_the_run_geometry(exported):
    loaded = tf.saved_model.load(str(exported))
    assert [name.decode() for name in loaded.labels()["labels"].numpy()] == CLASSES
    metadata = json.loads((exported / "assets" / export.METADATA_FILE).read_text())
    assert (metadata["model_kind"], metadata["backbone"], metadata["top_k"]) == (
        "joint",
        "resnet10",
        5,
    )
    assert (metadata["num_frames"], metadata["short_side"], metadata["crop_size"]) == (
        NUM_FRAMES,
        SIDE,
        SIDE,
    )


def test_export_cli_errors_are_one_line(tiny_run, exported, tmp_path):
    model_dir, _ = tiny_run
    wrong_labels = tmp_path / "labels.txt"
    wrong_labels.write_text("walk\nrun\n")
    cases = [
        (["--model-dir", model_dir, "--out", exported], "pass --overwrite"),
        (
            ["--model-dir", model_dir, "--out", tmp_path / "x", "--labels", wrong_labels],
            "lists 2 class names",
        ),
        (["--model-dir", tmp_path, "--out", tmp_path / "x"], "no config.yaml"),
        (
            ["--model-dir", model_dir, "--best", "--checkpoint", "x", "--out", tmp_path / "x"],
            "--best",
        ),
    ]
    for arguments, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            export_cli.main([str(argument) for argument in arguments])
        assert str(exit_info.value).startswith("error: ") and message in str(exit_info.value)
        assert "\n" not in str(exit_info.value)
    assert not (tmp_path / "x").exists()


def test_frames_are_written_true_left_predicted_right(tiny_run, video, tmp_path):
    _, sensitive = tiny_run
    frames, _ = read_video(video, SIDE)
    prediction = predict_video(RunModel(load_run(sensitive), CLASSES), frames, with_frames=True)

    write_frames(tmp_path / "frames.gif", prediction.true_frames, prediction.predicted_frames)
    with Image.open(tmp_path / "frames.gif") as gif:
        assert gif.n_frames == VIDEO_FRAMES - 1 and gif.size == (2 * SIDE, SIDE)
        gif.seek(4)
        pair = np.asarray(gif.convert("RGB"), np.float32) / 255
    # GIF keeps at most 256 colours: a few levels of error.
    np.testing.assert_allclose(pair[:, :SIDE], prediction.true_frames[4], atol=4 / 255)
    np.testing.assert_allclose(pair[:, SIDE:], prediction.predicted_frames[4], atol=4 / 255)

    write_frames(tmp_path / "frames.mp4", prediction.true_frames, prediction.predicted_frames, 10)
    decoded, fps = decode_video(tmp_path / "frames.mp4")
    assert decoded.shape == (VIDEO_FRAMES - 1, SIDE, 2 * SIDE, 3) and fps == 10


def test_predict_cli_writes_frames(exported, video, tmp_path, capsys):
    out = tmp_path / "out" / "frames.mp4"
    predict.main([str(video), "--export", str(exported), "--frames-out", str(out)])
    printed = capsys.readouterr().out
    assert f"{video}: {VIDEO_FRAMES} frames, 3 clips of {NUM_FRAMES}" in printed
    assert f"{out} ({VIDEO_FRAMES - 1} frames)" in printed
    assert len(decode_video(out)[0]) == VIDEO_FRAMES - 1


@pytest.fixture(scope="module")
def bad_inputs(video, tmp_path_factory):
    """{kind: path} of inputs that are not videos."""
    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.mp4"
    text.write_text("a text file renamed .mp4\n")
    corrupt = folder / "truncated.mp4"
    corrupt.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    return {"missing": folder / "missing.mp4", "text": text, "corrupt": corrupt, "folder": folder}


@pytest.mark.parametrize("kind", ["missing", "text", "corrupt", "folder"])
def test_predict_cli_names_a_bad_video_in_one_line(exported, bad_inputs, kind, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(bad_inputs[kind]), "--export", str(exported)])
    message = str(exit_info.value)
    assert message.startswith(f"error: {bad_inputs[kind]}: ") and "\n" not in message
    assert "expected a video file FFmpeg can decode" in message
    assert "Traceback" not in capsys.readouterr().err


def test_one_bad_video_does_not_stop_the_others(exported, video, bad_inputs, capsys):
    videos = [video, bad_inputs["text"], video, bad_inputs["missing"]]
    with pytest.raises(SystemExit) as exit_info:
        predict.main([*map(str, videos), "--export", str(exported), "--json"])
    assert str(exit_info.value) == "error: 2 of 4 videos could not be predicted (see above)."
    captured = capsys.readouterr()
    reports = json.loads(captured.out)
    assert [report.get("error") is None for report in reports] == [True, False, True, False]
    assert reports[0]["probabilities"] == reports[2]["probabilities"]
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert [line.split(": ")[1] for line in errors] == [
        str(bad_inputs["text"]),
        str(bad_inputs["missing"]),
    ]


def test_predict_cli_refuses_what_is_not_a_dynamonet_export(tmp_path, video):
    tf.saved_model.save(tf.Module(), str(tmp_path / "other"))
    (tmp_path / "empty").mkdir()
    cases = {
        tmp_path / "missing": "no such directory",
        tmp_path / "empty": "not a SavedModel",
        tmp_path / "other": "a SavedModel but not a DynamoNet export",
    }
    for export_dir, reason in cases.items():
        with pytest.raises(SystemExit) as exit_info:
            predict.main([str(video), "--export", str(export_dir)])
        message = str(exit_info.value)
        assert message.startswith(f"error: {export_dir}: {reason}") and "\n" not in message
        assert message.endswith("--export takes a directory written by export.py.")


def test_predict_cli_names_an_export_whose_variables_are_truncated(exported, tmp_path, video):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(exported, damaged)
    (data,) = (damaged / "variables").glob("variables.data-*")
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(video), "--export", str(damaged)])
    assert str(exit_info.value) == (
        f"error: {damaged}: the SavedModel cannot be loaded ({damaged / 'variables'} is "
        "truncated: Read less bytes than requested); export the model again with export.py."
    )


def test_a_pretrain_model_only_writes_frames(tmp_path, video, capsys):
    model = build_dynamonet(
        "pretrain",
        backbone="resnet10",
        input_shape=(NUM_FRAMES, SIDE, SIDE, 3),
        head_filters=8,
        width_multiplier=0.125,
    )
    export.export_saved_model(model, tmp_path / "pretrain", short_side=SIDE, crop_size=SIDE)
    arguments = [str(video), "--export", str(tmp_path / "pretrain")]
    with pytest.raises(SystemExit, match="pretrain model without a classifier.*--frames-out"):
        predict.main(arguments)

    predict.main([*arguments, "--frames-out", str(tmp_path / "frames.gif")])
    assert "no classifier (pretrain model)" in capsys.readouterr().out
    with Image.open(tmp_path / "frames.gif") as gif:
        assert gif.n_frames == VIDEO_FRAMES - 1


@pytest.fixture(scope="module")
def strided_run(tmp_path_factory, video):
    """An untrained joint run of data.frame_stride 2, its classifier made sensitive as in
    ``tiny_run`` (on its strided clips of the test video), and export.py's export of it:
    ``(model_dir, export_dir)``."""
    root = tmp_path_factory.mktemp("strided")
    config = tiny_config(root / "no_data", "joint", "data.frame_stride=2")
    model = build_model(config)
    logits = model.get_layer("logits")
    frames, _ = read_video(video, SIDE)
    clips = centre_crop(video_clips(frames, NUM_FRAMES, 2))
    features = keras.Model(model.input, logits.input)(clips, training=False).numpy()
    kernel = np.random.default_rng(1).normal(size=(features.shape[1], len(CLASSES)))
    kernel *= 3 / ((features - features.mean(0)) @ kernel).std()
    logits.set_weights([kernel.astype(np.float32), (-features.mean(0) @ kernel).astype(np.float32)])
    model_dir = root / "run"
    model_dir.mkdir()
    (model_dir / RUN_CONFIG).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), model_dir / "checkpoints", max_to_keep=1
    ).save()
    export_dir = root / "export"
    export_cli.main(
        [
            "--model-dir",
            str(model_dir),
            "--out",
            str(export_dir),
            "--labels",
            str(labels_file(root)),
        ]
    )
    return model_dir, export_dir


def labels_file(folder):
    path = folder / "labels.txt"
    path.write_text("\n".join(CLASSES) + "\n")
    return path


@pytest.mark.slow
def test_a_strided_run_and_its_export_predict_from_every_stride_th_frame(
    strided_run, video, tmp_path, capsys
):
    """VIDEO_FRAMES = 21 frames at stride 2 keep frames 0, 2, ..., 20: 2 clips (frames 0..14,
    then 16, 18, 20 and 5 copies of 20), where consecutive frames would give 3."""
    model_dir, export_dir = strided_run
    run = load_run(model_dir)
    frames, _ = read_video(video, SIDE)
    kept = frames[::2]
    by_run = predict_video(RunModel(run, CLASSES), frames, with_frames=True, batch_size=1)

    by_hand = []
    for start in (0, NUM_FRAMES):
        indices = [min(start + t, len(kept) - 1) for t in range(NUM_FRAMES)]
        outputs = run.model(centre_crop(kept[indices])[None], training=False)
        by_hand.append(
            (tf.nn.softmax(outputs["logits"])[0].numpy(), outputs["predicted_frames"][0].numpy())
        )
    probabilities = np.mean([p for p, _ in by_hand], axis=0)
    assert (by_run.num_frames, by_run.num_clips, by_run.frame_stride) == (VIDEO_FRAMES, 2, 2)
    np.testing.assert_allclose(by_run.probabilities, probabilities, atol=1e-6)
    # Kept frame k + 1 (video frame 2 k + 2) is predicted: 10 of them.
    np.testing.assert_allclose(
        by_run.predicted_frames, np.concatenate([f for _, f in by_hand])[:10], atol=1e-5
    )
    np.testing.assert_allclose(by_run.true_frames, centre_crop(kept[1:]), atol=1e-6)
    # The test can tell: the clips of consecutive frames score otherwise.
    consecutive = run.model(centre_crop(video_clips(frames, NUM_FRAMES)), training=False)["logits"]
    assert np.abs(tf.nn.softmax(consecutive).numpy().mean(0) - by_run.probabilities).max() > 1e-3

    exported = ExportedModel(export_dir)
    assert exported.frame_stride == 2
    by_export = predict_video(exported, frames, with_frames=True)
    np.testing.assert_allclose(by_export.probabilities, by_run.probabilities, atol=1e-5)
    np.testing.assert_allclose(by_export.predicted_frames, by_run.predicted_frames, atol=1e-5)

    out = tmp_path / "frames.mp4"
    [from_export] = predict_json(capsys, video, "--export", export_dir, "--frames-out", out)
    [from_run] = predict_json(
        capsys, video, "--model-dir", model_dir, "--labels", labels_file(tmp_path)
    )
    for report in (from_export, from_run):
        assert (report["frames"], report["clips"], report["frame_stride"]) == (VIDEO_FRAMES, 2, 2)
        np.testing.assert_allclose(report["probabilities"], by_run.probabilities, atol=1e-5)
    written, fps = decode_video(out)
    assert len(written) == 10 and fps == pytest.approx(25 / 2)  # every 2nd frame, in real time


class _PngImage:
    """Stands in for PIL in data/prepare.py: frames stored losslessly, as PNG, where prepare
    writes JPEG (the pipeline's ``decode_jpeg`` reads PNG too)."""

    def __init__(self, array):
        self.image = Image.fromarray(array)

    def save(self, buffer, format, quality):
        self.image.save(buffer, format="PNG")


def test_predict_and_evaluate_give_a_prepared_video_the_same_input(tmp_path, monkeypatch):
    """predict.py decodes a video file at the short side data/prepare.py stored it at (48,
    from the manifest) and resizes it to the run's short side (32) as evaluation resizes the
    stored frames: for frames stored losslessly, the model input, and so the probabilities,
    are the evaluation pipeline's exactly. Decoded straight at the run's short side (FFmpeg's
    area resampling instead of prepare's area to 48 and the bilinear resize to 32), they differ.
    With JPEG storage, that coding is the only difference left."""
    videos = tmp_path / "videos"
    videos.mkdir()
    clip = demo.labeled_clip(np.random.default_rng(0), "zoom_in", 12, (64, 80))
    demo.write_video(videos / "zoom.avi", clip, 25)
    monkeypatch.setattr(prepare_module, "Image", types.SimpleNamespace(fromarray=_PngImage))
    options = PrepareOptions(short_side=48, holdout_fraction=0)
    prepare(read_folder(videos), tmp_path / "data", options, workers=0, progress=False)
    config = tiny_config(tmp_path / "data", "joint")
    run = types.SimpleNamespace(config=config, model=build_model(config), checkpoint="-")
    model = RunModel(run)
    assert (model.short_side, model.decode_short_side) == (SIDE, 48)

    evaluated = eval_dataset(
        config.data.train_files,
        num_frames=NUM_FRAMES,
        crop_size=SIDE,
        short_side=SIDE,
        batch_size=8,
    )
    [(eval_inputs, info)] = list(evaluated.as_numpy_iterator())
    assert list(info["valid_frames"]) == [8, 4]  # 12 frames: 2 clips, the last one padded
    frames, _ = read_video(videos / "zoom.avi", model.decode_short_side)
    assert frames.shape == (12, 48, 60, 3)
    np.testing.assert_array_equal(model.crop(video_clips(frames, NUM_FRAMES)), eval_inputs)
    logits = model.model(eval_inputs, training=False)["logits"]
    evaluate_probabilities = tf.nn.softmax(logits).numpy().mean(0)
    np.testing.assert_allclose(
        predict_video(model, frames).probabilities, evaluate_probabilities, atol=1e-6
    )

    at_model_side, _ = read_video(videos / "zoom.avi", model.short_side)
    one_resize = model.crop(video_clips(at_model_side, NUM_FRAMES)).numpy()
    assert np.abs(one_resize - eval_inputs).max() > 0.05  # the test can tell


def test_an_export_records_the_short_side_to_decode_at(tiny_run, exported, tmp_path):
    # exported: export.py, which records the short side the run's frames were prepared at.
    assert (
        json.loads((exported / "assets" / export.METADATA_FILE).read_text())["decode_short_side"]
        == SIDE
    )
    assert ExportedModel(exported).decode_short_side == SIDE
    _, sensitive = tiny_run
    out = tmp_path / "export"
    metadata = export.export_saved_model(
        load_run(sensitive).model, out, short_side=SIDE, crop_size=SIDE, decode_short_side=48
    )
    assert metadata["decode_short_side"] == 48
    assert (ExportedModel(out).short_side, ExportedModel(out).decode_short_side) == (SIDE, 48)
    with pytest.raises(ValueError, match="decode_short_side must be a positive integer"):
        export.export_saved_model(
            load_run(sensitive).model,
            tmp_path / "x",
            short_side=SIDE,
            crop_size=SIDE,
            decode_short_side=0,
        )
