"""The custom training loop under any `tf.distribute` strategy (one device, mirrored, multi-worker).

Keras 3's `model.fit` fails under `MultiWorkerMirroredStrategy` (keras-team/keras#20585), so the
recipes train with this loop everywhere. One step does what Keras' `train_step` does: forward
pass, loss scaled for the replicas (each replica's mean times its share of the global batch, so
the gradients all-reduced by the optimizer are the global batch's mean), `optimizer.scale_loss`
(loss scaling under mixed_float16), `apply_gradients`; the replica step is XLA-compiled exactly
when Keras would (`model.jit_compile` after `compile`). Training and validation sums (loss,
correct predictions, examples) are reduced over all replicas inside the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import tensorflow as tf

from recipes.objectives import Objective, cross_entropy
from recipes.progress import Progress
from recipes.run_dir import RunDirectory

SUM = tf.distribute.ReduceOp.SUM


def _correct(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Examples whose top logit is the (top) label's class, as Keras' CategoricalAccuracy."""
    hits = tf.equal(tf.argmax(labels, axis=-1), tf.argmax(logits, axis=-1))
    return tf.reduce_sum(tf.cast(hits, tf.float32))


def _sums(mean_loss: tf.Tensor, labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """[loss sum, correct predictions, examples] of a replica batch, float32 under any policy."""
    count = tf.cast(tf.shape(labels)[0], tf.float32)
    # An empty slice (the last batch over many replicas) adds zeros, not NaN.
    loss_sum = tf.math.multiply_no_nan(tf.cast(mean_loss, tf.float32), count)
    return tf.stack([loss_sum, _correct(labels, logits), count])


class TrainingLoop:
    """Compiled distributed train and validation steps for one model and optimizer.

    Args:
        strategy: the strategy whose scope holds the model and optimizer.
        model: the logits model.
        optimizer: the optimizer (a LossScaleOptimizer under mixed_float16).
        objective: the per-replica loss (`recipes.objectives.Objective`).
        global_batch: examples per step over all replicas.
        jit_compile: XLA-compile the replica step.
    """

    def __init__(
        self,
        strategy: tf.distribute.Strategy,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        objective: Objective,
        global_batch: int,
        jit_compile: bool = False,
    ):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.objective = objective
        self.global_batch = global_batch

        def replica_train_step(batch) -> tf.Tensor:
            inputs, labels = batch
            with tf.GradientTape() as tape:
                mean_loss, logits = objective(model, inputs, labels)
                count = tf.cast(tf.shape(labels)[0], mean_loss.dtype)
                loss = mean_loss * count / global_batch
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                scaled = optimizer.scale_loss(loss)
            variables = model.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables, strict=True))
            return _sums(mean_loss, labels, logits)

        def replica_test_step(batch) -> tf.Tensor:
            images, labels = batch
            logits = model(images, training=False)
            return _sums(cross_entropy(labels, logits), labels, logits)

        train_step = tf.function(replica_train_step, jit_compile=jit_compile, reduce_retracing=True)
        test_step = tf.function(replica_test_step, reduce_retracing=True)

        @tf.function
        def train_on(iterator) -> tf.Tensor:
            return strategy.reduce(SUM, strategy.run(train_step, args=(next(iterator),)), axis=None)

        @tf.function(reduce_retracing=True)
        def test_on(batch) -> tf.Tensor:
            return strategy.reduce(SUM, strategy.run(test_step, args=(batch,)), axis=None)

        self.train_on = train_on
        self.test_on = test_on

    def validate(self, dataset: tf.distribute.DistributedDataset) -> dict[str, float]:
        """Loss and accuracy over the whole (distributed, finite) validation dataset."""
        totals = tf.zeros([3])
        for batch in dataset:
            totals += self.test_on(batch)
        loss_sum, correct, count = totals.numpy().tolist()
        return {"val_accuracy": correct / max(count, 1.0), "val_loss": loss_sum / max(count, 1.0)}

    def run(
        self,
        train_data: tf.distribute.DistributedDataset,
        make_validation: Callable[[], tf.distribute.DistributedDataset],
        run_dir: RunDirectory,
        progress: Progress,
        *,
        epochs: int,
        initial_epoch: int,
        steps: int,
        best: float,
        on_epoch_saved: Callable[[int], None] = lambda epoch: None,
    ) -> float:
        """Trains epochs `initial_epoch`..`epochs - 1`; after each, the chief writes the run dir.

        Returns:
            The best validation accuracy seen (-inf if none).
        """
        iterator = iter(train_data)
        for epoch in range(initial_epoch, epochs):
            progress.start_epoch(epoch)
            totals = tf.zeros([3])
            for step in range(steps):
                totals += self.train_on(iterator)
                if progress.live:
                    progress.step(step + 1, _train_logs(totals))
            logs = _train_logs(totals) | self.validate(make_validation())
            if logs["val_accuracy"] > best:
                best = logs["val_accuracy"]
                run_dir.save_best(self.model)
            run_dir.save_checkpoint(self.model, self.optimizer, epoch + 1, best)
            run_dir.log_epoch(epoch, logs)
            on_epoch_saved(epoch + 1)
            progress.end_epoch(epoch, logs)
        return best


def _train_logs(totals: tf.Tensor) -> dict[str, float]:
    loss_sum, correct, count = totals.numpy().tolist()
    count = max(count, 1.0)
    return {"accuracy": correct / count, "loss": loss_sum / count}


def first_best(state: tuple[int, float] | None) -> tuple[int, float]:
    """(initial epoch, best accuracy) from a restored checkpoint, or a fresh start."""
    return state if state is not None else (0, -math.inf)
