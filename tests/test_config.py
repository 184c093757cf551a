"""Experiment configs: YAML presets, overrides, validation and the runtime/data checks."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from dynamonet_tf.config import (
    ConfigError,
    ExperimentConfig,
    check_against_data,
    check_against_runtime,
    learning_rate,
    load_config,
    save_config,
    to_dict,
)
from dynamonet_tf.data.datasets import DatasetIndex, VideoRecord
from dynamonet_tf.data.prepare import PrepareOptions, prepare
from dynamonet_tf.layout import MANIFEST
from videos import write_video


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Overrides conftest's Keras reset (0.2 s a test): these tests build no models."""
    yield


CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PRESETS = sorted(CONFIGS.glob("*.yaml"))


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_no_path_gives_the_dataclass_defaults():
    config = load_config()
    assert config == ExperimentConfig()
    assert config.model.backbone == "resnet18"
    assert config.train.stage == "pretrain" and config.train.batch_size == 64
    assert config.optimizer.weight_decay == 1e-4


def test_presets_are_all_there():
    expected = {
        "default",
        "pretrain_unlabeled",
        "joint_kinetics400",
        "finetune_ucf101",
        "finetune_hmdb51",
        "finetune_demo",
        "stc_resnext101_16f",
        "stc_resnext101_32f",
        "stc_resnext101_64f",
        "resnext101_16f",
        "resnext101_32f",
        "resnext101_64f",
    }
    assert {path.stem for path in PRESETS} == expected


