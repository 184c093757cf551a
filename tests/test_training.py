"""Every stage end to end on tiny generated data; resumption; refusals."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from dynamonet_tf.training.trainer import Trainer, TrainingError
from tiny_run import tiny_config, tiny_overrides, write_tiny_data


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("tiny_data"))


def weights(model):
    return [w.numpy().copy() for w in model.weights]


@pytest.mark.slow
def test_pretrain_then_joint_then_finetune(tiny_data, tmp_path):
    pretrain = Trainer(tiny_config(tiny_data), tmp_path / "pretrain", progress=False)
    report = pretrain.train()
    assert report["steps"] == 6
    fp = report["frame_prediction"]
    assert set(fp) == {"model", "copy_last_frame", "clips"} and fp["clips"] >= 1
    assert (tmp_path / "pretrain" / "log.csv").read_text().count("\n") == 3  # header + 2 epochs
    events = list((tmp_path / "pretrain" / "tensorboard").glob("events.out.tfevents.*"))
    images, scalars = {}, set()
    for event in tf.compat.v1.train.summary_iterator(str(events[0])):
        for value in event.summary.value:
            if value.tag in ("frame_prediction", "filters"):
                image = tf.io.decode_png(tf.make_ndarray(value.tensor)[2])
                images[value.tag] = tuple(image.shape)
            else:
                scalars.add(value.tag)
    # Figure 3 (dynamonet_tf.plots): 4 rows of 8 frames of 32x32 drawn at 128 pixels, with
    # labels around them; 8 filters of 5x5 at x8.
    height, width, channels = images.pop("frame_prediction")
    assert height >= 4 * 128 and width >= 8 * 128 and channels == 3
    assert images == {"filters": (42, 336, 1)}
    assert {
        "train/loss",
        "train/learning_rate",
        "epoch/val_loss",
        "epoch/clips_per_second",
    } <= scalars

    finetune = Trainer(
        tiny_config(tiny_data, "finetune"),
        tmp_path / "finetune",
        init_from=tmp_path / "pretrain",
        progress=False,
    )
    init = json.loads((tmp_path / "finetune" / "init_report.json").read_text())
    assert {"backbone/conv1", "fp_filter_fc", "fp_conv1"} <= set(init["loaded"])
    assert {"logits", "dmr", "ar_fc"} <= set(init["new"])
    for name in ("fp_filter_fc", "fp_bn1"):
        for a, b in zip(
            pretrain.model.get_layer(name).get_weights(),
            finetune.model.get_layer(name).get_weights(),
        ):
            np.testing.assert_array_equal(a, b)
    report = finetune.train()
    accuracy = report["video_accuracy"]
    assert accuracy["videos"] == 4 and 0.0 <= accuracy["video_top1"] <= 1.0
    assert "val_top1_accuracy" in report


@pytest.mark.slow
def test_joint_stage_runs(tiny_data, tmp_path):
    report = Trainer(
        tiny_config(tiny_data, "joint", "train.epochs=1"), tmp_path / "joint", progress=False
    ).train()
    assert report["steps"] == 3 and "val_classification_loss" in report


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(tiny_data, tmp_path):
    config = tiny_config(tiny_data)
    reference = Trainer(config, tmp_path / "reference", progress=False)
    reference.train()

    interrupted = Trainer(config, tmp_path / "resumed", progress=False)
    step = interrupted._train_step

    def stop_after_five(iterator):
        if int(interrupted.optimizer.iterations.numpy()) == 5:
            raise KeyboardInterrupt  # right after the mid-epoch checkpoint of epoch 2
        return step(iterator)

    interrupted._train_step = stop_after_five
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    resumed = Trainer(config, tmp_path / "resumed", progress=False)
    # Restored mid-epoch: the second epoch's first two batches are skipped, not retrained.
    assert int(resumed.optimizer.iterations.numpy()) == 5
    assert (int(resumed.epoch.numpy()), int(resumed.step_in_epoch.numpy())) == (1, 2)
    resumed.train()
    assert (
        int(resumed.optimizer.iterations.numpy())
        == int(reference.optimizer.iterations.numpy())
        == 6
    )
    for a, b in zip(weights(reference.model), weights(resumed.model)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_model_dir_of_another_config_is_refused(tiny_data, tmp_path):
    Trainer(tiny_config(tiny_data, "pretrain", "train.epochs=1"), tmp_path / "run", progress=False)
    with pytest.raises(
        TrainingError, match=r"another config \(.*train.stage: 'pretrain' -> 'joint'.*--overwrite"
    ):
        Trainer(tiny_config(tiny_data, "joint"), tmp_path / "run", progress=False)


def test_model_dir_saved_before_a_config_key_existed_is_still_resumed(tiny_data, tmp_path):
    config = tiny_config(tiny_data, "pretrain", "train.epochs=1")
    Trainer(config, tmp_path / "run", progress=False)
    saved = tmp_path / "run" / "config.yaml"
    older = yaml.safe_load(saved.read_text())
    del older["model"]["kernel_size"]  # as if the run predates the key; its default is 5
    saved.write_text(yaml.safe_dump(older))
    Trainer(config, tmp_path / "run", progress=False)  # not refused
    with pytest.raises(TrainingError, match=r"model.kernel_size: 5 -> 3"):
        Trainer(
            tiny_config(tiny_data, "pretrain", "train.epochs=1", "model.kernel_size=3"),
            tmp_path / "run",
            progress=False,
        )


def test_finetune_needs_a_starting_point(tiny_data, tmp_path):
    with pytest.raises(TrainingError, match="--init-from"):
        Trainer(tiny_config(tiny_data, "finetune"), tmp_path / "run", progress=False)


@pytest.mark.slow
def test_nan_loss_stops_with_the_last_good_checkpoint(tiny_data, tmp_path):
    trainer = Trainer(
        tiny_config(tiny_data, "pretrain", "train.epochs=2"), tmp_path / "run", progress=False
    )
    step = trainer._train_step

    def poisoned(iterator):
        sums = step(iterator)
        if int(trainer.optimizer.iterations.numpy()) == 5:
            sums = dict(sums, loss=tf.constant(float("nan")))
        return sums

    trainer._train_step = poisoned
    with pytest.raises(
        TrainingError, match=r"loss became nan at epoch 1, step 1.*last good checkpoint is kept"
    ):
        trainer.train()
    assert trainer.manager.latest_checkpoint.endswith("ckpt-3")  # the end of epoch 1


@pytest.mark.slow
def test_xla_and_bfloat16_switches_train(tiny_data, tmp_path):
    config = tiny_config(
        tiny_data,
        "joint",
        "train.epochs=1",
        "train.jit_compile=true",
        "train.mixed_precision=mixed_bfloat16",
    )
    trainer = Trainer(config, tmp_path / "run", progress=False)
    before = weights(trainer.model)
    report = trainer.train()
    assert report["steps"] == 3
    assert trainer.model.get_layer("backbone").get_layer("conv1").compute_dtype == "bfloat16"
    assert any(not np.array_equal(a, b) for a, b in zip(before, weights(trainer.model)))


@pytest.mark.slow
def test_float16_switch_scales_the_loss_and_skips_overflowing_steps(tiny_data, tmp_path):
    # No max pooling: TensorFlow has no float16 MaxPool3D kernel on CPU (GPUs have one).
    config = tiny_config(
        tiny_data,
        "joint",
        "train.epochs=1",
        "train.steps_per_epoch=2",
        "train.eval_steps=1",
        "train.mixed_precision=mixed_float16",
        "model.no_max_pool=true",
    )
    trainer = Trainer(config, tmp_path / "run", progress=False)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert trainer.model.get_layer("backbone").get_layer("conv1").compute_dtype == "float16"
    before = [w.numpy().copy() for w in trainer.model.trainable_weights]
    # A scale this large overflows float16 gradients: the step must be skipped and the
    # scale halved, which only happens when the loss is really scaled.
    trainer.optimizer.dynamic_scale.assign(2.0**60)
    trainer._train_step(iter(trainer._epoch_dataset(0, 0)))
    assert float(trainer.optimizer.dynamic_scale.numpy()) == 2.0**59
    for a, b in zip(before, trainer.model.trainable_weights):  # BatchNorm statistics still move
        np.testing.assert_array_equal(a, b.numpy())
    trainer.optimizer.dynamic_scale.assign(2.0**10)
    trainer._train_step(iter(trainer._epoch_dataset(0, 0)))
    assert any(
        not np.array_equal(a, b.numpy()) for a, b in zip(before, trainer.model.trainable_weights)
    )


@pytest.mark.slow
def test_mirrored_over_two_devices_equals_one_device(tiny_data, tmp_path):
    """Same global batch, synchronised BatchNorm: same validation loss and weights."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("distributed_equivalence.py")
    result = subprocess.run(
        [sys.executable, str(script), str(tiny_data), str(tmp_path), "train.steps_per_epoch=1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2" in result.stdout
    one, mirrored = np.load(tmp_path / "one_device.npz"), np.load(tmp_path / "mirrored.npz")
    assert set(one.files) == set(mirrored.files) and len(one.files) > 10
    np.testing.assert_allclose(one["loss"], mirrored["loss"], rtol=1e-5)
    for name in one.files:
        np.testing.assert_allclose(one[name], mirrored[name], rtol=0, atol=1e-6, err_msg=name)
    # The update itself moved the weights far more than the tolerance.
    assert not np.allclose(
        one["arr_0"], np.load(tmp_path / "one_device_initial.npz")["arr_0"], atol=1e-5
    )


@pytest.mark.slow
def test_two_worker_processes_train_to_identical_weights(tiny_data, tmp_path):
    """MultiWorkerMirroredStrategy on 127.0.0.1: Keras fit cannot run there, our loop can."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    def free_port():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    script = Path(__file__).with_name("multi_worker.py")
    ports = [str(free_port()), str(free_port())]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(tiny_data),
                str(tmp_path),
                *ports,
                str(index),
                "model.sync_batch_norm=true",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in (0, 1)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    assert [o[0].strip().splitlines()[-1] for o in outputs] == [
        "worker 0: replicas 2, steps 3",
        "worker 1: replicas 2, steps 3",
    ]
    chief, other = np.load(tmp_path / "worker0.npz"), np.load(tmp_path / "worker1.npz")
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    assert (tmp_path / "worker0" / "checkpoints" / "checkpoint").exists()
    assert (tmp_path / "worker1" / "workers" / "1" / "checkpoints" / "checkpoint").exists()


@pytest.mark.slow
def test_train_command_names_a_bad_override(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve().parents[1] / "train.py"),
            "--set",
            "train.batch_sise=4",
            "--model-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "train.batch_sise" in result.stderr and "batch_size" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_train_command_killed_with_sigkill_resumes_to_the_same_weights(tiny_data, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    overrides = [*tiny_overrides(tiny_data), "train.epochs=3", "train.steps_per_epoch=8"]
    command = [
        sys.executable,
        str(repo / "train.py"),
        "--stage",
        "pretrain",
        "--model-dir",
        str(tmp_path / "run"),
    ]
    for override in overrides:
        command += ["--set", override]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path
    )
    index = tmp_path / "run" / "checkpoints" / "checkpoint"
    deadline = time.time() + 300
    while time.time() < deadline and not (index.exists() and "ckpt-6" in index.read_text()):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "run" / "report.json").exists(), (
        "the run ended before it could be killed"
    )
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "report.json").read_text())["steps"] == 24
    assert [
        line.split(",")[0] for line in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]
    ] == ["1", "2", "3"]

    from dynamonet_tf.config import load_config

    reference = Trainer(
        load_config(repo / "configs" / "default.yaml", overrides),
        tmp_path / "reference",
        progress=False,
    )
    reference.train()
    resumed = Trainer(
        load_config(repo / "configs" / "default.yaml", overrides), tmp_path / "run", progress=False
    )
    for a, b in zip(weights(reference.model), weights(resumed.model)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_train_command_names_data_files_that_match_nothing(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve().parents[1] / "train.py"),
            "--model-dir",
            str(tmp_path / "run"),
            "--set",
            f"data.train_files={tmp_path}/none-*.tfrecord",
            "--set",
            f"data.eval_files={tmp_path}/none-*.tfrecord",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert f"data.train_files '{tmp_path}/none-*.tfrecord' matches no files" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_labeled_stage_on_unlabeled_videos_is_refused_before_the_run_starts(tmp_path):
    from dynamonet_tf.data.schema import encode_video_example
    from dynamonet_tf.names import UNLABELED
    from synthetic import translation_clips

    clips, _ = translation_clips(2, 10, 40, seed=3)
    for subset in ("train", "test", "holdout"):
        with tf.io.TFRecordWriter(str(tmp_path / f"{subset}-00000-of-00001.tfrecord")) as writer:
            for i, clip in enumerate(clips):
                jpegs = [tf.io.encode_jpeg((f * 255).astype(np.uint8)).numpy() for f in clip]
                writer.write(encode_video_example(jpegs, UNLABELED, "", f"walk{i}"))
    with pytest.raises(TrainingError) as error:
        Trainer(tiny_config(tmp_path, "joint"), tmp_path / "run", progress=False)
    message = str(error.value)
    assert "train.stage 'joint' learns from labels" in message and "walk0" in message
    assert str(tmp_path / "train-*.tfrecord") in message
    assert not (tmp_path / "run").exists()  # refused before the folder was made


def test_a_labeled_run_meeting_an_unlabeled_video_later_stops_in_one_line(tiny_data, tmp_path):
    import shutil

    from dynamonet_tf.data.schema import encode_video_example
    from dynamonet_tf.names import UNLABELED
    from synthetic import translation_clips

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    # The first video is labeled (the start-up look passes), a later one is not.
    records = [
        bytes(r.numpy())
        for r in tf.data.TFRecordDataset(str(data / "train-00000-of-00001.tfrecord"))
    ]
    (clip,), _ = translation_clips(1, 20, 40, seed=5)
    jpegs = [tf.io.encode_jpeg((f * 255).astype(np.uint8)).numpy() for f in clip]
    unlabeled = encode_video_example(jpegs, UNLABELED, "", "stray")
    with tf.io.TFRecordWriter(str(data / "train-00000-of-00001.tfrecord")) as writer:
        for record in records[:1] + [unlabeled] * 11:
            writer.write(record)
    trainer = Trainer(tiny_config(data, "joint"), tmp_path / "run", progress=False)
    with pytest.raises(TrainingError) as error:
        trainer.train()
    message = str(error.value)
    assert "learns from labels, but a video of data.train_files" in message
    assert str(data / "train-*.tfrecord") in message and "\n" not in message


def test_a_config_its_prepared_data_cannot_serve_is_refused_before_the_run_starts(
    tiny_data, tmp_path
):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "manifest.json").write_text(json.dumps({"classes": ["a", "b", "c", "d", "e"]}))
    with pytest.raises(TrainingError) as error:
        Trainer(tiny_config(data, "joint"), tmp_path / "run", progress=False)
    assert str(error.value) == (
        f"data.train_files {data}/train-*.tfrecord: data.num_classes is 8 but the prepared "
        "dataset has 5 classes; set data.num_classes=5."
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_readme_finetune_preset_from_a_tiny_run_takes_its_architecture_and_trains(
    tiny_data, tmp_path, capsys
):
    from pathlib import Path

    from dynamonet_tf.cli import CONFIGS_DIR
    from dynamonet_tf.cli import train as train_cli
    from dynamonet_tf.config import architecture_differences, load_config

    source = tmp_path / "pretrain"
    Trainer(tiny_config(tiny_data, "pretrain", "train.epochs=1"), source, progress=False).train()
    run = tmp_path / "finetune"
    argv = ["--config", str(CONFIGS_DIR / "finetune_hmdb51.yaml"), "--init-from", str(source)]
    argv += ["--model-dir", str(run)]
    # The data paths, and a run length a test can afford; nothing of the architecture.
    for override in (
        f"data.train_files={tiny_data}/train-*.tfrecord",
        f"data.val_files={tiny_data}/holdout-*.tfrecord",
        f"data.eval_files={tiny_data}/test-*.tfrecord",
        "train.batch_size=4",
        "train.epochs=1",
        "train.steps_per_epoch=2",
        "train.checkpoint_every_steps=2",
        "train.eval_steps=1",
    ):
        argv += ["--set", override]
    train_cli.main(argv)
    out = capsys.readouterr().out
    assert "architecture of --init-from" in out and "'stc_resnext101' -> 'resnet10'" in out
    trained = load_config(run / "config.yaml")
    assert architecture_differences(load_config(source / "config.yaml"), trained) == []
    assert trained.data.num_classes == 51 and trained.train.stage == "finetune"
    init = json.loads((run / "init_report.json").read_text())
    assert not [name for name in init["new"] if name.startswith("backbone/")]
    assert Path(run / "report.json").exists()


def test_an_override_that_leaves_the_backbone_untrained_is_refused_naming_the_key(
    tiny_data, tmp_path
):
    source = tmp_path / "pretrain"
    # A run with one (untrained) checkpoint is enough to start from.
    pretrain = Trainer(tiny_config(tiny_data, "pretrain"), source, progress=False)
    pretrain.manager.save()
    pretrain.close()
    with pytest.raises(TrainingError) as error:
        Trainer(
            tiny_config(tiny_data, "joint", "model.backbone=resnet18"),
            tmp_path / "joint",
            init_from=source,
            progress=False,
        )
    message = str(error.value)
    assert "backbone layers are not in the source" in message or "other shapes" in message
    assert "model.backbone: 'resnet10' -> 'resnet18'" in message


def test_init_from_a_hara_checkpoint_loads_the_backbone_and_reports_the_rest(tiny_data, tmp_path):
    from pathlib import Path

    from dynamonet_tf.models import read_hara_state_dict

    hara_file = Path(__file__).parent / "fixtures" / "hara" / "resnet18_a.pth"  # width 1/32
    architecture = ("model.backbone=resnet18", "model.width_multiplier=0.03125")
    trainer = Trainer(
        tiny_config(tiny_data, "joint", *architecture),
        tmp_path / "joint",
        init_from=hara_file,
        progress=False,
    )
    trainer.close()
    init = json.loads((tmp_path / "joint" / "init_report.json").read_text())
    assert "backbone/conv1" in init["loaded"] and init["unused"] == ["fc.weight", "fc.bias"]
    assert not [name for name in init["new"] if name.startswith("backbone/")]
    assert "logits" in init["new"] and "dmr" in init["new"]
    conv1 = trainer.model.get_layer("backbone").get_layer("conv1").kernel.numpy()
    expected = read_hara_state_dict(hara_file)["conv1.weight"].transpose(2, 3, 4, 1, 0)
    np.testing.assert_array_equal(conv1, expected)
    # Another backbone than the file's is refused, naming the tensor that disagrees.
    with pytest.raises(
        TrainingError, match=r"^--init-from .*resnet18_a.pth does not fit .*conv1.weight is"
    ):
        Trainer(tiny_config(tiny_data, "joint"), tmp_path / "other", init_from=hara_file)


@pytest.mark.parametrize("classes, shown", [(4, "top-5 n/a (≤5 classes)"), (8, "top-5 0.750")])
def test_the_end_of_run_report_shows_top5_only_when_it_can_miss(capsys, classes, shown):
    from dynamonet_tf.cli.train import print_report

    accuracy = {
        "videos": 4,
        "clips": 8,
        "video_top1": 0.5,
        "video_top5": 1.0 if classes <= 5 else 0.75,
        "clip_top1": 0.5,
        "mean_class_accuracy": 0.5,
        "video_top5_trivial": classes <= 5,
        "per_class": {
            f"class{k}": {"videos": 1, "correct": 1, "accuracy": 1.0} for k in range(classes)
        },
    }
    print_report({"stage": "joint", "steps": 6, "video_accuracy": accuracy}, "runs/r")
    out = capsys.readouterr().out
    assert shown in out
    assert ("top-5 1.000" in out) is False
