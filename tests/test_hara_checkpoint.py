"""Hara et al.'s PyTorch checkpoints in our backbones (dynamonet_tf/models/hara.py).

The fixtures in tests/fixtures/hara/ were written by PyTorch (tests/fixtures/make_hara_fixtures.py
says how): checkpoints of a faithful PyTorch build of Hara's networks with random weights and
random BatchNorm statistics, in both file formats, and the layer4 features those networks
computed in eval mode on a fixed clip. No PyTorch is needed here.

Equivalence is measured as the largest absolute difference over all layer4 features divided
by the largest absolute PyTorch feature, ``max |ours - torch| / max |torch|`` (an elementwise
ratio is undefined at the ReLU's exact zeros); it must be at most 1e-4.
"""

import collections
import io
import lzma
import os
import pickle
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from dynamonet_tf.cli import convert_hara
from dynamonet_tf.models import (
    HaraCheckpointError,
    build_backbone,
    build_dynamonet,
    hara_architecture,
    is_torch_checkpoint,
    load_hara_checkpoint,
    read_hara_state_dict,
)
from dynamonet_tf.models.hara import (
    LEGACY_MAGIC_NUMBER,
    LEGACY_PROTOCOL_VERSION,
    _backbone_targets,
    hara_layout,
    read_torch_file,
)
from dynamonet_tf.names import BACKBONES

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hara"
TOLERANCE = 1e-4
CLIP_SHAPE = (8, 64, 32, 3)

# Each fixture network: its file and the options of our backbone that match it.
RESNET18_A = dict(backbone="resnet18", width_multiplier=1 / 32)
RESNEXT101_B = dict(backbone="resnext101", width_multiplier=1 / 4)
RESNET10_2020 = dict(
    backbone="resnet10",
    shortcut_type="B",
    width_multiplier=1 / 32,
    conv1_t_size=3,
    conv1_t_stride=2,
    no_max_pool=True,
)


def relative_error(ours, reference):
    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(FIXTURES / "expected.npz"))


@pytest.fixture(scope="module")
def clip(expected):
    return expected["clip"].astype(np.float32) / 127.5 - 1.0


@pytest.fixture(scope="module")
def resnext101_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("hara") / "resnext101_b_legacy.pth"
    path.write_bytes(lzma.decompress((FIXTURES / "resnext101_b_legacy.pth.xz").read_bytes()))
    return path


def backbone(options, input_shape=CLIP_SHAPE):
    options = dict(options)
    return build_backbone(options.pop("backbone"), input_shape=input_shape, **options)


# --- Reading both file formats ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["tensors.pth", "tensors_legacy.pth"])
def test_every_dtype_offset_and_stride_read_as_pytorch_wrote_them(name):
    expected = np.load(FIXTURES / "tensors.npz")
    state = read_torch_file(FIXTURES / name)["state_dict"]
    assert list(state) == list(expected.files)
    for key, value in state.items():
        want = expected[key]
        assert isinstance(value, np.ndarray), key
        assert value.dtype == want.dtype, key  # bfloat16 widened to float32
        assert value.shape == want.shape, key
        np.testing.assert_array_equal(value, want, err_msg=key)
        assert value.flags.writeable and value.flags.c_contiguous, key


def test_gpu_saved_legacy_file_of_old_torch_reads_the_same(tmp_path):
    """The CVPR 2018 files were saved from GPUs by torch 0.3: their pickles name torch.cuda's
    storage types and torch._utils._rebuild_tensor. The same file with those names reads the
    same."""
    data = (FIXTURES / "tensors_legacy.pth").read_bytes()
    for old, new in [
        (b"ctorch\nFloatStorage\n", b"ctorch.cuda\nFloatStorage\n"),
        (b"ctorch\nHalfStorage\n", b"ctorch.cuda\nHalfStorage\n"),
        (b"ctorch._utils\n_rebuild_tensor_v2\n", b"ctorch._utils\n_rebuild_tensor\n"),
    ]:
        assert data.count(old) == 1
        data = data.replace(old, new)
    path = tmp_path / "gpu.pth"
    path.write_bytes(data)
    expected = np.load(FIXTURES / "tensors.npz")
    for key, value in read_torch_file(path)["state_dict"].items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)
        assert value.dtype == expected[key].dtype


