"""`evaluate`'s input pipelines: every shifted input is computed in tf.data, ahead of the model.

The user's batches get their examples' global indices first (`indexed`), so every random number
(corruptions, consistency views, bootstrap weights) is keyed by (seed, example index) and the
results do not depend on the batch size, the number of replicas or workers, or the order in which
shards are seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from evaluation import bootstrap, consistency

ConditionFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # (uint8 batch, indices) -> uint8 batch
CONSISTENCY_BATCH = 16  # images per consistency element (x NUM_VIEWS model inputs)


def _as_dataset(dataset) -> tf.data.Dataset:
    if isinstance(dataset, tf.data.Dataset):
        return dataset
    if iter(dataset) is dataset:  # the suites read the data more than once
        raise ValueError(
            "dataset must be a tf.data.Dataset or a re-iterable collection of (images, labels) "
            "batches (e.g. a list), not a one-shot iterator or generator"
        )
    first = next(iter(dataset), None)
    if first is None:
        raise ValueError("the data set yielded no examples")
    images = tf.convert_to_tensor(first[0])
    spec = (
        tf.TensorSpec([None, *images.shape[1:]], images.dtype),
        tf.TensorSpec(None, tf.convert_to_tensor(first[1]).dtype),
    )
    return tf.data.Dataset.from_generator(lambda: iter(dataset), output_signature=spec)


def indexed(dataset) -> tf.data.Dataset:
    """(images, labels) batches -> (uint8 images, int64 labels [B], int64 global indices [B]).

    Args:
        dataset: tf.data.Dataset or re-iterable collection of (uint8 NHWC batch, labels).
    """
    data = _as_dataset(dataset)
    images_spec = data.element_spec[0]
    if images_spec.dtype != tf.uint8 or images_spec.shape.rank != 4:
        raise ValueError(f"images must be uint8 NHWC batches, got {images_spec}")
    if None in images_spec.shape[1:]:
        raise ValueError(f"images need a static height, width and channels, got {images_spec}")

    def add_indices(start, batch):
        images, labels = batch
        n = tf.cast(tf.shape(images)[0], tf.int64)
        labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
        return start + n, (images, labels, start + tf.range(n))

    return data.scan(tf.constant(0, tf.int64), add_indices)


def example_seeds(seed: int, indices: tf.Tensor) -> tf.Tensor:
    """One int64 corruption seed per example: seed * 2**32 + index (distinct for |seed| < 2**31)."""
    return tf.constant(seed, tf.int64) * (1 << 32) + tf.cast(indices, tf.int64)


def condition_stream(
    data: tf.data.Dataset, conditions: Sequence[ConditionFn], replicates: int, seed: int
) -> tf.data.Dataset:
    """One element per (batch, condition): (shifted images, labels, indices, condition id [B],
    uint8 bootstrap weights [B, replicates]), computed in parallel and prefetched."""
    k = len(conditions)

    def with_weights(images, labels, indices):
        weights = bootstrap.poisson_weights(seed, indices, replicates)
        return images, labels, indices, weights

    def per_condition(images, labels, indices, weights):
        ids = tf.data.Dataset.range(k)
        return ids.map(lambda c: (images, labels, indices, tf.cast(c, tf.int32), weights))

    def shifted(images, labels, indices, c, weights):
        branches = [lambda fn=fn: fn(images, indices) for fn in conditions]
        out = tf.ensure_shape(tf.switch_case(c, branches), images.shape)
        return out, labels, indices, tf.fill(tf.shape(indices), c), weights

    parallel = {"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": True}
    return (
        data.map(with_weights, **parallel)
        .flat_map(per_condition)
        .map(shifted, **parallel)
        .prefetch(tf.data.AUTOTUNE)
    )


def consistency_stream(data: tf.data.Dataset, seed: int) -> tf.data.Dataset:
    """(uint8 [b, NUM_VIEWS, H, W, C] views, indices [b]) for the consistency suite, prefetched."""
    return (
        data.map(lambda images, labels, indices: (images, indices))
        .unbatch()
        .batch(CONSISTENCY_BATCH)
        .map(
            lambda images, indices: (consistency.views(images, indices, seed), indices),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