@pytest.mark.parametrize("path", PRESETS, ids=lambda path: path.stem)
def test_every_preset_loads_has_a_header_and_round_trips(path, tmp_path):
    assert path.read_text().startswith("# "), "each preset says what it reproduces"
    config = load_config(path)
    save_config(config, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == config


def test_the_default_preset_is_a_tiny_cpu_demo_without_data_paths():
    config = load_config(CONFIGS / "default.yaml")
    assert config.model.width_multiplier <= 0.25 and config.model.backbone in (
        "resnet10",
        "resnet18",
    )
    assert (config.data.num_frames, config.data.crop_size, config.train.batch_size) == (8, 64, 8)
    assert config.train.stage == "pretrain"
    assert config.data.train_files is None and config.data.eval_files is None
    # The demo's labeled set is one override away.
    assert load_config(CONFIGS / "default.yaml", ["train.stage=joint"]).data.num_classes == 13


@pytest.mark.parametrize(
    "name, backbone, frames",
    [
        ("joint_kinetics400", "stc_resnext101", 16),
        ("stc_resnext101_16f", "stc_resnext101", 16),
        ("stc_resnext101_32f", "stc_resnext101", 32),
        ("stc_resnext101_64f", "stc_resnext101", 64),
        ("resnext101_16f", "resnext101", 16),
        ("resnext101_32f", "resnext101", 32),
        ("resnext101_64f", "resnext101", 64),
    ],
)
def test_kinetics_presets_follow_the_paper(name, backbone, frames):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert (config.model.backbone, config.data.num_frames) == (backbone, frames)
    assert (config.train.stage, config.data.num_classes, config.train.batch_size) == (
        "joint",
        400,
        64,
    )
    assert config.optimizer.schedule == "plateau" and learning_rate(config) == pytest.approx(0.1)
    assert (config.loss.alpha, config.loss.beta) == (0.1, 1.0)


@pytest.mark.parametrize("name, classes", [("finetune_ucf101", 101), ("finetune_hmdb51", 51)])
def test_finetune_presets(name, classes):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert (config.train.stage, config.data.num_classes) == ("finetune", classes)
    assert f"{name.removeprefix('finetune_')}_split1" in config.data.train_files
    assert learning_rate(config) == pytest.approx(0.01)


def test_pretrain_unlabeled_preset():
    config = load_config(CONFIGS / "pretrain_unlabeled.yaml")
    assert (config.train.stage, config.model.backbone) == ("pretrain", "stc_resnext101")
    assert (config.data.num_frames, config.train.batch_size) == (16, 64)
    assert config.data.num_classes is None


def test_overrides_apply_with_types_and_later_ones_win():
    config = load_config(
        CONFIGS / "default.yaml",
        [
            "train.batch_size=16",
            "optimizer.base_learning_rate=1",  # an int where a float is wanted
            "optimizer.weight_decay=5e-4",  # YAML 1.1 alone reads this as a string
            "model.shortcut_type=B",
            "model.shortcut_type=null",
            "train.jit_compile=true",
            "data.train_files=*.tfrecord",  # not YAML (an alias): taken as the string
            "model.initial_centre_weight=~",
        ],
    )
    assert config.train.batch_size == 16
    assert config.optimizer.base_learning_rate == 1.0
    assert type(config.optimizer.base_learning_rate) is float
    assert config.optimizer.weight_decay == 5e-4
    assert config.model.shortcut_type is None
    assert config.train.jit_compile is True
    assert config.data.train_files == "*.tfrecord"
    assert config.model.initial_centre_weight is None
    assert config.model.width_multiplier == 0.125  # from the file, untouched


def test_save_and_load_round_trip_a_modified_config(tmp_path):
    config = load_config(
        CONFIGS / "joint_kinetics400.yaml",
        [
            "model.shortcut_type=A",
            "optimizer.min_learning_rate=1e-7",
            "train.eval_steps=3",
            "data.eval_files=null",
            "optimizer.schedule=cosine",
            "optimizer.warmup_epochs=2.5",
        ],
    )
    save_config(config, tmp_path / "config.yaml")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == to_dict(config)
    assert load_config(tmp_path / "config.yaml") == config


def test_base_inheritance_chains_relative_to_each_file(tmp_path):
    write(
        tmp_path / "presets/root.yaml",
        "model: {backbone: resnet10, kernel_size: 3}\ntrain: {epochs: 3}\n",
    )
    write(
        tmp_path / "presets/middle.yaml",
        "base: root.yaml\nmodel: {kernel_size: 7}\ndata: {num_frames: 4}\n",
    )
    leaf = write(
        tmp_path / "leaf/leaf.yaml", "base: ../presets/middle.yaml\ndata: {num_frames: 2}\n"
    )
    config = load_config(leaf, ["train.epochs=4"])
    assert config.model.backbone == "resnet10"  # root
    assert config.model.kernel_size == 7  # middle over root
    assert config.data.num_frames == 2  # leaf over middle
    assert config.train.epochs == 4  # override over everything


def test_yaml_files_may_be_empty_or_hold_empty_sections(tmp_path):
    assert load_config(write(tmp_path / "empty.yaml", "# nothing\n")) == ExperimentConfig()
    assert load_config(write(tmp_path / "blank.yaml", "model:\ntrain:\n")) == ExperimentConfig()


def test_configs_are_frozen_and_replace_revalidates():
    config = load_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.batch_size = 2
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        dataclasses.replace(config.train, batch_size=0)
    with pytest.raises(ConfigError, match=r"data\.num_classes"):
        dataclasses.replace(config, train=dataclasses.replace(config.train, stage="finetune"))


@pytest.mark.parametrize(
    "overrides, match",
    [
        # unknown names, with the valid ones and a suggestion
        (
            ["model.backbon=resnet18"],
            (
                r"model\.backbon.*override.*Did you mean 'backbone'"
                r".*Valid keys of model: backbone, width_multiplier"
            ),
        ),
        (
            ["trian.epochs=3"],
            r"'trian'.*Did you mean 'train'.*Valid sections: model, data, optimizer, loss, train",
        ),
        # syntax
        (["train.epochs"], r"'train\.epochs'.*SECTION\.KEY=VALUE"),
        (["epochs=3"], r"'epochs=3'.*SECTION\.KEY=VALUE"),
        (["train.epochs.x=3"], r"SECTION\.KEY=VALUE"),
        # types
        (["train.batch_size=true"], r"train\.batch_size must be of type int; got True \(bool\)"),
        (["train.batch_size=8.0"], r"train\.batch_size must be of type int; got 8\.0 \(float\)"),
        (
            ["optimizer.base_learning_rate=true"],
            r"optimizer\.base_learning_rate must be of type float; got True \(bool\)",
        ),
        (
            ["model.width_multiplier=wide"],
            r"model\.width_multiplier must be of type float; got 'wide' \(str\)",
        ),
        (["model.no_max_pool=1"], r"model\.no_max_pool must be of type bool; got 1 \(int\)"),
        (["train.epochs=null"], r"train\.epochs must be of type int; got None"),
        (["model.backbone=18"], r"model\.backbone must be of type str; got 18 \(int\)"),
        (["optimizer.momentum=.nan"], r"optimizer\.momentum must be a finite number"),
        # choices
        (
            ["model.backbone=resnet19"],
            (
                r"Unknown backbone 'resnet19'; valid backbones: resnet10, "
                r".*stc_resnext152 \(model\.backbone\)\. Did you mean 'resnet18'"
            ),
        ),
        (
            ["train.stage=pre-train"],
            r"train\.stage must be one of 'pretrain', 'joint', 'finetune'; got 'pre-train'",
        ),
        (
            ["optimizer.schedule=step"],
            r"optimizer\.schedule must be one of 'plateau', 'cosine', 'constant'",
        ),
        (
            ["train.mixed_precision=float16"],
            r"train\.mixed_precision must be one of 'float32', 'mixed_float16', 'mixed_bfloat16'",
        ),
        (["model.shortcut_type=C"], r"model\.shortcut_type must be one of 'A', 'B'; got 'C'"),
        # ranges
        (["model.kernel_size=4"], r"model\.kernel_size must be odd and positive; got 4"),
        (["model.kernel_size=-1"], r"model\.kernel_size must be odd and positive; got -1"),
        (["data.num_frames=0"], r"data\.num_frames must be >= 1; got 0"),
        (["data.crop_size=160"], r"data\.short_side must be >= data\.crop_size \(160\); got 128"),
        (["train.batch_size=0"], r"train\.batch_size must be >= 1; got 0"),
        (["model.dropout_rate=1"], r"model\.dropout_rate must be in \[0, 1\); got 1\.0"),
        (["model.dropout_rate=-0.1"], r"model\.dropout_rate must be in \[0, 1\)"),
        (
            ["model.initial_centre_weight=1.5"],
            r"model\.initial_centre_weight must be in \(0, 1\) or null",
        ),
        (["model.width_multiplier=0"], r"model\.width_multiplier must be positive"),
        (["model.filter_grid=0"], r"model\.filter_grid must be >= 1; got 0"),
        (
            ["model.per_pixel_filters=1"],
            r"model\.per_pixel_filters must be of type bool; got 1 \(int\)",
        ),
        (["loss.huber_delta=0"], r"loss\.huber_delta must be positive"),
        (["optimizer.plateau_factor=1"], r"optimizer\.plateau_factor must be in \(0, 1\)"),
        (["train.eval_steps=0"], r"train\.eval_steps must be >= 1 or null"),
        # across keys and sections
        (["train.stage=joint"], r"data\.num_classes is required when train\.stage is 'joint'"),
        (
            ["train.stage=finetune"],
            r"data\.num_classes is required when train\.stage is 'finetune'",
        ),
        (
            ["train.stage=joint", "data.num_classes=1"],
            r"data\.num_classes must be >= 2 or null; got 1",
        ),
        (
            ["train.classifier_only=true"],
            r"train\.classifier_only must be false when train\.stage is 'pretrain'",
        ),
        (
            ["train.epochs=2", "optimizer.warmup_epochs=3"],
            r"optimizer\.warmup_epochs must be <= train\.epochs \(2\)",
        ),
    ],
)
def test_invalid_overrides_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=overrides)


