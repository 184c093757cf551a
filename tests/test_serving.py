"""The export loads where TensorFlow Serving loads it, not only in ``tf.saved_model.load``.

TensorFlow Serving's C++ SavedModel loader, ``saved_model_cli run`` and the TF1 loader
(``tf.compat.v1.saved_model.loader.load``) run the graph of the SavedModel as written: they
restore the variables by name through the restore op of its ``saver_def``, then feed and
fetch the signatures' tensors by name. The model server itself cannot be installed here
(neither PyPI nor Debian has it); these tests take its loader path with the two tools
TensorFlow ships.

``saved_model_cli run`` refuses a signature without inputs (it wants one of ``--inputs``,
``--input_exprs``, ``--input_examples``, and any key given is not an input of ``labels`` or
``metadata``), so those two are run through the TF1 loader only.
"""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dynamonet_tf import export
from test_export import CROP, LABELS, SHORT_SIDE, TOP_K, random_video, tiny_model

# The signatures of each kind that take ``video``: each is run with saved_model_cli.
VIDEO_SIGNATURES = {
    "joint": ["motion_features", "predict_frames", "serving_default"],
    "pretrain": ["predict_frames"],
}
# Served and loaded in Python, in the same process or in saved_model_cli's: float32 outputs
# may differ by the rounding of the ops, nothing more.
ATOL = 1e-5


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """For each kind, ``(model, version_dir, clip_path)``: a tiny model, its export into the
    numbered version folder ``<base>/1`` that TensorFlow Serving's ``--model_base_path``
    expects, and a non-square uint8 clip saved as ``.npy``."""
    work = tmp_path_factory.mktemp("serving")
    clip = random_video(2, 80, 100, seed=3)
    clip_path = work / "clip.npy"
    np.save(clip_path, clip)
    result = {}
    for kind in VIDEO_SIGNATURES:
        keras.utils.set_random_seed(1)
        model = tiny_model(kind)
        version_dir = work / kind / "dynamonet" / "1"
        export.export_saved_model(
            model,
            version_dir,
            label_names=None if kind == "pretrain" else LABELS,
            short_side=SHORT_SIDE,
            crop_size=CROP,
            top_k=TOP_K,
        )
        result[kind] = model, version_dir, clip_path
    return result


@pytest.fixture(scope="module")
def python_outputs(exports):
    """For each kind, the outputs of every signature taking ``video`` on the clip, by signature
    name, with the export loaded by ``tf.saved_model.load``: what the other loaders must give."""
    result = {}
    for kind, (_, export_dir, clip_path) in exports.items():
        loaded = tf.saved_model.load(str(export_dir))
        video = tf.constant(np.load(clip_path))
        result[kind] = {
            name: {
                key: value.numpy() for key, value in loaded.signatures[name](video=video).items()
            }
            for name in VIDEO_SIGNATURES[kind]
        }
    return result


def assert_same_outputs(actual, expected, where):
    assert sorted(actual) == sorted(expected), where
    for name, value in expected.items():
        value = np.asarray(value)
        got = np.asarray(actual[name])
        assert got.shape == value.shape, (where, name)
        if value.dtype.kind == "f":
            assert got.dtype == value.dtype, (where, name)
            np.testing.assert_allclose(got, value, rtol=0, atol=ATOL, err_msg=f"{where}: {name}")
        else:  # indices and label names: equal
            np.testing.assert_array_equal(got, value, err_msg=f"{where}: {name}")


