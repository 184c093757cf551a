"""The joint objective as the paper writes it: both terms shape the model (paper eq. 2-3)."""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf

from dynamonet_tf import losses
from dynamonet_tf.config import load_config
from dynamonet_tf.data.clips import split_clip
from dynamonet_tf.models import build_dynamonet
from dynamonet_tf.training import trainer as trainer_module
from dynamonet_tf.training.optimization import DynamoNetSchedule, decayed_weights
from dynamonet_tf.training.trainer import Trainer, TrainingError
from synthetic import translation_clips
from tiny_run import tiny_config, write_tiny_data


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("tiny_data"))


def numpy_huber(targets, predictions, delta):
    error = np.abs(predictions.astype(np.float64) - targets)
    return np.where(error <= delta, 0.5 * error**2, delta * error - 0.5 * delta**2)


@pytest.mark.parametrize("fp_reduction", ["frame_sum", "pixel_mean"])
def test_frame_prediction_loss_reductions_match_numpy(fp_reduction):
    rng = np.random.default_rng(1)
    targets = rng.random((3, 4, 6, 5, 3)).astype(np.float32)
    predictions = (targets + rng.normal(scale=0.02, size=targets.shape)).astype(np.float32)
    elementwise = numpy_huber(targets, predictions, 0.01)
    if fp_reduction == "frame_sum":  # the frame norm of eq. 2, averaged over the 4 frames
        per_clip = elementwise.sum(axis=(2, 3, 4)).mean(axis=1)
    else:
        per_clip = elementwise.reshape(3, -1).mean(axis=1)
    loss = losses.FramePredictionLoss(fp_reduction=fp_reduction)
    np.testing.assert_allclose(loss(targets, predictions), per_clip.mean(), rtol=1e-5)
    assert (
        losses.frame_prediction_loss(
            load_config(None, [f"loss.fp_reduction={fp_reduction}"]).loss
        ).fp_reduction
        == fp_reduction
    )


def test_frame_sum_is_the_default_and_pixel_mean_divides_by_the_frame_size():
    assert load_config().loss.fp_reduction == "frame_sum"
    targets = np.zeros((1, 2, 8, 8, 3), np.float32)
    predictions = targets + 0.005
    frame_sum = losses.FramePredictionLoss()(targets, predictions)
    pixel_mean = losses.FramePredictionLoss(fp_reduction="pixel_mean")(targets, predictions)
    np.testing.assert_allclose(frame_sum, 8 * 8 * 3 * float(pixel_mean), rtol=1e-6)
    with pytest.raises(ValueError, match="fp_reduction must be one of frame_sum, pixel_mean"):
        losses.FramePredictionLoss(fp_reduction="sum")


def _term_gradient_norms(fp_reduction, alpha=0.1, beta=1.0):
    """‖α∇L_FP‖ and ‖β∇L_CE‖ on the filter layer and on the backbone of a tiny joint model
    at initialisation, on panning textures of 48 x 48."""
    clips, labels = translation_clips(4, 9, 48, seed=5)
    frames, next_frames = split_clip(tf.constant(clips))
    model = build_dynamonet(
        "joint",
        backbone="resnet10",
        input_shape=(8, 48, 48, 3),
        num_classes=8,
        head_filters=8,
        ar_units=16,
        dmr_units=16,
        width_multiplier=0.125,
    )
    fp_loss = losses.FramePredictionLoss(fp_reduction=fp_reduction)
    ce_loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    groups = {
        "filter_layer": model.get_layer("fp_filter_fc").trainable_weights,
        "backbone": model.get_layer("backbone").trainable_weights,
    }
    with tf.GradientTape(persistent=True) as tape:
        outputs = model(frames, training=True)
        terms = {
            "fp": alpha * fp_loss(next_frames, outputs["predicted_frames"]),
            "ce": beta * ce_loss(labels, outputs["logits"]),
        }
    return {
        (term, group): float(tf.linalg.global_norm(tape.gradient(value, variables)))
        for term, value in terms.items()
        for group, variables in groups.items()
    }


def test_both_terms_shape_the_filter_layer_with_the_papers_loss():
    norms = _term_gradient_norms("frame_sum")
    ratio = norms["fp", "filter_layer"] / norms["ce", "filter_layer"]
    assert 1e-2 < ratio < 1e2, norms
    # Per-pixel means divide L_FP by the 48 * 48 * 3 values of a frame: the FP term vanishes.
    norms = _term_gradient_norms("pixel_mean")
    assert norms["fp", "filter_layer"] / norms["ce", "filter_layer"] < 1e-2, norms