def test_files_are_recognised_by_their_first_bytes(tmp_path, resnext101_file):
    for name in ["resnet18_a.pth", "resnet10_2020.pth", "resnet10_2020_bare.pth"]:
        assert is_torch_checkpoint(FIXTURES / name)
    assert is_torch_checkpoint(resnext101_file)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    assert not is_torch_checkpoint(text)
    assert not is_torch_checkpoint(FIXTURES / "tensors.npz")  # a zip, without data.pkl
    assert not is_torch_checkpoint(FIXTURES / "resnext101_b_legacy.pth.xz")
    assert not is_torch_checkpoint(tmp_path / "missing.pth")


def test_state_dict_with_prefix_and_optimizer_equals_the_bare_one():
    prefixed = read_hara_state_dict(FIXTURES / "resnet10_2020.pth")  # legacy, module.
    bare = read_hara_state_dict(FIXTURES / "resnet10_2020_bare.pth")  # zip, no dict around
    assert list(prefixed) == list(bare)
    assert not [name for name in bare if name.startswith("module.")]
    assert not [name for name in bare if "num_batches_tracked" in name]
    for name in bare:
        np.testing.assert_array_equal(prefixed[name], bare[name])
    assert bare["conv1.weight"].dtype == np.float32
    assert bare["conv1.weight"].shape == (2, 3, 3, 7, 7)
    # The optimizer's momentum buffers are in the file too, as tensors outside the state dict.
    whole = read_torch_file(FIXTURES / "resnet10_2020.pth")
    assert whole["arch"] == "resnet-10" and whole["epoch"] == 200
    assert whole["optimizer"]["state"], "the fixture's optimizer holds momentum buffers"
    assert isinstance(whole["scheduler"]["milestones"], collections.Counter)


def test_architecture_is_read_from_the_tensors(resnext101_file):
    assert hara_architecture(read_hara_state_dict(FIXTURES / "resnet18_a.pth")) == {
        "backbone": "resnet18",
        "options": dict(shortcut_type="A", width_multiplier=1 / 32, conv1_t_size=7),
        "input_channels": 3,
        "num_classes": 10,
    }
    assert hara_architecture(read_hara_state_dict(resnext101_file)) == {
        "backbone": "resnext101",
        "options": dict(shortcut_type="B", width_multiplier=0.25, conv1_t_size=7, cardinality=32),
        "input_channels": 3,
        "num_classes": 10,
    }
    architecture = hara_architecture(read_hara_state_dict(FIXTURES / "resnet10_2020.pth"))
    assert architecture["backbone"] == "resnet10"
    assert architecture["options"] == dict(
        shortcut_type="B", width_multiplier=1 / 32, conv1_t_size=3
    )


@pytest.mark.parametrize(
    "name, shortcut, options",
    [
        ("resnet10", "A", {}),
        ("resnet34", "B", {}),
        ("resnet50", "B", {}),
        ("resnet50", "A", {}),
        ("resnet101", "B", {}),
        ("resnet152", "B", {}),
        ("resnext50", "B", {}),
        ("resnext101", "B", {}),
        ("resnext152", "B", {}),
        ("resnet18", "A", dict(width_multiplier=1.5)),  # the 2020 code's widen factor
        ("resnext101", "B", dict(cardinality=16)),
    ],
)
def test_architecture_of_every_full_size_network(name, shortcut, options):
    """Hara's full-size tensor shapes (hara_layout) read back as the network they came from."""
    shapes = hara_layout(name, shortcut_type=shortcut, **options)
    architecture = hara_architecture(shapes)
    assert architecture["backbone"] == name
    assert architecture["options"]["shortcut_type"] == shortcut
    assert architecture["options"]["width_multiplier"] == options.get("width_multiplier", 1.0)
    if name.startswith("resnext"):
        assert architecture["options"]["cardinality"] == options.get("cardinality", 32)


def test_full_size_resnext101_layout_has_hara_parameter_count():
    # 47,521,216: Hara's ResNeXt-101 backbone without fc (tests/test_backbones.py).
    shapes = hara_layout("resnext101", shortcut_type="B")
    trainable = sum(
        int(np.prod(shape))
        for name, shape in shapes.items()
        if name.endswith(".weight") or name.endswith(".bias")
    )
    assert trainable == 47_521_216
    assert (
        sum(1 for name in shapes if name.startswith("layer3.") and name.endswith("conv2.weight"))
        == 23
    )
    assert shapes["layer3.0.conv2.weight"] == (512, 16, 3, 3, 3)  # 32 groups of 16 channels


