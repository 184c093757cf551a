"""The training loop of every stage, on one device or many (``tf.distribute``).

One custom loop serves all strategies: Keras 3's ``fit`` does not run under
``MultiWorkerMirroredStrategy`` (keras-team/keras#20585), and a loop of our own also gives
exact resumption. Per stage:

- pretrain: L_FP (Huber on the predicted frames), no classifier;
- joint: alpha * L_FP + beta * L_CE;
- finetune: the joint loss on a model initialised from a pretrain or joint run (a new
  classifier when the class count differs), at ``train.finetune_learning_rate_scale`` times
  the learning rate.

Batches are global: each replica computes its share and losses are averaged over the global
batch (``tf.nn.compute_average_loss``), so the gradients equal one device's with the same
global batch. BatchNorm statistics are per replica (not synchronised), as in the paper's
PyTorch ``DataParallel`` training.

State survives a kill: the model, the optimiser, the learning-rate plateau state, and the
position in the data (epoch and step; each epoch's data stream is a function of the seed and
the epoch, and a resumed epoch skips the batches already trained on) are checkpointed every
``train.checkpoint_every_steps`` steps and at the end of every epoch. TensorFlow writes a
checkpoint completely before pointing the ``checkpoint`` index at it, so a kill during a
save leaves the previous one in force. What a crash, a full disk or a careless copy can still
leave (the ``ckpt-<N>_temp/`` of an interrupted save, an index that does not name the
checkpoints present, a truncated newest checkpoint) is survived and said at the next start
(:mod:`dynamonet_tf.checkpoint_files`); the running sums of a resumed epoch are checkpointed
too, so its ``log.csv`` row covers all its steps.
"""

import json
import math
import os
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

from dynamonet_tf.checkpoint_files import (
    CheckpointDamaged,
    remove_interrupted_saves,
    repair_index,
    restore_newest_readable,
    set_aside,
)
from dynamonet_tf.checkpoint_files import present as present_checkpoints
from dynamonet_tf.config import (
    architecture_differences,
    check_against_runtime,
    with_absolute_data_paths,
)
from dynamonet_tf.data.checks import DataCheckError, check_training_data
from dynamonet_tf.data.clips import split_clip
from dynamonet_tf.data.integrity import ShardError, reading_shards
from dynamonet_tf.data.pipelines import (
    UNLABELED_MESSAGE,
    eval_dataset,
    train_dataset,
)
from dynamonet_tf.evaluation import (
    HEADLINE,
    check_videos_read,
    class_names,
    evaluate_clips,
    model_logits,
)
from dynamonet_tf.frame_metrics import FramePredictionScores
from dynamonet_tf.layout import run_layout
from dynamonet_tf.losses import frame_prediction_loss, per_example_objective
from dynamonet_tf.models import (
    HaraCheckpointError,
    is_torch_checkpoint,
    load_hara_checkpoint,
    transfer_weights,
)
from dynamonet_tf.names import LOGITS, PREDICTED_FRAMES, UNLABELED
from dynamonet_tf.run_lock import RunLockError
from dynamonet_tf.runs import RunError, build_model, load_run_config, model_kind, restore_weights
from dynamonet_tf.training.balance import (
    NORM_PREFIX,
    TERMS,
    BalanceMonitor,
    gradient_shares,
    mean_gradient_shares,
)
from dynamonet_tf.training.figures import log_prediction_images
from dynamonet_tf.training.finite_updates import all_finite, apply_gradients
from dynamonet_tf.training.optimization import decayed_weights, make_optimizer
from dynamonet_tf.training.run_files import (
    RunFolderError,
    append_epoch_log,
    checkpoint_managers,
    checkpoint_name,
    claim_run_folder,
    has_checkpoint,
    read_epoch_log,
    record_best,
    record_checkpoint_step,
    write_json,
)
from dynamonet_tf.training.run_record import CLOSED, RunSession

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


class TrainingError(Exception):
    """A run that cannot start or go on; the message says why and what to do."""