def _one_step_backbone(tiny_data, tmp_path, alpha):
    config = tiny_config(tiny_data, "joint", f"loss.alpha={alpha}", "train.epochs=1")
    trainer = Trainer(config, tmp_path / f"alpha_{alpha}", progress=False)
    trainer._train_step(iter(trainer._epoch_dataset(0, 0)))
    return [w.numpy() for w in trainer.model.get_layer("backbone").trainable_weights]


@pytest.mark.slow
def test_alpha_changes_how_a_joint_step_moves_the_backbone(tiny_data, tmp_path):
    without, with_fp = (_one_step_backbone(tiny_data, tmp_path, alpha) for alpha in (0.0, 0.1))
    largest = max(float(np.max(np.abs(a - b))) for a, b in zip(without, with_fp))
    assert largest > 1e-4  # float noise between two identical steps is ~1e-7


@pytest.mark.slow
def test_joint_run_logs_the_balance_and_reports_frame_prediction(tiny_data, tmp_path):
    config = tiny_config(tiny_data, "joint", "train.epochs=1", "train.balance_every_steps=2")
    report = Trainer(config, tmp_path / "run", progress=False).train()
    with (tmp_path / "run" / "log.csv").open() as file:
        (row,) = list(csv.DictReader(file))
    for group in ("backbone", "filter_layer"):
        fp, ce = (
            float(row[f"share_{term}_of_{group}"])
            for term in ("frame_prediction", "classification")
        )
        assert 0.0 < fp < 1.0 and fp + ce == pytest.approx(1.0)
    assert float(row["weighted_frame_prediction_loss"]) == pytest.approx(
        0.1 * float(row["frame_prediction_loss"])
    )
    assert float(row["weighted_classification_loss"]) == pytest.approx(
        float(row["classification_loss"])
    )
    tags = set()
    for path in (tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"):
        tags |= {
            v.tag
            for event in tf.compat.v1.train.summary_iterator(str(path))
            for v in event.summary.value
        }
    # Steps 0 and 2 of 3 are measured.
    assert {
        "balance/share_frame_prediction_of_backbone",
        "balance/grad_norm_classification_filter_layer",
    } <= tags
    fp = report["frame_prediction"]
    assert set(fp) == {"model", "copy_last_frame", "clips"} and "video_accuracy" in report
    assert json.loads((tmp_path / "run" / "report.json").read_text())["frame_prediction"] == fp
    assert "warnings" not in report


@pytest.mark.slow
def test_a_term_below_one_percent_of_the_gradient_is_warned_about_once(tiny_data, tmp_path, capsys):
    config = tiny_config(tiny_data, "joint", "loss.alpha=1e-7", "train.balance_every_steps=1")
    report = Trainer(config, tmp_path / "run", progress=False).train()
    warnings = [w for w in report["warnings"] if "frame prediction" in w]
    assert len(warnings) == 2  # backbone and filter layer, once each over both epochs
    assert "loss.alpha 1e-07" in warnings[0] and "alpha * L_FP is" in warnings[0]
    assert capsys.readouterr().out.count("warning: in epoch 1") == 2


def test_validation_reads_the_holdout_never_the_test_split(tiny_data, tmp_path, monkeypatch):
    read = []
    original = trainer_module.eval_dataset
    monkeypatch.setattr(
        trainer_module,
        "eval_dataset",
        lambda files, data, **kw: (
            read.append((files, data.frame_stride)) or original(files, data, **kw)
        ),
    )
    trainer = Trainer(
        tiny_config(tiny_data, "joint", "train.epochs=1", "data.frame_stride=2"),
        tmp_path / "run",
        progress=False,
    )
    trainer.validate()
    # The holdout, cut with the stride the model was trained at.
    assert read == [(f"{tiny_data}/holdout-*.tfrecord", 2)]
    with pytest.raises(TrainingError, match="schedule 'plateau'.*data.val_files is not set"):
        Trainer(
            tiny_config(tiny_data, "joint", "data.val_files=null"),
            tmp_path / "other",
            progress=False,
        )


@pytest.mark.slow
def test_finetune_always_gets_a_new_classifier(tiny_data, tmp_path):
    joint = Trainer(
        tiny_config(tiny_data, "joint", "train.epochs=1"), tmp_path / "joint", progress=False
    )
    joint.train()
    finetune = Trainer(
        tiny_config(tiny_data, "finetune"),
        tmp_path / "finetune",
        init_from=tmp_path / "joint",
        progress=False,
    )
    init = json.loads((tmp_path / "finetune" / "init_report.json").read_text())
    assert "logits" in init["new"] and "logits" in init["reinitialized"] and "dmr" in init["loaded"]
    source, target = (
        joint.model.get_layer("logits").get_weights(),
        finetune.model.get_layer("logits").get_weights(),
    )
    assert source[0].shape == target[0].shape and not np.allclose(source[0], target[0])


@pytest.mark.slow
def test_layers_that_cannot_be_loaded_stop_the_run_unless_intended(tiny_data, tmp_path):
    Trainer(
        tiny_config(tiny_data, "pretrain", "train.epochs=1"), tmp_path / "pretrain", progress=False
    ).train()
    longer = ("data.num_frames=12",)  # the filter layer predicts 12 filters instead of 8
    with pytest.raises(TrainingError, match=r"fp_filter_fc.*train.reinitialize_mismatched=true"):
        Trainer(
            tiny_config(tiny_data, "finetune", *longer),
            tmp_path / "a",
            init_from=tmp_path / "pretrain",
            progress=False,
        )
    assert not (tmp_path / "a" / "checkpoints").exists()
    trainer = Trainer(
        tiny_config(tiny_data, "finetune", *longer, "train.reinitialize_mismatched=true"),
        tmp_path / "b",
        init_from=tmp_path / "pretrain",
        progress=False,
    )
    assert trainer.init_report["mismatched"] == ["fp_filter_fc"]


def test_heads_use_he_initialisation():
    model = build_dynamonet(
        "joint",
        backbone="resnet10",
        input_shape=(16, 32, 32, 3),
        num_classes=400,
        head_filters=64,
        width_multiplier=0.125,
    )
    # Fan-out far above fan-in, so He (2 / fan_in) and Glorot (2 / (fan_in + fan_out)) differ.
    for name, fan_in in (("fp_filter_fc", 64), ("ar_fc", 64), ("dmr", 16 * 25), ("logits", 1024)):
        kernel = model.get_layer(name).get_weights()[0]
        assert kernel.shape[0] == fan_in
        assert np.std(kernel) == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.1), name
    conv = model.get_layer("fp_conv1").get_weights()[0]  # (3, 3, 3, in, 64): fan-out 27 * 64
    assert np.std(conv) == pytest.approx(np.sqrt(2.0 / (27 * 64)), rel=0.1)


