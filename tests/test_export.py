"""SavedModel export: loaded without the project, the signatures reproduce the Keras model."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

import export as export_cli
from dynamonet_tf import export
from dynamonet_tf.config import to_dict
from dynamonet_tf.layout import RUN_CONFIG
from dynamonet_tf.models import build_dynamonet
from dynamonet_tf.runs import build_model
from tiny_run import tiny_config

NUM_FRAMES = 8
SHORT_SIDE = 72
CROP = 64
TOP_K = 3
LABELS = ["walk", "run", "Käse rollen", "jump rope", "sit down"]
# Two calls of the same loaded signatures: (batch, height, width). The second is portrait
# and its long side, 101 * 72 / 75 = 96.96, checks that it is floored as in the pipelines.
VIDEO_SHAPES = {"landscape": (2, 80, 100), "portrait": (3, 101, 75)}

# Runs with its working directory in tmp_path and no PYTHONPATH, so that, as for a client
# of the export, the project cannot be imported.
LOAD_IN_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys

    # The package is installed (pip install -e .), so it is blocked instead: any import of it
    # while the export loads and runs fails, so a client needs TensorFlow only.
    sys.modules["dynamonet_tf"] = None
    import numpy as np
    import tensorflow as tf

    try:
        import dynamonet_tf
    except ImportError:
        pass
    else:
        sys.exit("dynamonet_tf is importable in the fresh process")

    export_dir, names = sys.argv[1], sys.argv[2:]
    loaded = tf.saved_model.load(export_dir)


    def strings(tensor):
        return [value.decode() for value in tensor.numpy()]

    report = {
        "signatures": sorted(loaded.signatures),
        "labels_signature": strings(loaded.signatures["labels"]()["labels"]),
        "labels_attribute": strings(loaded.labels()["labels"]),
        "metadata": loaded.signatures["metadata"]()["metadata"].numpy().decode(),
        "top_k_labels": {},
    }
    for name in names:
        video = tf.constant(np.load(f"{name}.npy"))
        for signature in ("serving_default", "predict_frames", "motion_features"):
            for key, value in loaded.signatures[signature](video=video).items():
                if key == "top_k_labels":
                    report["top_k_labels"][name] = [strings(row) for row in value]
                else:
                    np.save(f"{name}_{key}.npy", value.numpy())
    with open("report.json", "w") as file:
        json.dump(report, file)
    """
)


def tiny_model(kind):
    model = build_dynamonet(
        kind,
        backbone="resnet10",
        input_shape=(NUM_FRAMES, CROP, CROP, 3),
        num_classes=None if kind == "pretrain" else len(LABELS),
        head_filters=8,
        ar_units=16,
        dmr_units=16,
        width_multiplier=0.125,
    )
    if kind != "pretrain":
        # An untrained classifier is almost uniform, which would hide preprocessing errors
        # below the tolerance; sharper logits make the probabilities depend on the pixels.
        layer = model.get_layer("logits")
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * 10, bias])
    return model


def random_video(batch, height, width, seed=0):
    return np.random.default_rng(seed).integers(
        0, 256, (batch, NUM_FRAMES, height, width, 3), dtype=np.uint8
    )