@pytest.mark.parametrize("name", [n for n in BACKBONES if not n.startswith("stc_")])
def test_our_backbones_have_hara_layout(name):
    """Every variable of our backbones has the Hara tensor hara_layout names, in its shape."""
    model = build_backbone(name, input_shape=(4, 32, 32, 3), width_multiplier=0.25)
    targets, others = _backbone_targets(model)
    assert others == []
    assert {key: shape for key, (_, shape) in targets.items()} == hara_layout(
        name, width_multiplier=0.25
    )


# --- Equal outputs ----------------------------------------------------------------------------


def test_resnet18_shortcut_a_zip_gives_pytorch_features(expected, clip):
    model = backbone(RESNET18_A)
    report = load_hara_checkpoint(model, FIXTURES / "resnet18_a.pth")
    features = model.predict(clip, verbose=0)
    assert features.shape == expected["resnet18_a/layer4"].shape == (2, 1, 2, 1, 16)
    assert relative_error(features, expected["resnet18_a/layer4"]) <= TOLERANCE
    assert relative_error(features, expected["resnet18_a/layer4_float64"]) <= TOLERANCE
    assert report.new == [] and report.mismatched == []
    assert report.unused == ["fc.weight", "fc.bias"]
    assert len(report.loaded) == len([layer for layer in model.layers if layer.weights])


def test_resnext101_grouped_shortcut_b_legacy_gives_pytorch_features(
    expected, clip, resnext101_file
):
    model = backbone(RESNEXT101_B)
    report = load_hara_checkpoint(model, resnext101_file)
    features = model.predict(clip, verbose=0)
    assert features.shape == (2, 1, 2, 1, 512)
    assert relative_error(features, expected["resnext101_b/layer4"]) <= TOLERANCE
    assert relative_error(features, expected["resnext101_b/layer4_float64"]) <= TOLERANCE
    assert model.get_layer("layer3_block22_conv2").groups == 32
    assert report.unused == ["fc.weight", "fc.bias"]


def test_2020_stem_options_give_pytorch_features(expected, clip):
    """conv1_t_size=3, conv1_t_stride=2, no_max_pool: a legacy DataParallel file with the
    optimizer's state."""
    model = backbone(RESNET10_2020)
    load_hara_checkpoint(model, FIXTURES / "resnet10_2020.pth")
    features = model.predict(clip, verbose=0)
    assert features.shape == (2, 1, 4, 2, 16)
    assert relative_error(features, expected["resnet10_2020/layer4"]) <= TOLERANCE


def test_dynamonet_backbone_loaded_heads_new(expected, clip):
    model = build_dynamonet(
        "joint", **RESNET18_A, input_shape=CLIP_SHAPE, num_classes=5, initial_centre_weight=None
    )
    report = load_hara_checkpoint(model, FIXTURES / "resnet18_a.pth")
    assert report.loaded and all(name.startswith("backbone/") for name in report.loaded)
    assert "backbone/layer4_block1_conv2" in report.loaded
    assert {"logits", "dmr", "ar_fc", "fp_filter_fc", "fp_conv1", "ar_bn2"} <= set(report.new)
    assert not [name for name in report.new if name.startswith("backbone/")]
    assert report.unused == ["fc.weight", "fc.bias"]
    features = model.get_layer("backbone").predict(clip, verbose=0)
    assert relative_error(features, expected["resnet18_a/layer4"]) <= TOLERANCE


def test_stc_backbone_takes_the_plain_weights_its_stc_blocks_new():
    model = backbone(dict(RESNET18_A, backbone="stc_resnet18"))
    report = load_hara_checkpoint(model, FIXTURES / "resnet18_a.pth")
    assert report.new and all(name.endswith("_stc") for name in report.new)
    assert len(report.new) == 8  # one per block
    assert "layer1_block0_conv1" in report.loaded


def pooled_classifier(options, classes=10):
    features = backbone(options)
    clips = keras.Input(CLIP_SHAPE)
    pooled = keras.layers.GlobalAveragePooling3D(name="avgpool")(features(clips))
    logits = keras.layers.Dense(classes, name="fc")(keras.layers.Dropout(0.5)(pooled))
    return keras.Model(clips, logits)


def test_classifier_loaded_when_asked(expected, clip):
    model = pooled_classifier(RESNET18_A)
    report = load_hara_checkpoint(model, FIXTURES / "resnet18_a.pth", load_classifier=True)
    assert "fc" in report.loaded and report.unused == []
    logits = model.predict(clip, verbose=0)
    assert relative_error(logits, expected["resnet18_a/logits"]) <= TOLERANCE