@pytest.mark.parametrize(
    "text, match",
    [
        (
            "model:\n  kernel_sise: 3\n",
            r"model\.kernel_sise in .*bad\.yaml\. Did you mean 'kernel_size'",
        ),
        ("modle:\n  kernel_size: 3\n", r"'modle' in .*bad\.yaml\. Did you mean 'model'"),
        ("model: resnet18\n", r"Section 'model' in .*bad\.yaml must be a mapping"),
        ("- model\n", r"bad\.yaml must hold a mapping of sections"),
        ("model: {kernel_size: [3\n", r"bad\.yaml is not valid YAML"),
        ("base: 3\n", r"base in .*bad\.yaml must be a path"),
        ("base: missing.yaml\n", r"Cannot read config file .*missing\.yaml"),
        ("base: bad.yaml\n", r"base: chain of .*bad\.yaml is a cycle"),
        (
            "optimizer:\n  weight_decay: 1e-3\n  momentum: 2\n",
            r"optimizer\.momentum must be in \[0, 1\); got 2\.0",
        ),
    ],
)
def test_invalid_files_name_the_file_and_key(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path / "bad.yaml", text))


def test_errors_in_a_base_name_the_base_file(tmp_path):
    write(tmp_path / "parent.yaml", "train:\n  epoch: 3\n")
    child = write(tmp_path / "child.yaml", "base: parent.yaml\n")
    with pytest.raises(ConfigError, match=r"train\.epoch in .*parent\.yaml"):
        load_config(child)


def test_learning_rate_scales_linearly_with_the_global_batch():
    assert learning_rate(load_config()) == pytest.approx(0.1)
    assert learning_rate(load_config(overrides=["train.batch_size=8"])) == pytest.approx(0.0125)
    other_base = ["optimizer.base_learning_rate=0.2", "optimizer.base_batch_size=128"]
    assert learning_rate(
        load_config(overrides=other_base + ["train.batch_size=256"])
    ) == pytest.approx(0.4)
    finetune = ["train.stage=finetune", "data.num_classes=101", "train.batch_size=32"]
    assert learning_rate(load_config(overrides=finetune)) == pytest.approx(0.005)
    assert learning_rate(
        load_config(overrides=finetune + ["train.finetune_learning_rate_scale=0.5"])
    ) == pytest.approx(0.025)
    # Only the finetune stage is lowered.
    assert learning_rate(
        load_config(overrides=finetune[1:] + ["train.stage=joint"])
    ) == pytest.approx(0.05)