def reference_frames(video, row_shift=0):
    """The evaluation preprocessing written out: short side to SHORT_SIDE (bilinear, long
    side floored), centre crop of CROP, [0, 1]. ``row_shift`` moves the crop down, to show
    that the tolerances catch a one-pixel error."""
    batch, time, height, width, channels = video.shape
    if height <= width:
        size = (SHORT_SIDE, width * SHORT_SIDE // height)
    else:
        size = (height * SHORT_SIDE // width, SHORT_SIDE)
    frames = video.reshape(-1, height, width, channels).astype(np.float32) / 255
    frames = tf.image.resize(frames, size, method="bilinear").numpy()
    top = (size[0] - CROP) // 2 + row_shift
    left = (size[1] - CROP) // 2
    frames = frames[:, top : top + CROP, left : left + CROP]
    return frames.reshape(batch, time, CROP, CROP, channels)


def keras_reference(model, frames):
    """The Keras model's outputs, with the AR features and the probabilities, as numpy."""
    features = keras.Model(model.input, {**model.output, "ar": model.get_layer("ar_fc").output})
    outputs = {name: np.asarray(value) for name, value in features(frames, training=False).items()}
    outputs["probabilities"] = tf.nn.softmax(outputs["logits"]).numpy()
    return outputs


@pytest.fixture(scope="module")
def joint(tmp_path_factory):
    """A joint model and its export: ``(model, export_dir, metadata)``."""
    keras.utils.set_random_seed(1)
    model = tiny_model("joint")
    export_dir = tmp_path_factory.mktemp("joint") / "export"
    metadata = export.export_saved_model(
        model,
        export_dir,
        label_names=LABELS,
        short_side=SHORT_SIDE,
        crop_size=CROP,
        top_k=TOP_K,
        backbone="resnet10",
    )
    return model, export_dir, metadata


@pytest.fixture(scope="module")
def fresh_process(joint, tmp_path_factory):
    """Outputs of the joint export loaded in a process that cannot import the project.

    Returns ``(videos, outputs, report)``: the input videos and the numpy outputs by video
    name, and the JSON report of the labels, metadata, signatures and top-k labels.
    """
    _, export_dir, _ = joint
    work = tmp_path_factory.mktemp("fresh_process")
    videos = {
        name: random_video(*shape, seed=index)
        for index, (name, shape) in enumerate(VIDEO_SHAPES.items())
    }
    for name, video in videos.items():
        np.save(work / f"{name}.npy", video)
    (work / "load_export.py").write_text(LOAD_IN_FRESH_PROCESS)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, "load_export.py", str(export_dir), *videos],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = {
        name: {
            path.name[len(name) + 1 : -len(".npy")]: np.load(path)
            for path in work.glob(f"{name}_*.npy")
        }
        for name in videos
    }
    return videos, outputs, json.loads((work / "report.json").read_text())


@pytest.mark.slow
def test_fresh_process_matches_keras_on_non_square_video(joint, fresh_process):
    model, _, _ = joint
    videos, outputs, report = fresh_process
    assert report["signatures"] == sorted(
        ["serving_default", "predict_frames", "motion_features", "labels", "metadata"]
    )
    loaded = outputs["landscape"]
    expected = keras_reference(model, reference_frames(videos["landscape"]))

    np.testing.assert_allclose(loaded["probabilities"], expected["probabilities"], atol=1e-4)
    np.testing.assert_allclose(loaded["predicted_frames"], expected["predicted_frames"], atol=1e-4)
    np.testing.assert_allclose(loaded["filters"], expected["filters"], atol=1e-5)
    np.testing.assert_allclose(loaded["dmr"], expected["dmr"], atol=1e-4)
    np.testing.assert_allclose(loaded["ar_features"], expected["ar"], atol=1e-4)
    assert loaded["predicted_frames"].dtype == np.float32
    assert loaded["predicted_frames"].shape == (2, NUM_FRAMES, CROP, CROP, 3)
    assert 0 <= loaded["predicted_frames"].min() and loaded["predicted_frames"].max() <= 1

    # The tolerances are tight enough to see a crop one pixel off.
    shifted = keras_reference(model, reference_frames(videos["landscape"], row_shift=1))
    assert np.abs(shifted["probabilities"] - loaded["probabilities"]).max() > 1e-3
    assert np.abs(shifted["predicted_frames"] - loaded["predicted_frames"]).max() > 1e-2


@pytest.mark.slow
def test_labels_round_trip_and_top_k_labels_name_the_top_k(joint, fresh_process):
    _, export_dir, metadata = joint
    _, outputs, report = fresh_process
    assert report["labels_signature"] == report["labels_attribute"] == LABELS
    for name, loaded in outputs.items():
        probabilities = loaded["probabilities"]
        best_first = np.argsort(-probabilities, axis=-1)[:, :TOP_K]
        np.testing.assert_array_equal(loaded["top_k_indices"], best_first)
        assert loaded["top_k_indices"].dtype == np.int32
        np.testing.assert_allclose(
            loaded["top_k_probabilities"],
            np.take_along_axis(probabilities, best_first, axis=-1),
            atol=1e-7,
        )
        assert report["top_k_labels"][name] == [
            [LABELS[index] for index in row] for row in loaded["top_k_indices"]
        ]

    asset = json.loads((export_dir / "assets" / export.METADATA_FILE).read_text())
    assert json.loads(report["metadata"]) == asset == json.loads(json.dumps(metadata))
    assert {key: asset[key] for key in ("model_kind", "backbone", "label_names")} == {
        "model_kind": "joint",
        "backbone": "resnet10",
        "label_names": LABELS,
    }
    assert (asset["num_frames"], asset["short_side"], asset["crop_size"]) == (
        NUM_FRAMES,
        SHORT_SIDE,
        CROP,
    )


@pytest.mark.slow
def test_one_loaded_signature_takes_any_batch_and_frame_size(joint, fresh_process):
    model, _, _ = joint
    videos, outputs, _ = fresh_process
    for name, (batch, _, _) in VIDEO_SHAPES.items():
        loaded = outputs[name]
        assert loaded["probabilities"].shape == (batch, len(LABELS))
        assert loaded["predicted_frames"].shape == (batch, NUM_FRAMES, CROP, CROP, 3)
        assert loaded["top_k_indices"].shape == (batch, TOP_K)
        expected = keras_reference(model, reference_frames(videos[name]))
        np.testing.assert_allclose(loaded["probabilities"], expected["probabilities"], atol=1e-4)
        np.testing.assert_allclose(
            loaded["predicted_frames"], expected["predicted_frames"], atol=1e-4
        )


def test_classifier_export_has_ar_features_but_no_frame_prediction(tmp_path):
    model = tiny_model("classifier")
    export.export_saved_model(
        model, tmp_path / "export", short_side=SHORT_SIDE, crop_size=CROP, top_k=len(LABELS)
    )
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    assert sorted(loaded.signatures) == sorted(
        ["serving_default", "motion_features", "labels", "metadata"]
    )
    video = random_video(1, 64, 90)
    features = loaded.signatures["motion_features"](video=tf.constant(video))
    expected = keras_reference(model, reference_frames(video))
    assert set(features) == {"ar_features"}
    np.testing.assert_allclose(features["ar_features"], expected["ar"], atol=1e-4)
    scores = loaded.signatures["serving_default"](video=tf.constant(video))
    np.testing.assert_allclose(scores["probabilities"], expected["probabilities"], atol=1e-4)
    # Without label names the labels are the class indices.
    assert loaded.labels()["labels"].numpy().tolist() == [b"0", b"1", b"2", b"3", b"4"]
    assert json.loads(loaded.metadata()["metadata"].numpy())["model_kind"] == "classifier"


def test_pretrain_export_predicts_frames_and_does_not_classify(tmp_path):
    model = tiny_model("pretrain")
    metadata = export.export_saved_model(
        model, tmp_path / "export", short_side=SHORT_SIDE, crop_size=CROP
    )
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    assert sorted(loaded.signatures) == ["metadata", "predict_frames"]
    assert not hasattr(loaded, "labels")
    assert (metadata["model_kind"], metadata["num_classes"], metadata["label_names"]) == (
        "pretrain",
        None,
        None,
    )
    video = random_video(2, 90, 72)
    predicted = loaded.signatures["predict_frames"](video=tf.constant(video))
    expected = model(reference_frames(video), training=False)
    np.testing.assert_allclose(
        predicted["predicted_frames"], expected["predicted_frames"], atol=1e-4
    )
    np.testing.assert_allclose(predicted["filters"], expected["filters"], atol=1e-5)


@pytest.mark.parametrize(
    "kind, arguments, message",
    [
        ("classifier", {"label_names": LABELS[:3]}, "3 names but the model has 5 classes"),
        ("classifier", {"label_names": "walk"}, "not a single string"),
        ("classifier", {"top_k": 6}, "top_k must be an integer from 1 to the model's 5"),
        ("classifier", {"top_k": 0}, "top_k must be"),
        ("pretrain", {"label_names": LABELS}, "no classes"),
        ("pretrain", {"crop_size": 56}, "crop_size 56 must equal the model's input"),
        ("pretrain", {"short_side": 60}, r"data\.short_side must be >= data\.crop_size \(64\)"),
        ("pretrain", {"frame_stride": 0}, r"data\.frame_stride must be >= 1; got 0"),
    ],
)
def test_invalid_arguments_are_named_and_write_nothing(tmp_path, kind, arguments, message):
    arguments = {"short_side": SHORT_SIDE, "crop_size": CROP, **arguments}
    with pytest.raises(ValueError, match=message):
        export.export_saved_model(tiny_model(kind), tmp_path / "export", **arguments)
    assert list(tmp_path.iterdir()) == []


def test_a_model_that_is_not_dynamonet_is_refused(tmp_path):
    inputs = keras.Input((NUM_FRAMES, CROP, CROP, 3))
    model = keras.Model(inputs, {"logits": keras.layers.Dense(2)(inputs)})
    with pytest.raises(ValueError, match="needs a model built by build_dynamonet"):
        export.export_saved_model(model, tmp_path / "export", short_side=SHORT_SIDE, crop_size=CROP)


def earlier_export(export_dir):
    """A stand-in for an earlier export in ``export_dir``: its marker (overwrite replaces only
    a folder holding one, dynamonet_tf/ownership.py) and a file ``old.txt``."""
    (export_dir / "assets").mkdir(parents=True)
    (export_dir / "assets" / export.METADATA_FILE).write_text("{}")
    (export_dir / "old.txt").write_text("an earlier export")
    return export_dir


def test_existing_export_is_replaced_only_with_overwrite(tmp_path):
    model = tiny_model("pretrain")
    export_dir = earlier_export(tmp_path / "export")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export.export_saved_model(model, export_dir, short_side=SHORT_SIDE, crop_size=CROP)
    assert sorted(path.name for path in export_dir.iterdir()) == ["assets", "old.txt"]

    export.export_saved_model(
        model, export_dir, short_side=SHORT_SIDE, crop_size=CROP, overwrite=True
    )
    assert sorted(path.name for path in export_dir.iterdir()) == [
        "assets",
        "fingerprint.pb",
        "saved_model.pb",
        "variables",
    ]
    assert [path.name for path in tmp_path.iterdir()] == ["export"]


def test_failed_export_leaves_nothing_half_written(tmp_path, monkeypatch):
    model = tiny_model("pretrain")
    export_dir = tmp_path / "export"

    def save_until_the_disk_fills(module, directory, signatures):
        with open(os.path.join(directory, "saved_model.pb"), "w") as file:
            file.write("half a SavedModel")
        raise OSError("No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", save_until_the_disk_fills)
    with pytest.raises(OSError, match="No space left"):
        export.export_saved_model(model, export_dir, short_side=SHORT_SIDE, crop_size=CROP)
    assert list(tmp_path.iterdir()) == []

    # Overwriting an earlier export that way keeps the earlier export.
    earlier_export(export_dir)
    with pytest.raises(OSError, match="No space left"):
        export.export_saved_model(
            model, export_dir, short_side=SHORT_SIDE, crop_size=CROP, overwrite=True
        )
    assert [path.name for path in tmp_path.iterdir()] == ["export"]
    assert sorted(path.name for path in export_dir.iterdir()) == ["assets", "old.txt"]


def test_failed_final_rename_keeps_the_earlier_export(tmp_path, monkeypatch):
    export_dir = earlier_export(tmp_path / "export")
    rename = os.rename

    def rename_failing_for_the_new_export(source, destination):
        if ".partial-" in os.fspath(source):
            raise OSError("Device or resource busy")
        rename(source, destination)

    monkeypatch.setattr(os, "rename", rename_failing_for_the_new_export)
    with pytest.raises(OSError, match="busy"):
        export.export_saved_model(
            tiny_model("pretrain"),
            export_dir,
            short_side=SHORT_SIDE,
            crop_size=CROP,
            overwrite=True,
        )
    assert [path.name for path in tmp_path.iterdir()] == ["export"]
    assert sorted(path.name for path in export_dir.iterdir()) == ["assets", "old.txt"]


def test_a_strided_run_exports_its_stride_and_serves_the_strided_clip(tmp_path):
    """A run trained on every 2nd frame: export.py records the stride, the signatures take the
    clip's 2 T frames at the native rate and serve what the Keras model makes of frames
    0, 2, 4, ... of them, not of the first T consecutive frames."""
    config = tiny_config(tmp_path / "no_data", "joint", "data.frame_stride=2")
    model = build_model(config)
    layer = model.get_layer("logits")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel * 10, bias])  # sharper logits, as in tiny_model
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / RUN_CONFIG).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), model_dir / "checkpoints", max_to_keep=1
    ).save()
    out = tmp_path / "export"
    export_cli.main(["--model-dir", str(model_dir), "--out", str(out)])

    num_frames, side = config.data.num_frames, config.data.crop_size  # 8 frames of 32 x 32
    metadata = json.loads((out / "assets" / export.METADATA_FILE).read_text())
    assert metadata["frame_stride"] == 2 and metadata["num_frames"] == num_frames
    assert metadata["input"]["shape"] == [None, 2 * num_frames, None, None, 3]
    loaded = tf.saved_model.load(str(out))
    # At the short side already, 40 wide: the centre crop is columns 4..35.
    video = np.random.default_rng(5).integers(
        0, 256, (2, 2 * num_frames, side, 40, 3), dtype=np.uint8
    )
    served = loaded.signatures["serving_default"](video=tf.constant(video))
    frames = loaded.signatures["predict_frames"](video=tf.constant(video))

    def keras_outputs(clips):
        outputs = model(clips[:, :, :, 4:36].astype(np.float32) / 255, training=False)
        return tf.nn.softmax(outputs["logits"]).numpy(), outputs["predicted_frames"].numpy()

    probabilities, predicted = keras_outputs(video[:, ::2])
    np.testing.assert_allclose(served["probabilities"], probabilities, atol=1e-5)
    np.testing.assert_allclose(frames["predicted_frames"], predicted, atol=1e-5)
    consecutive, _ = keras_outputs(video[:, :num_frames])
    assert np.abs(consecutive - served["probabilities"].numpy()).max() > 1e-3  # the test can tell
    # T consecutive frames are not a clip of this export.
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="must hold 16 frames at the native rate"
    ):
        loaded.signatures["serving_default"](video=tf.constant(video[:, :num_frames]))