def test_classifier_of_another_size_or_kind_is_refused():
    with pytest.raises(HaraCheckpointError, match=r"fc\.weight \(10, 16\).*\(16, 7\)"):
        load_hara_checkpoint(
            pooled_classifier(RESNET18_A, classes=7),
            FIXTURES / "resnet18_a.pth",
            load_classifier=True,
        )
    dynamonet = build_dynamonet("classifier", **RESNET18_A, input_shape=CLIP_SHAPE, num_classes=10)
    with pytest.raises(HaraCheckpointError, match="logits reads") as error:
        load_hara_checkpoint(dynamonet, FIXTURES / "resnet18_a.pth", load_classifier=True)
    assert "\n" not in str(error.value)
    with pytest.raises(HaraCheckpointError, match="no Dense layer"):
        load_hara_checkpoint(
            backbone(RESNET18_A), FIXTURES / "resnet18_a.pth", load_classifier=True
        )


# --- Refusals ---------------------------------------------------------------------------------


def test_architecture_mismatch_names_the_first_tensor_and_loads_nothing():
    model = backbone(dict(RESNET18_A, backbone="resnet34"))
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(HaraCheckpointError) as error:
        load_hara_checkpoint(model, FIXTURES / "resnet18_a.pth")
    message = str(error.value)
    assert "\n" not in message
    assert "does not fit backbone resnet34" in message
    assert (
        "layer1.2.conv1.weight is missing from the file (expected shape (2, 2, 3, 3, 3))" in message
    )
    assert "the file holds resnet18 (shortcut_type='A'" in message
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


@pytest.mark.parametrize(
    "options, first",
    [
        (
            dict(RESNET18_A, width_multiplier=1 / 16),
            "conv1.weight is (2, 3, 7, 7, 7) in the file, (4, 3, 7, 7, 7) expected",
        ),
        (
            dict(RESNET18_A, shortcut_type="B"),
            "layer2.0.downsample.0.weight is missing from the file",
        ),
        (
            dict(RESNET18_A, conv1_t_size=3),
            "conv1.weight is (2, 3, 7, 7, 7) in the file, (2, 3, 3, 7, 7) expected",
        ),
        (
            dict(RESNET18_A, backbone="resnet50"),
            "layer1.0.conv1.weight is (2, 2, 3, 3, 3) in the file, (2, 2, 1, 1, 1) expected",
        ),
    ],
)
def test_other_mismatches_name_the_first_tensor(options, first):
    with pytest.raises(HaraCheckpointError, match="does not fit") as error:
        load_hara_checkpoint(backbone(options), FIXTURES / "resnet18_a.pth")
    assert first in str(error.value)


def test_resnext_file_into_resnet_is_refused(resnext101_file):
    with pytest.raises(HaraCheckpointError, match="the file holds resnext101"):
        load_hara_checkpoint(backbone(dict(RESNEXT101_B, backbone="resnet101")), resnext101_file)


def test_networks_we_do_not_build_are_refused():
    # The 2020 code's ResNeXt starts with 128 filters; ours (and the CVPR 2018 one's) with 64.
    shapes = hara_layout("resnext50")
    shapes = {name: shape for name, shape in shapes.items() if not name.startswith("bn1.")}
    shapes["conv1.weight"] = (128, 3, 7, 7, 7)
    shapes.update({f"bn1.{t}": (128,) for t in ("weight", "bias", "running_mean", "running_var")})
    with pytest.raises(HaraCheckpointError, match=r"closest to resnext50 .*conv1\.weight is \(128"):
        hara_architecture(shapes)
    # ResNet-200 (3, 24, 36, 3), R(2+1)D's factorised conv1, a Wide ResNet's expansion.
    deep = {k: v for k, v in hara_layout("resnet152").items()}
    deep.update({f"layer2.{i}.conv1.weight": (128, 512, 1, 1, 1) for i in range(8, 24)})
    with pytest.raises(HaraCheckpointError, match=r"\(3, 24, 36, 3\) per stage"):
        hara_architecture(deep)
    with pytest.raises(HaraCheckpointError, match="conv1_s.weight is not a tensor"):
        hara_architecture({"conv1_s.weight": (45, 3, 1, 7, 7), **hara_layout("resnet18")})
    wide = hara_layout("resnet50")
    wide["layer1.0.conv3.weight"] = (128, 64, 1, 1, 1)
    with pytest.raises(HaraCheckpointError, match="no counterpart|does not build"):
        hara_architecture(wide)


