"""The input pipeline of distributed training: global batches, each replica's rows of them.

Every worker builds the same global batches (the augmentation policy keys its random draws to
each example's index in the global stream, and MixUp/CutMix partners are rows of the global
batch), then keeps its own replicas' rows and normalises only those. So the examples a replica
sees do not depend on how many workers and devices share the global batch.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

import augment
from recipes.datasets import DataSplits
from recipes.objectives import Stability, noisy_copy


def replica_dataset(
    batches: tf.data.Dataset,
    context: tf.distribute.InputContext,
    global_batch: int,
    finish: Callable,
) -> tf.data.Dataset:
    """This worker's replicas' rows of each global batch, in replica order, passed to `finish`.

    Replica r of N gets rows [r*n/N, (r+1)*n/N) of each batch of n rows, so a partial last batch
    is spread too (a replica may get no rows). AugMix triplets are sliced view by view, so every
    replica holds whole triplets.

    Args:
        batches: `(batch index, (images or (clean, aug1, aug2), labels))` of global batches.
        context: from `distribute_datasets_from_function`.
        global_batch: the nominal global batch size (element index = batch index x this + row).
        finish: `(index of the first row, images, labels) -> element` for the replica.
    """
    replicas = context.num_replicas_in_sync
    local = replicas // context.num_input_pipelines
    first = context.input_pipeline_id * local

    # Named functions, not lambdas: AutoGraph converts a lambda from its source text and can pick
    # the wrong one when a statement holds several.
    def rows(index, batch, replica):
        images, labels = batch
        size = tf.shape(labels, tf.int64)[0]
        start, stop = replica * size // replicas, (replica + 1) * size // replicas
        sliced = tf.nest.map_structure(lambda t: t[start:stop], (images, labels))
        return (index * global_batch + start, *sliced)

    def whole_batch(index, batch):
        return rows(index, batch, tf.constant(0, tf.int64))

    def local_replicas(index, batch):
        def replica_rows(replica):
            return rows(index, batch, replica)

        return tf.data.Dataset.range(first, first + local).map(replica_rows)

    sliced = batches.map(whole_batch) if replicas == 1 else batches.flat_map(local_replicas)
    return sliced.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def training_batches(
    splits: DataSplits, policy: augment.Policy, batch_size: int, seed: int
) -> tf.data.Dataset:
    """Global batches `(index, (images, one-hot labels))`: shuffled, repeated, augmented."""
    train = splits.train.shuffle(
        min(splits.train_size, 10_000), seed=seed, reshuffle_each_iteration=True
    ).repeat()
    return policy.apply(train, batch_size, num_classes=splits.num_classes, seed=seed).enumerate()


def evaluation_batches(
    dataset: tf.data.Dataset, num_classes: int, batch_size: int, limit: int | None
) -> tf.data.Dataset:
    """Global batches `(index, (images, one-hot labels))`, the first `limit` examples if given."""
    if limit is not None:
        dataset = dataset.take(limit)
    return (
        dataset.batch(batch_size)
        .map(lambda images, labels: (images, tf.one_hot(labels, num_classes)))
        .enumerate()
    )


def evaluation_finisher(normalize: Callable) -> Callable:
    """Normalises a replica's rows of a validation batch."""

    def finish(first_index, images, labels):
        return normalize(images), labels

    return finish


def training_finisher(
    normalize: Callable, triplets: bool, stability: Stability | None, seed: int
) -> Callable:
    """Normalises a replica's rows; stacks AugMix triplets; adds stability's noisy copy."""

    def finish(first_index, images, labels):
        clean = images[0] if triplets else images
        inputs = tf.concat([normalize(v) for v in images], 0) if triplets else normalize(images)
        if stability is not None:
            indices = first_index + tf.range(tf.shape(labels, tf.int64)[0])
            noisy = noisy_copy(clean, indices, stability.sigma, seed)
            inputs = (inputs, normalize(noisy))
        return inputs, labels

    return finish
