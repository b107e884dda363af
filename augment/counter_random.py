"""Counter-based random numbers for whole batches: Threefry-2x32-20 (Salmon et al., SC 2011).

TF's stateless random ops take one seed per call, so per-element numbers for a batch cost one
call per element (in ``tf.data``, a map over elements, which costs more than the numbers). Threefry
maps ``(key, counter)`` to random bits with integer adds, rotations and xors, so the numbers of
element ``i`` depend only on ``(key, i)`` and a whole batch draws them in one vectorised pass. The
output equals Random123's and ``jax.random``'s ``threefry_2x32``.
"""

from __future__ import annotations

import tensorflow as tf

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA


def _rotate_left(x: tf.Tensor, bits: int) -> tf.Tensor:
    left = tf.bitwise.left_shift(x, tf.constant(bits, tf.uint32))
    return tf.bitwise.bitwise_or(left, tf.bitwise.right_shift(x, tf.constant(32 - bits, tf.uint32)))


def threefry2x32(key: tf.Tensor, counter: tf.Tensor) -> tf.Tensor:
    """Threefry-2x32 with 20 rounds.

    Args:
        key: uint32 ``[2]``.
        counter: uint32 ``[..., 2]``.

    Returns:
        uint32 ``[..., 2]`` random bits, one pair per counter.
    """
    schedule = (key[0], key[1], key[0] ^ key[1] ^ tf.constant(_PARITY, tf.uint32))
    x0 = counter[..., 0] + schedule[0]
    x1 = counter[..., 1] + schedule[1]
    for group in range(5):
        for bits in _ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = _rotate_left(x1, bits) ^ x0
        x0 = x0 + schedule[(group + 1) % 3]
        x1 = x1 + schedule[(group + 2) % 3] + tf.constant(group + 1, tf.uint32)
    return tf.stack([x0, x1], axis=-1)


def stream_key(seed: int, stream: int) -> tf.Tensor:
    """A uint32 ``[2]`` key for the random stream ``stream`` of ``seed`` (any Python ints)."""
    return tf.random.stateless_uniform(
        [2], tf.constant([seed, stream], tf.int64), minval=None, maxval=None, dtype=tf.uint32
    )


def uniform(key: tf.Tensor, indices: tf.Tensor, count: int) -> tf.Tensor:
    """``count`` U[0, 1) float32 numbers for each element index.

    Args:
        key: uint32 ``[2]``, from `stream_key`.
        indices: integer ``[N]`` element indices (below 2**32).
        count: numbers per element.

    Returns:
        float32 ``[N, count]``; row ``n`` depends only on ``key`` and ``indices[n]``.
    """
    pairs = (count + 1) // 2
    element = tf.broadcast_to(
        tf.cast(indices, tf.uint32)[:, None], tf.stack([tf.size(indices), pairs])
    )
    within = tf.broadcast_to(tf.cast(tf.range(pairs), tf.uint32)[None, :], tf.shape(element))
    bits = tf.reshape(threefry2x32(key, tf.stack([element, within], axis=-1)), [-1, 2 * pairs])
    # The top 24 bits give every float32 multiple of 2**-24 in [0, 1) with equal probability.
    mantissa = tf.cast(
        tf.bitwise.right_shift(bits[:, :count], tf.constant(8, tf.uint32)), tf.float32
    )
    return mantissa * (1.0 / (1 << 24))