def test_weight_decay_scope():
    model = build_dynamonet(
        "pretrain", backbone="resnet10", input_shape=(4, 32, 32, 3), width_multiplier=0.125
    )
    every = decayed_weights(model, "all")
    kernels = decayed_weights(model, "kernels")
    assert len(every) == len(model.trainable_weights)
    assert any(w.path.endswith("gamma") for w in every) and any(
        w.path.endswith("bias") for w in every
    )
    assert kernels and all(w.path.endswith("kernel") for w in kernels) and len(kernels) < len(every)
    assert load_config().optimizer.weight_decay_scope == "all"


@pytest.mark.slow
def test_trainer_decays_batch_norm_parameters_with_the_papers_scope(tiny_data, tmp_path):
    rates = {}
    for scope in ("all", "kernels"):
        config = tiny_config(
            tiny_data,
            "pretrain",
            "train.epochs=1",
            "optimizer.weight_decay=10.0",
            f"optimizer.weight_decay_scope={scope}",
        )
        trainer = Trainer(config, tmp_path / scope, progress=False)
        gamma = trainer.model.get_layer("fp_bn1").gamma
        before = gamma.numpy().copy()
        trainer._train_step(iter(trainer._epoch_dataset(0, 0)))
        rates[scope] = float(np.mean(gamma.numpy() - before))
    # Decay pulls gamma (initially 1) towards 0 by ~ lr * decay = 0.00625 * 10 per step.
    assert rates["all"] < rates["kernels"] - 0.03


def test_cosine_schedule_ends_at_the_minimum_rate():
    schedule = DynamoNetSchedule(0.1, total_steps=100, cosine=True, min_rate=0.001)
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(50)) == pytest.approx(0.001 + 0.099 * 0.5)
    assert float(schedule(100)) == pytest.approx(0.001)


def test_a_demo_prepared_before_the_holdout_is_named_not_half_used(tmp_path):
    from dynamonet_tf.data.demo_data import with_demo_data
    from dynamonet_tf.data.prepare import PrepareError

    for folder in ("unlabeled", "labeled_split1"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "manifest.json").write_text("{}")
        (tmp_path / folder / "train-00000-of-00001.tfrecord").write_bytes(b"")
    with pytest.raises(PrepareError, match=r"labeled_split1 has no holdout-\*\.tfrecord.*Remove"):
        with_demo_data(load_config(None, ["train.stage=joint", "data.num_classes=13"]), tmp_path)
    assert sorted(p.name for p in (tmp_path / "labeled_split1").iterdir()) == [
        "manifest.json",
        "train-00000-of-00001.tfrecord",
    ]
    given = with_demo_data(
        load_config(None, ["train.stage=joint", "data.num_classes=13", "data.val_files=x"]),
        tmp_path,
    )
    assert given.data.val_files == "x"