def make_strategy(name):
    """The ``tf.distribute`` strategy called ``name`` (see :data:`STRATEGIES`)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise TrainingError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")


class Trainer:
    """Trains ``config`` in ``model_dir``; resumes what a previous run left there.

    The model dir is this process's from the moment it is claimed (before its config is read)
    until :meth:`train` ends or :meth:`close`: another process's Trainer on it is refused,
    naming this one (:mod:`dynamonet_tf.run_lock`). A non-chief worker locks its own
    ``workers/<id>/`` folder, so the workers of one run do not exclude each other.

    While it holds the folder, the Trainer records its session in ``run.json`` (``command``,
    default ``sys.argv``: train.py passes its own) and ``train.log`` (its messages and, while
    it trains, what the terminal shows, without progress bars):
    :mod:`dynamonet_tf.training.run_record`.
    """

    def __init__(
        self,
        config,
        model_dir,
        *,
        strategy=None,
        init_from=None,
        overwrite=False,
        progress=True,
        command=None,
    ):
        # Absolute data paths: the saved config then serves commands run from anywhere.
        config = with_absolute_data_paths(config)
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        self.model_dir = Path(model_dir)
        resolver = getattr(self.strategy, "cluster_resolver", None)
        if resolver is not None and resolver.task_type == "worker" and resolver.task_id:
            # Every worker must save (checkpoints are collective); only the chief (worker 0)
            # writes the run's model dir, the others their own folder inside it.
            self.model_dir = self.model_dir / "workers" / str(resolver.task_id)
        self.run = run_layout(self.model_dir)
        self.progress = progress
        # The command line run.json records.
        self.command = [str(argument) for argument in (sys.argv if command is None else command)]
        self._session = None
        check_against_runtime(config, self.strategy.num_replicas_in_sync)
        if config.train.stage == "finetune" and init_from is None and not self._has_checkpoint():
            raise TrainingError(
                "train.stage 'finetune' starts from an earlier run: pass --init-from with its "
                "model dir or checkpoint."
            )
        if config.optimizer.schedule == "plateau" and not config.data.val_files:
            raise TrainingError(
                "optimizer.schedule 'plateau' lowers the rate when the validation loss stops "
                "improving, but data.val_files is not set: give the holdout-*.tfrecord of the "
                "prepared training data (data/prepare.py writes it), or use schedule cosine or "
                "constant."
            )
        self._check_against_data(config)
        # Held until train() ends or close(): one process writes a run folder.
        self._lock = self._claim_model_dir(overwrite)
        try:
            self._session = RunSession(
                self.run, stage=config.train.stage, command=self.command, strategy=self.strategy
            )
            keras.mixed_precision.set_global_policy(config.train.mixed_precision)
            keras.utils.set_random_seed(config.train.seed)
            with self.strategy.scope():
                self.model = build_model(config)
                self.optimizer, self.schedule = make_optimizer(config)
                self.optimizer.build(self.model.trainable_variables)
                self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
                self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
                self.best_val_loss = tf.Variable(math.inf, dtype=tf.float32, trainable=False)
                self.plateau_wait = tf.Variable(0, dtype=tf.int64, trainable=False)
            # The running sums of the epoch under way, so that a resumed epoch's log row
            # covers all its steps. A string, so on the host (outside the strategy's devices).
            with tf.device("/cpu:0"):
                self.epoch_progress = tf.Variable("", dtype=tf.string, trainable=False)
            self.checkpoint = tf.train.Checkpoint(
                model=self.model,
                optimizer=self.optimizer,
                plateau_scale=self.schedule.plateau_scale,
                epoch=self.epoch,
                step_in_epoch=self.step_in_epoch,
                best_val_loss=self.best_val_loss,
                plateau_wait=self.plateau_wait,
                epoch_progress=self.epoch_progress,
            )
            self.init_report = None
            self.resumed_from = self._resume()
            if self.resumed_from is None and init_from is not None:
                self.init_report = self._initialise_from(init_from)
            # After _resume, which may rewrite the folders' indexes that the managers read.
            self.manager, self.best_manager = checkpoint_managers(
                self.checkpoint, self.model, self.run
            )
            self._fp_loss = frame_prediction_loss(config.loss, reduction=None)
            self._decayed = decayed_weights(self.model, config.optimizer.weight_decay_scope)
            self._train_step = self._make_train_step()
            self._balance_step = (
                self._make_train_step(measure_balance=True) if self._is_joint() else None
            )
            self.balance_monitor = BalanceMonitor(config.loss)
        except BaseException as error:
            self._end_session(error)
            self.close()
            raise

    # ------------------------------------------------------------------ set-up

    @staticmethod
    def _check_against_data(config):
        """Refuses, before anything is built or written, a config its data cannot serve
        (:func:`~dynamonet_tf.data.checks.check_training_data`)."""
        try:
            check_training_data(config)
        except DataCheckError as error:
            raise TrainingError(str(error)) from None

    def _has_checkpoint(self):
        return has_checkpoint(self.run)

    def _resume(self):
        """Restores the newest readable checkpoint of the run; returns its prefix, or None
        when the run has none (a fresh start).

        Damage left by an earlier process is survived and said, never silently reset: the
        temporary folders of interrupted saves are removed, an index that does not name the
        checkpoints present is rebuilt from them, and a newest checkpoint that cannot be
        read is moved to ``checkpoints/damaged/`` and the newest readable one used. When
        checkpoints exist but none reads, the run stops, naming them (and moves nothing).
        """
        for folder in (self.run.checkpoints, self.run.best):
            for leftover, size in remove_interrupted_saves(folder):
                self._say(
                    f"removed {leftover} ({size / 1e6:.1f} MB), the temporary folder of a "
                    "checkpoint save that was interrupted"
                )
            problem = repair_index(folder)
            if problem:
                names = ", ".join(prefix.name for prefix in present_checkpoints(folder))
                self._say(f"warning: {problem}; rebuilt it from the checkpoints present: {names}")
        if not present_checkpoints(self.run.checkpoints):
            return None

        def restore(prefix):
            self.checkpoint.restore(prefix).assert_existing_objects_matched()

        try:
            prefix, skipped = restore_newest_readable(self.run.checkpoints, restore)
        except CheckpointDamaged as error:
            raise TrainingError(
                f"{error}. Nothing was changed; move them out of {self.run.checkpoints} to "
                "start this run from step 0, or --overwrite to start it afresh."
            ) from None
        except AssertionError as error:
            raise TrainingError(
                f"the checkpoints in {self.run.checkpoints} do not match the model of "
                f"{self.run.config}: {error}"
            ) from None
        if skipped:
            moved_to = set_aside([damaged for damaged, _ in skipped])
            for (damaged, why), target in zip(skipped, moved_to):
                self._say(
                    f"warning: {damaged} cannot be read ({why}); moved it to {target} and "
                    f"resumed from {prefix} (step {int(self.optimizer.iterations.numpy())})"
                )
        return prefix

    def _claim_model_dir(self, overwrite):
        """Locks the model dir for this process (:mod:`dynamonet_tf.run_lock`) and refuses
        one that another process holds or that holds a run of another stage or config."""
        try:
            return claim_run_folder(self.run, self.config, overwrite)
        except (RunFolderError, RunLockError) as error:
            raise TrainingError(str(error)) from None

    def close(self):
        """Releases the model dir for other processes; :meth:`train` does at its end.
        The trainer writes nothing after. Closing twice is harmless.

        A session not ended by :meth:`train` is recorded as ``closed`` in run.json."""
        self._end_session(status=CLOSED)
        if self._lock is not None:
            self._lock.release()

    def _say(self, message, *, stderr=False):
        """Prints one of the trainer's messages and appends it to train.log."""
        if self._session is not None:
            self._session.say(message, stderr=stderr)
        else:
            print(message, file=sys.stderr if stderr else sys.stdout, flush=True)

    def _step(self):
        """The optimizer step reached; None before the optimizer is made."""
        try:
            return int(self.optimizer.iterations.numpy())
        except Exception:  # not made yet, or TensorFlow itself failing
            return None

    def _end_session(self, error=None, *, status=None):
        """Records the session's end (:meth:`RunSession.end`); once."""
        if self._session is not None:
            self._session.end(error, status=status, step=self._step())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _initialise_from(self, source):
        """Loads weights by layer name from another run (its model dir or a checkpoint), or
        the backbone from a PyTorch checkpoint of Hara et al.'s 3D ResNets
        (:func:`~dynamonet_tf.models.load_hara_checkpoint`).

        A model dir gives its final state; pass a checkpoint of its ``best/`` to start from
        the best one.
        """
        if is_torch_checkpoint(source):
            return self._initialise_from_hara(source)
        try:
            source_config = load_run_config(source)
            source_model = build_model(source_config)
            prefix = restore_weights(source_model, source)
        except RunError as error:
            raise TrainingError(f"--init-from {error}") from None
        # Fine-tuning classifies a new dataset's classes (paper §4.7): its classifier always
        # starts afresh, even when the class count happens to match.
        fresh = (LOGITS,) if self.config.train.stage == "finetune" else ()
        report = transfer_weights(source_model, self.model, reinitialize=fresh)
        # The backbone is what a run is started from for: all of it must load.
        untrained_backbone = [name for name in report.new if name.startswith("backbone/")]
        if (report.mismatched or untrained_backbone) and (
            not self.config.train.reinitialize_mismatched
        ):
            problems = []
            if report.mismatched:
                problems.append(
                    f"{len(report.mismatched)} layers have other shapes in the two models "
                    f"({_first_names(report.mismatched)})"
                )
            if untrained_backbone:
                problems.append(
                    f"{len(untrained_backbone)} backbone layers are not in the source "
                    f"({_first_names(untrained_backbone)})"
                )
            differences = architecture_differences(source_config, self.config)
            raise TrainingError(
                f"--init-from {source}: {'; '.join(problems)}, and would start untrained. "
                "The configs differ in "
                f"{'; '.join(differences) if differences else 'no architecture setting'}. "
                "Start from a run of the same architecture (leave those keys to the source "
                "run), or set train.reinitialize_mismatched=true if re-initialising them is "
                "intended."
            )
        summary = {
            "source": str(prefix),
            "loaded": report.loaded,
            "new": report.new,
            "reinitialized": list(fresh) + report.mismatched,
            "mismatched": report.mismatched,
            "unused": report.unused,
        }
        write_json(self.run.init_report, summary)
        self._say(f"initialised from {prefix}: {report}")
        return summary

    def _initialise_from_hara(self, path):
        """The backbone from a Hara et al. checkpoint; the heads start afresh and the file's
        classifier ``fc`` (Kinetics' classes) is reported unused."""
        try:
            report = load_hara_checkpoint(self.model, path)
        except HaraCheckpointError as error:
            raise TrainingError(f"--init-from {error}") from None
        summary = {
            "source": str(path),
            "format": "Hara et al. 3D-ResNets-PyTorch",
            "loaded": report.loaded,
            "new": report.new,
            "reinitialized": [],
            "mismatched": report.mismatched,
            "unused": report.unused,
        }
        write_json(self.run.init_report, summary)
        self._say(f"initialised the backbone from {path}: {report}")
        return summary

    # ------------------------------------------------------------------ steps

    def _per_example_losses(self, outputs, targets):
        return per_example_objective(self.config.loss, model_kind(self.config), outputs, targets)

    def _is_joint(self):
        return model_kind(self.config) == "joint"

    def _balance_groups(self):
        """``{group: variables}`` on which the loss terms' gradient norms are compared: the
        backbone, and the filter layer (the FC that predicts the motion filters, which both
        terms reach: L_FP through the predicted frames, L_CE through the DMR)."""
        return {
            "backbone": self.model.get_layer("backbone").trainable_variables,
            "filter_layer": self.model.get_layer("fp_filter_fc").trainable_variables,
        }

    def _batch_sums(self, outputs, targets, total, parts):
        """Sums over the replica's batch, for metrics averaged over the global batch."""
        sums = {"loss": tf.reduce_sum(total), "examples": tf.cast(tf.shape(total)[0], tf.float32)}
        sums.update({name: tf.reduce_sum(value) for name, value in parts.items()})
        if LOGITS in outputs:
            labels = targets[LOGITS]
            logits = tf.cast(outputs[LOGITS], tf.float32)
            k = min(5, logits.shape[-1])
            sums["top1_correct"] = tf.reduce_sum(
                tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float32)
            )
            sums["top5_correct"] = tf.reduce_sum(
                tf.cast(tf.math.in_top_k(labels, logits, k), tf.float32)
            )
        return sums

    def _make_train_step(self, measure_balance=False):
        """The compiled training step. With ``measure_balance``, it also returns the norms of
        the gradients of alpha * L_FP and beta * L_CE on each of :meth:`_balance_groups`
        (over the global batch), at the cost of two more backward passes."""
        global_batch = self.config.train.batch_size
        weight_decay = self.config.optimizer.weight_decay
        replicas = self.strategy.num_replicas_in_sync
        scales_loss = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        groups = self._balance_groups() if measure_balance else {}

        def term_gradient_norms(tape, terms):
            norms = {}
            context = tf.distribute.get_replica_context()
            for term, value in terms.items():
                scaled = self.optimizer.scale_loss(value) if scales_loss else value
                for group, variables in groups.items():
                    gradients = tape.gradient(scaled, variables, unconnected_gradients="zero")
                    gradients = [tf.cast(g, tf.float32) for g in gradients]
                    if scales_loss:
                        gradients = [
                            g / tf.cast(self.optimizer.dynamic_scale, tf.float32) for g in gradients
                        ]
                    gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
                    # Every replica now holds the global norm; the step sums over replicas.
                    norms[f"{NORM_PREFIX}{term}_{group}"] = (
                        tf.linalg.global_norm(gradients) / replicas
                    )
            return norms

        def gradients_and_sums(frames, targets):
            with tf.GradientTape(persistent=measure_balance) as tape:
                outputs = self.model(frames, training=True)
                total, parts = self._per_example_losses(outputs, targets)
                loss = tf.nn.compute_average_loss(total, global_batch_size=global_batch)
                if weight_decay:
                    # PyTorch-style L2: decay flows through the momentum (paper's setting).
                    loss += (
                        0.5
                        * weight_decay
                        * tf.add_n(
                            [
                                tf.reduce_sum(tf.square(tf.cast(w, tf.float32)))
                                for w in self._decayed
                            ]
                        )
                        / replicas
                    )
                scaled = self.optimizer.scale_loss(loss) if scales_loss else loss
                terms = (
                    {
                        term: tf.nn.compute_average_loss(
                            parts[f"weighted_{term}_loss"], global_batch_size=global_batch
                        )
                        for term in TERMS
                    }
                    if measure_balance
                    else {}
                )
            gradients = tape.gradient(scaled, self.model.trainable_variables)
            sums = self._batch_sums(outputs, targets, total, parts)
            if measure_balance:
                sums.update(term_gradient_norms(tape, terms))
                del tape
            return gradients, sums

        if self.config.train.jit_compile and not measure_balance:
            # XLA compiles the forward and backward passes; the update stays outside, where
            # the distribution strategy aggregates gradients across replicas.
            gradients_and_sums = tf.function(gradients_and_sums, jit_compile=True)

        def replica_step(frames, targets):
            gradients, sums = gradients_and_sums(frames, targets)
            apply_gradients(self.optimizer, gradients, self.model.trainable_variables)
            return sums

        @tf.function
        def train_step(iterator):
            frames, targets = next(iterator)
            sums = self.strategy.run(replica_step, args=(frames, targets))
            return {
                k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in sums.items()
            }

        return train_step

    # ------------------------------------------------------------------ data

    def _epoch_dataset(self, epoch, skip):
        data, train = self.config.data, self.config.train
        steps = train.steps_per_epoch - skip

        def dataset_fn(context):
            dataset = train_dataset(
                data.train_files,
                data,
                batch_size=train.batch_size,
                labeled=train.labeled,
                # Each epoch's stream depends on the seed and the epoch only: a resumed run
                # sees the same batches as an uninterrupted one.
                seed=train.seed * 100_003 + epoch,
                deterministic=train.deterministic,
                input_context=context,
            )
            # One pipeline feeds every replica of its worker: a step takes one batch per replica.
            batches_per_step = context.num_replicas_in_sync // context.num_input_pipelines
            return dataset.skip(skip * batches_per_step).take(steps * batches_per_step)

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def _eval_dataset(self, num_frames, files):
        """Every ``num_frames`` clip of the videos of ``files``, centre crop, as
        ``(frames, info)``."""
        return eval_dataset(
            files, self.config.data, batch_size=self.config.train.batch_size, num_frames=num_frames
        )

    def _eval_clips(self, limit, files):
        """Held-out clips of T + 1 frames of ``files`` as ``(frames, targets, info)`` batches
        (centre crop).

        Only whole clips: the last clip of a video is padded by repeating its final frame,
        a stillness that copying the last frame would predict for free.
        """
        clip_length = self.config.data.num_frames + 1
        dataset = (
            self._eval_dataset(clip_length, files)
            .unbatch()
            .filter(lambda frames, info: info["valid_frames"] == clip_length)
            .batch(self.config.train.batch_size)
        )
        if limit:
            dataset = dataset.take(limit)
        for clips, info in dataset:
            frames, next_frames = split_clip(clips)
            yield frames, {PREDICTED_FRAMES: next_frames, LOGITS: info["label"]}, info

    # ------------------------------------------------------------------ evaluation

    def validate(self):
        """Mean losses (and accuracy) over the validation clips (``data.val_files``, a holdout
        of the training videos: they choose ``best/`` and step the plateau schedule, so never
        the test split); ``{}`` without validation files."""
        if not self.config.data.val_files:
            return {}
        totals = {}
        for frames, targets, _ in self._eval_clips(
            self.config.train.eval_steps, self.config.data.val_files
        ):
            outputs = self.model(frames, training=False)
            total, parts = self._per_example_losses(outputs, targets)
            for name, value in self._batch_sums(outputs, targets, total, parts).items():
                totals[name] = totals.get(name, 0.0) + float(value)
        return _averages(totals, prefix="val_")

    def frame_prediction_report(self):
        """FP loss and SSIM/PSNR against copying the last frame, on held-out clips
        (``train.frame_prediction_batches`` batches of them), scored as
        ``evaluate_frame_prediction.py`` scores them (means over all predicted frames)."""
        scores, losses = FramePredictionScores(), {"model": [], "copy_last_frame": []}
        batches = self.config.train.frame_prediction_batches
        for frames, targets, info in self._eval_clips(batches, self.config.data.eval_files):
            predicted = tf.cast(self.model(frames, training=False)[PREDICTED_FRAMES], tf.float32)
            next_frames = targets[PREDICTED_FRAMES]
            for video, *clip in zip(
                info["media_id"].numpy(), frames.numpy(), next_frames.numpy(), predicted.numpy()
            ):
                scores.add(video.decode(), *clip)
            losses["model"].append(self._fp_loss(next_frames, predicted))
            losses["copy_last_frame"].append(self._fp_loss(next_frames, frames))
        summary = scores.summary()
        report = {
            name: dict(
                summary[name],
                frame_prediction_loss=float(tf.reduce_mean(tf.concat(per_clip, axis=0))),
            )
            for name, per_clip in losses.items()
        }
        report["clips"] = summary["clips"]
        return report

    def log_prediction_images(self, writer, step):
        """TensorBoard images of the first validation clip (the paper's Figure 3) and its
        filters (:func:`~dynamonet_tf.training.figures.log_prediction_images`)."""
        files = self.config.data.val_files or self.config.data.eval_files
        if not files or model_kind(self.config) == "classifier":
            return
        frames, targets, _ = next(self._eval_clips(1, files))
        log_prediction_images(
            writer, step, frames[:1], self.model(frames[:1], training=False), targets
        )

    # ------------------------------------------------------------------ the loop

    def _check_finite_weights(self):
        if not all_finite(self.model.weights):
            raise TrainingError(
                "the model holds non-finite weights at step "
                f"{int(self.optimizer.iterations.numpy())}; nothing was saved and the last good "
                f"checkpoint is kept: {self.manager.latest_checkpoint}. "
                "Lower optimizer.base_learning_rate or check the data."
            )

    def _save(self):
        """Saves checkpoints/ckpt-<step> and notes its epoch in checkpoints/steps.json."""
        self._check_finite_weights()
        step = int(self.optimizer.iterations.numpy())
        self.manager.save(checkpoint_number=step)
        # Saved at an epoch's end (the epoch counter already moved on) or part-way through.
        complete = int(self.step_in_epoch.numpy()) == 0
        epoch = int(self.epoch.numpy()) + (0 if complete else 1)
        record_checkpoint_step(self.run, step, epoch, complete, self.manager.checkpoints)

    def _end_epoch(self, logs):
        """Steps the plateau schedule, saves best/ when the validation loss is the lowest
        yet (as ``ckpt-<step>``, the step of this epoch's log.csv row, with best/best.json),
        and checkpoints the epoch's end. Returns the best/ checkpoint saved, or None."""
        val_loss = logs.get("val_loss")
        saved_best = None
        if val_loss is not None:
            if val_loss < float(self.best_val_loss.numpy()):
                self.best_val_loss.assign(val_loss)
                self.plateau_wait.assign(0)
                self._check_finite_weights()
                step = int(self.optimizer.iterations.numpy())
                saved_best = self.best_manager.save(checkpoint_number=step)
                record_best(self.run, step, int(self.epoch.numpy()) + 1, float(val_loss))
            else:
                self.plateau_wait.assign_add(1)
                optimizer = self.config.optimizer
                if (
                    optimizer.schedule == "plateau"
                    and self.plateau_wait.numpy() > optimizer.plateau_patience
                ):
                    floor = optimizer.min_learning_rate / max(self.schedule.initial, 1e-30)
                    self.schedule.plateau_scale.assign(
                        max(
                            floor,
                            float(self.schedule.plateau_scale.numpy()) * optimizer.plateau_factor,
                        )
                    )
                    self.plateau_wait.assign(0)
        self.epoch.assign_add(1)
        self.step_in_epoch.assign(0)
        self.epoch_progress.assign("")
        self._save()
        return saved_best

    def train(self):
        """Runs the remaining epochs; returns the final report (also in ``report.json``).

        Releases the model dir at its end, whether it finishes or raises (:meth:`close`): a
        new Trainer resumes the run. The session's end (finished, failed or interrupted) is
        recorded in run.json and train.log first."""
        if not self._lock.held:
            raise TrainingError(
                f"this Trainer has released {self.model_dir} (train() ended or close() was "
                "called); make a new Trainer to resume the run."
            )
        try:
            self._begin_session()
            with self._session.tee():
                report = self._train_reading_shards()
        except BaseException as error:
            self._end_session(error)
            raise
        else:
            self._end_session()
            return report
        finally:
            self.close()

    def _begin_session(self):
        """Records where the session starts from in run.json, and says it when resuming."""
        step = int(self.optimizer.iterations.numpy())
        resumed_from = (
            os.path.relpath(self.resumed_from, self.run.root) if self.resumed_from else None
        )
        self._session.update(
            resumed_from=resumed_from,
            initialised_from=self.init_report["source"] if self.init_report else None,
            start_step=step,
        )
        if resumed_from:
            self._say(
                f"resuming from {resumed_from}: step {step}, epoch "
                f"{int(self.epoch.numpy()) + 1} of {self.config.train.epochs} "
                f"({int(self.step_in_epoch.numpy())} of its "
                f"{self.config.train.steps_per_epoch} steps done)"
            )

    def _train_reading_shards(self):
        data = self.config.data
        patterns = [p for p in (data.train_files, data.val_files, data.eval_files) if p]
        try:
            with reading_shards(patterns):
                return self._train()
        except ShardError as error:
            raise TrainingError(
                f"{error}. The last checkpoint is kept: {self.manager.latest_checkpoint}."
            ) from None
        except tf.errors.InvalidArgumentError as error:
            if UNLABELED_MESSAGE not in (error.message or ""):
                raise
            raise TrainingError(
                f"train.stage {self.config.train.stage!r} learns from labels, but a video of "
                f"data.train_files {data.train_files} has none (label index {UNLABELED}); "
                "prepare the dataset again with its labels, or pretrain on it."
            ) from None

    def _train(self):
        train = self.config.train
        writer = tf.summary.create_file_writer(str(self.run.tensorboard))
        while int(self.epoch.numpy()) < train.epochs:
            epoch = int(self.epoch.numpy())
            skip = int(self.step_in_epoch.numpy())
            iterator = iter(self._epoch_dataset(epoch, skip))
            bar = keras.utils.Progbar(
                train.steps_per_epoch, verbose=1 if self.progress else 0, unit_name="step"
            )
            bar.update(skip)
            # Carried over from the checkpoint when the epoch resumes part-way.
            carried = json.loads(self.epoch_progress.numpy().decode() or "{}") if skip else {}
            totals, balance = carried.get("totals", {}), carried.get("balance", [])
            seconds_before, started = carried.get("seconds", 0.0), time.perf_counter()
            for step in range(skip, train.steps_per_epoch):
                measure = self._balance_step is not None and (
                    int(self.optimizer.iterations.numpy()) % train.balance_every_steps == 0
                )
                step_function = self._balance_step if measure else self._train_step
                sums = {k: float(v) for k, v in step_function(iterator).items()}
                norms = {k: sums.pop(k) for k in [k for k in sums if k.startswith(NORM_PREFIX)]}
                if not math.isfinite(sums["loss"]):
                    raise TrainingError(
                        f"the loss became {sums['loss']} at epoch {epoch}, step {step}; training "
                        "stopped. The last good checkpoint is kept: "
                        f"{self.manager.latest_checkpoint}. "
                        "Lower optimizer.base_learning_rate or check the data."
                    )
                for name, value in sums.items():
                    totals[name] = totals.get(name, 0.0) + value
                self.step_in_epoch.assign(step + 1)
                iterations = int(self.optimizer.iterations.numpy())
                rate = float(self.schedule(iterations))
                bar.update(step + 1, [("loss", sums["loss"] / sums["examples"]), ("lr", rate)])
                with writer.as_default(step=iterations):
                    tf.summary.scalar("train/loss", sums["loss"] / sums["examples"])
                    tf.summary.scalar("train/learning_rate", rate)
                    if measure:
                        balance.append(gradient_shares(norms))
                        for name, value in {**norms, **balance[-1]}.items():
                            tf.summary.scalar(f"balance/{name}", value)
                if (
                    step + 1
                ) % train.checkpoint_every_steps == 0 and step + 1 < train.steps_per_epoch:
                    seconds = seconds_before + time.perf_counter() - started
                    self.epoch_progress.assign(
                        json.dumps({"totals": totals, "balance": balance, "seconds": seconds})
                    )
                    self._save()
            elapsed = seconds_before + time.perf_counter() - started
            logs = _averages(totals, prefix="")
            logs.update(self.balance_monitor.epoch_logs(balance, logs, epoch))
            logs["clips_per_second"] = totals.get("examples", 0.0) / max(elapsed, 1e-9)
            logs["learning_rate"] = float(self.schedule(int(self.optimizer.iterations.numpy())))
            logs.update(self.validate())
            with writer.as_default(step=int(self.optimizer.iterations.numpy())):
                for name, value in logs.items():
                    tf.summary.scalar(f"epoch/{name}", value)
            self.log_prediction_images(writer, int(self.optimizer.iterations.numpy()))
            step = int(self.optimizer.iterations.numpy())
            append_epoch_log(self.run.log, dict(epoch=epoch + 1, step=step, **logs))
            saved_best = self._end_epoch(logs)
            self._say(
                _epoch_summary(epoch + 1, train.epochs, step, logs)
                + (
                    f"; lowest val_loss yet: saved {self.run.best.name}/{checkpoint_name(step)}"
                    if saved_best
                    else ""
                )
            )
        writer.flush()
        report = self.final_report()
        write_json(self.run.report, report)
        return report

    def final_report(self):
        report = {"stage": self.config.train.stage, "steps": int(self.optimizer.iterations.numpy())}
        if self.init_report:
            report["initialised_from"] = self.init_report["source"]
        report.update(self.validate())
        shares = mean_gradient_shares(read_epoch_log(self.run.log))
        if shares:
            report["gradient_shares"] = shares
        if self.config.data.eval_files and model_kind(self.config) != "classifier":
            # Joint and finetune models too: does classification training keep the predictor?
            report["frame_prediction"] = self.frame_prediction_report()
        if self.config.data.eval_files and self.config.train.labeled:
            report["video_accuracy"] = self.video_accuracy_report()
        if self.balance_monitor.warnings:
            report["warnings"] = list(self.balance_monitor.warnings)
        return report

    def video_accuracy_report(self):
        """Video-level accuracy on the eval set: the paper's protocol (every T-frame clip,
        centre crop, softmax averaged per video), as ``evaluate.py`` computes it."""
        data = self.config.data
        report = evaluate_clips(
            model_logits(self.model),
            self._eval_dataset(data.num_frames, data.eval_files),
            class_names(data.eval_files, data.num_classes),
        )
        # Warned, not refused: the run is finished and its report worth keeping.
        checked = check_videos_read(data.eval_files, report["videos"], allow_missing=True)
        for warning in checked.get("warnings", ()):
            self._say(f"warning: {warning}", stderr=True)
        return {
            k: report[k] for k in ("videos", "clips", *HEADLINE, "video_top5_trivial", "per_class")
        } | checked


# The logs an epoch's line shows, when measured.
_SUMMARY = (
    "loss",
    "val_loss",
    "top1_accuracy",
    "val_top1_accuracy",
    "learning_rate",
    "clips_per_second",
)


def _epoch_summary(epoch, epochs, step, logs):
    """``epoch 2/10 (step 200): loss 0.0123, val_loss 0.0150, ...``: an epoch's line."""
    shown = ", ".join(f"{name} {logs[name]:.4g}" for name in _SUMMARY if name in logs)
    return f"epoch {epoch}/{epochs} (step {step}): {shown}"


def _first_names(names, count=3):
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def _averages(totals, prefix):
    examples = totals.get("examples", 0.0)
    averages = {}
    for name, value in totals.items():
        if name == "examples" or not examples:
            continue
        label = {"top1_correct": "top1_accuracy", "top5_correct": "top5_accuracy"}.get(name, name)
        averages[prefix + label] = value / examples
    return averages