def saved_model_cli():
    """The ``saved_model_cli`` installed with this interpreter's TensorFlow."""
    script = Path(sys.executable).parent / "saved_model_cli"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, signature",
    [
        (kind, signature)
        for kind, signatures in VIDEO_SIGNATURES.items()
        for signature in signatures
    ],
)
def test_saved_model_cli_run_gives_the_numbers_of_tf_saved_model_load(
    exports, python_outputs, tmp_path, kind, signature
):
    _, export_dir, clip_path = exports[kind]
    outdir = tmp_path / "outputs"
    result = subprocess.run(
        [
            *saved_model_cli(),
            "run",
            "--dir",
            str(export_dir),
            "--tag_set",
            "serve",
            "--signature_def",
            signature,
            "--inputs",
            f"video={clip_path}",
            "--outdir",
            str(outdir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # One .npy per output; the label names are an object array of bytes (our own file).
    served = {path.stem: np.load(path, allow_pickle=True) for path in outdir.glob("*.npy")}
    expected = python_outputs[kind][signature]
    assert_same_outputs(served, expected, f"saved_model_cli {kind} {signature}")
    if signature == "serving_default":
        assert served["top_k_labels"].shape == (2, TOP_K)
        assert set(served["top_k_labels"].ravel()) <= {label.encode() for label in LABELS}


def load_in_tf1_session(export_dir):
    """Loads the export as TensorFlow Serving does (restore op, then the init op) in a graph
    mode session; returns ``(session, meta_graph)``. The caller closes the session."""
    session = tf.compat.v1.Session(graph=tf.Graph())
    with session.graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))
    return session, meta_graph


@pytest.mark.parametrize("kind", sorted(VIDEO_SIGNATURES))
def test_tf1_session_loads_the_version_folder_and_runs_every_signature_by_tensor_name(
    exports, python_outputs, kind
):
    _, export_dir, clip_path = exports[kind]
    assert (export_dir.parent / "1" / "saved_model.pb").is_file()
    assert [path.name for path in export_dir.parent.iterdir()] == ["1"]  # no staging left
    clip = np.load(clip_path)
    session, meta_graph = load_in_tf1_session(export_dir)
    with session:
        signatures = {
            name: definition
            for name, definition in meta_graph.signature_def.items()
            if not name.startswith("__")  # __saved_model_init_op
        }
        outputs = {}
        for name, definition in signatures.items():
            feed = {definition.inputs["video"].name: clip} if definition.inputs else {}
            fetches = {key: info.name for key, info in definition.outputs.items()}
            outputs[name] = session.run(fetches, feed)

    # A pretrain export has no serving_default: nothing answers it with frames.
    assert sorted(signatures) == sorted(export._KIND_SIGNATURES[kind])
    assert sorted(name for name, sig in signatures.items() if sig.inputs) == VIDEO_SIGNATURES[kind]
    assert all(sorted(sig.inputs) in ([], ["video"]) for sig in signatures.values())
    asset = (export_dir / "assets" / export.METADATA_FILE).read_bytes()
    assert outputs.pop(export.METADATA) == {export.METADATA: asset}
    assert json.loads(asset)["model_kind"] == kind
    if kind != "pretrain":
        labels = outputs.pop(export.LABELS)[export.LABELS]
        assert labels.tolist() == [label.encode() for label in LABELS]
    assert sorted(outputs) == VIDEO_SIGNATURES[kind]
    for name, served in outputs.items():
        assert_same_outputs(served, python_outputs[kind][name], f"TF1 session {kind} {name}")


@pytest.mark.parametrize("kind", sorted(VIDEO_SIGNATURES))
def test_restore_op_restores_each_variable_once_under_its_keras_name(exports, kind):
    """Every variable of the loaded graph holds, under the Keras variable's path (``dmr/bias``),
    that variable's value after the TF1 restore alone; the checkpoint holds each once."""
    model, export_dir, _ = exports[kind]
    keras_values = {variable.path: variable.numpy() for variable in model.weights}
    session, _ = load_in_tf1_session(export_dir)
    with session:
        graph = session.graph
        handles = {op.name: op for op in graph.get_operations() if op.type == "VarHandleOp"}
        # The one string variable holds the metadata asset's path (the init op sets it).
        model_handles = {
            name: op for name, op in handles.items() if op.get_attr("dtype") != tf.string
        }
        assert sorted(model_handles) == sorted(keras_values)
        with graph.as_default():
            reads = {
                name: tf.raw_ops.ReadVariableOp(resource=op.outputs[0], dtype=op.get_attr("dtype"))
                for name, op in model_handles.items()
            }
        restored = session.run(reads)
    for name, value in keras_values.items():
        np.testing.assert_array_equal(restored[name], value, err_msg=name)
    saved = [
        name
        for name, _ in tf.train.list_variables(str(export_dir / "variables" / "variables"))
        if name.endswith("VARIABLE_VALUE")
    ]
    assert len(saved) == len(keras_values)