def test_check_against_runtime_needs_a_batch_divisible_by_the_replicas():
    config = load_config(overrides=["train.batch_size=12"])
    for replicas in (1, 2, 3, 4, 6, 12):
        check_against_runtime(config, replicas)
    with pytest.raises(
        ConfigError, match=r"train\.batch_size 12 is not divisible by the 8 replicas"
    ):
        check_against_runtime(config, 8)


def manifest(classes=(), short_side=128, median_frames=40):
    """A prepared dataset's manifest.json, as dynamonet_tf.data.prepare writes it."""
    return {
        "dataset": "hmdb51" if classes else "folder",
        "options": {
            "short_side": short_side,
            "jpeg_quality": 90,
            "videos_per_shard": 64,
            "max_frames": None,
        },
        "classes": list(classes),
        "subsets": {
            "train": {"videos": 10, "frames": 400, "failures": 0, "shards": [], "per_class": {}}
        },
        "frames_per_video": {"min": 20, "median": median_frames, "max": 60},
        "failures": 0,
    }


LABELED = [f"class_{k}" for k in range(13)]


def test_check_against_data_accepts_matching_data():
    demo = load_config(CONFIGS / "default.yaml")
    check_against_data(demo, manifest())  # pretrain: unlabeled data
    check_against_data(demo, manifest(LABELED))  # pretrain ignores labels
    check_against_data(
        load_config(CONFIGS / "default.yaml", ["train.stage=joint"]), manifest(LABELED)
    )
    # Exactly one clip's span: 8 frames + 1, 4 apart = 33 frames.
    check_against_data(
        load_config(CONFIGS / "default.yaml", ["data.frame_stride=4"]), manifest(median_frames=33)
    )
    check_against_data(load_config(CONFIGS / "default.yaml", ["data.short_side=112"]), manifest())


@pytest.mark.parametrize(
    "overrides, data, match",
    [
        (
            ["train.stage=joint", "data.num_classes=51"],
            manifest(LABELED),
            r"data\.num_classes is 51 but the prepared dataset has 13 classes",
        ),
        (
            ["train.stage=finetune"],
            manifest(),
            r"train\.stage 'finetune' needs labels, but the prepared dataset is unlabeled",
        ),
        (
            ["data.short_side=160"],
            manifest(short_side=128),
            r"data\.short_side 160 exceeds .* prepared at \(128\)",
        ),
        (
            ["data.frame_stride=4"],
            manifest(median_frames=32),
            r"data\.num_frames 8 with data\.frame_stride 4 needs 33 frames",
        ),
        ([], dict(manifest(), frames_per_video=None), r"holds no videos"),
    ],
)
def test_check_against_data_rejects_mismatches(overrides, data, match):
    config = load_config(CONFIGS / "default.yaml", overrides)
    with pytest.raises(ConfigError, match=match):
        check_against_data(config, data)


def test_check_against_data_reads_the_manifest_that_prepare_writes(tmp_path):
    classes = ["jump", "run"]
    records = []
    for i in range(4):
        path = tmp_path / "videos" / f"v{i}.avi"
        path.parent.mkdir(exist_ok=True)
        write_video(path, 12, height=48, width=64)
        records.append(VideoRecord(str(path), i % 2, classes[i % 2], "train", f"v{i}"))
    out = tmp_path / "prepared"
    prepare(
        DatasetIndex("tiny", classes, records),
        out,
        PrepareOptions(short_side=40),
        workers=0,
        progress=False,
    )
    prepared = json.loads((out / MANIFEST).read_text())

    joint = ["train.stage=joint", "data.num_frames=8", "data.crop_size=32", "data.short_side=40"]
    check_against_data(load_config(overrides=joint + ["data.num_classes=2"]), prepared)
    with pytest.raises(ConfigError, match=r"data\.num_classes is 3 but .* has 2 classes"):
        check_against_data(load_config(overrides=joint + ["data.num_classes=3"]), prepared)
    with pytest.raises(ConfigError, match=r"data\.short_side 48 exceeds .* prepared at \(40\)"):
        check_against_data(
            load_config(overrides=joint + ["data.num_classes=2", "data.short_side=48"]), prepared
        )
    with pytest.raises(
        ConfigError, match=r"needs 17 frames per clip, but the median prepared video has 12"
    ):
        check_against_data(
            load_config(overrides=joint + ["data.num_classes=2", "data.num_frames=16"]), prepared
        )