class RunsCommand:
    """Pickles as a call of os.system: what a malicious checkpoint holds."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def malicious_payloads(marker):
    evil = RunsCommand(f"touch {marker}")
    return [evil, {"state_dict": collections.OrderedDict(conv1=evil)}]


@pytest.mark.parametrize("payload", [0, 1])
def test_refused_global_in_zip_format_runs_nothing(tmp_path, payload):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps(malicious_payloads(marker)[payload], 2))
        archive.writestr("evil/version", "3\n")
    assert is_torch_checkpoint(path)
    with pytest.raises(HaraCheckpointError) as error:
        read_hara_state_dict(path)
    message = str(error.value)
    assert f"{path}: refused to unpickle the global {os.system.__module__}.system" in message
    assert "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize("payload", [0, 1])
def test_refused_global_in_legacy_format_runs_nothing(tmp_path, payload):
    marker = tmp_path / "executed"
    path = tmp_path / "evil_legacy.pth"
    with open(path, "wb") as f:
        for header in (
            LEGACY_MAGIC_NUMBER,
            LEGACY_PROTOCOL_VERSION,
            dict(protocol_version=LEGACY_PROTOCOL_VERSION, little_endian=True),
        ):
            pickle.dump(header, f, 2)
        pickle.dump(malicious_payloads(marker)[payload], f, 2)
        pickle.dump([], f, 2)
    with pytest.raises(HaraCheckpointError, match=r"refused to unpickle the global \w+\.system"):
        load_hara_checkpoint(backbone(RESNET18_A), path)
    assert not marker.exists()


def test_a_pickle_that_is_no_checkpoint_is_not_unpickled(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(RunsCommand(f"touch {marker}")))
    assert not is_torch_checkpoint(path)
    with pytest.raises(HaraCheckpointError, match="is not a PyTorch checkpoint"):
        read_hara_state_dict(path)
    assert not marker.exists()


def test_missing_damaged_and_foreign_files_are_one_line_errors(tmp_path):
    with pytest.raises(HaraCheckpointError, match="missing.pth: no such file"):
        read_hara_state_dict(tmp_path / "missing.pth")
    with pytest.raises(HaraCheckpointError, match="is not a PyTorch checkpoint"):
        read_hara_state_dict(FIXTURES / "tensors.npz")
    truncated = tmp_path / "truncated.pth"
    data = (FIXTURES / "resnet10_2020.pth").read_bytes()
    truncated.write_bytes(data[: len(data) - 1000])
    with pytest.raises(HaraCheckpointError, match="damaged PyTorch checkpoint") as error:
        read_hara_state_dict(truncated)
    assert "\n" not in str(error.value)
    no_state = tmp_path / "list.pth"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("list/data.pkl", pickle.dumps([1, 2], 2))
    no_state.write_bytes(buffer.getvalue())
    with pytest.raises(HaraCheckpointError, match="neither a state dict"):
        read_hara_state_dict(no_state)


# --- The converter ----------------------------------------------------------------------------


def test_converter_writes_backbone_weights(tmp_path, expected, clip, capsys):
    out = tmp_path / "resnet18.weights.h5"
    argv = ["--checkpoint", str(FIXTURES / "resnet18_a.pth"), "--backbone", "resnet18"]
    argv += ["--out", str(out)]
    convert_hara.main(argv)
    printed = capsys.readouterr().out
    assert "width_multiplier=0.03125" in printed and str(out) in printed
    model = backbone(RESNET18_A)
    model.load_weights(out)
    assert (
        relative_error(model.predict(clip, verbose=0), expected["resnet18_a/layer4"]) <= TOLERANCE
    )
    assert not list(tmp_path.glob("*.tmp-*")) and not list(tmp_path.glob(".*"))
    with pytest.raises(SystemExit, match="^error: .*exists.*--overwrite"):
        convert_hara.main(argv)
    out.write_bytes(b"not weights")
    convert_hara.main([*argv, "--overwrite"])
    model.load_weights(out)  # replaced by the converted weights


def test_converter_refuses_another_backbone_in_one_line(tmp_path):
    out = tmp_path / "resnet34.weights.h5"
    with pytest.raises(SystemExit) as error:
        convert_hara.main(
            [
                "--checkpoint",
                str(FIXTURES / "resnet18_a.pth"),
                "--backbone",
                "resnet34",
                "--out",
                str(out),
            ]
        )
    message = str(error.value)
    assert message.startswith("error: ") and "\n" not in message
    assert "resnet18" in message and "resnet34" in message
    assert not out.exists()
    with pytest.raises(SystemExit, match="^error: .*no such file"):
        convert_hara.main(["--checkpoint", str(tmp_path / "none.pth"), "--backbone", "resnet18"])
