"""Per-image random numbers for the corruptions: image i's draws depend only on its own seed.

TF's stateless random ops take one seed per call, so a batch drawn in one call ties every image's
noise to its position in the batch (and to the batch size). Here each image has its own int64 seed,
used as the key of the counter-based Threefry-2x32 generator that the augmentation pipeline already
uses (`augment.counter_random`); the counter is (element index // 2, draw word), each output pair
giving two elements. A whole batch draws in one vectorised pass, XLA-compiled once per draw size
and shared by all corruptions and severities (inlined where the caller is itself XLA-compiled), and
an image's numbers are the same in any batch.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from augment.counter_random import threefry2x32


def _keys(seeds: tf.Tensor) -> tf.Tensor:
    """Threefry keys uint32 [2, N, 1] from int64 seeds [N] (the seed's two 32-bit halves)."""
    return tf.transpose(tf.bitcast(tf.cast(seeds, tf.int64), tf.uint32))[:, :, None]


def _bits(seeds: tf.Tensor, word: tf.Tensor, count: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Both uint32 [N, count] words of Threefry(key = seed_i, counter = (e // 2, word)) for each
    element e < count, and whether e is odd ([count] bool): e takes word e % 2 of its pair.

    Each element computes its pair itself: a layout of interleaved pairs (or a slice to an odd
    count) keeps XLA:CPU from vectorising, up to 4x slower than hashing twice.
    """
    n = tf.shape(seeds)[0]
    element = tf.cast(tf.range(count), tf.uint32)
    pair = tf.broadcast_to(tf.bitwise.right_shift(element, 1)[None], tf.stack([n, count]))
    counter = tf.stack([pair, tf.fill(tf.shape(pair), tf.cast(word, tf.uint32))], axis=-1)
    bits = threefry2x32(_keys(seeds), counter)
    return bits[..., 0], bits[..., 1], tf.bitwise.bitwise_and(element, 1) == 1


def _unit_float(bits: tf.Tensor) -> tf.Tensor:
    # the top 24 bits give every float32 multiple of 2**-24 in [0, 1) with equal probability
    return tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)), tf.float32) * 2.0**-24


# XLA fuses Threefry's ~100 integer ops per pair into one pass (eager: one pass per op).
@tf.function(jit_compile=True, autograph=False)
def _uniform_xla(seeds, word, count: int):
    first, second, odd = _bits(seeds, word, count)
    return _unit_float(tf.where(odd, second, first))


def _cos_2pi(u: tf.Tensor) -> tf.Tensor:
    """cos(2 pi u) to ~2e-7: XLA:CPU's sin and cos cost 5x Eigen's (most of a Box-Muller draw).

    u is reduced to a in [0, 1/4] with cos(2 pi u) = +-cos(2 pi a); there Taylor to x^12 errs
    below 1e-8. Exact reduction for u a multiple of 2**-24 in [-1, 1] (what the draws pass).
    """
    a = tf.abs(u - tf.round(u))
    flip = a > 0.25
    x2 = tf.square((2 * np.pi) * tf.where(flip, 0.5 - a, a))
    poly = 0.0
    for k in range(6, -1, -1):
        poly = poly * x2 + (-1) ** k / math.factorial(2 * k)
    return tf.where(flip, -poly, poly)


@tf.function(jit_compile=True, autograph=False)
def _normal_xla(seeds, word, count: int):
    # Box-Muller, both outputs of each pair: r cos(2 pi u), r sin(2 pi u) = r cos(2 pi (u - 1/4))
    first, second, odd = _bits(seeds, word, count)
    radius = tf.sqrt(-2.0 * tf.math.log(1.0 - _unit_float(first)))  # 1 - u in (0, 1]
    return radius * _cos_2pi(_unit_float(second) - tf.where(odd, 0.25, 0.0))


# a scalar seed's images get seeds seed * 2**20 + i: distinct for batches below 2**20 images, and
# cheap (a call-time Threefry pass cost more than some corruptions); Threefry hashes the key.
SCALAR_SEED_STRIDE = 2**20


def image_seeds(seed, n) -> tf.Tensor:
    """The per-image seeds a scalar seed stands for: seed * 2**20 + i for image i.

    Args:
        seed: int (or int scalar tensor).
        n: batch size (int or scalar tensor), below 2**20.

    Returns:
        int64 [n] (wrapping around like int64 arithmetic); entry i depends only on (seed, i).
    """
    if isinstance(seed, (int, np.integer)) and isinstance(n, (int, np.integer)):
        wrapped = [(int(seed) * SCALAR_SEED_STRIDE + i + 2**63) % 2**64 - 2**63 for i in range(n)]
        return tf.constant(wrapped, tf.int64)
    return tf.cast(seed, tf.int64) * SCALAR_SEED_STRIDE + tf.range(n, dtype=tf.int64)


class ImageRandom:
    """Draws [N, ...] random tensors whose row i depends only on seeds[i], the stream and the draw.

    Args:
        seeds: int64 [N] per-image seeds.
        stream: separates the draws of different corruptions / severities (int or int32 scalar
            tensor, below 2**24).
    """

    def __init__(self, seeds: tf.Tensor, stream):
        self.seeds = tf.cast(seeds, tf.int64)
        self.stream = stream
        self._draws = 0

    @property
    def batch_size(self) -> tf.Tensor:
        """N, the number of images (a scalar tensor)."""
        return tf.shape(self.seeds)[0]

    def _next_word(self) -> tf.Tensor:
        self._draws += 1
        return tf.cast(self.stream * 256 + self._draws, tf.uint32)

    def _shaped(self, flat: tf.Tensor, shape) -> tf.Tensor:
        return tf.reshape(flat, tf.stack([self.batch_size, *shape]))

    def uniform(self, shape, lo=0.0, hi=1.0) -> tf.Tensor:
        """float32 U[lo, hi) of shape [N, *shape] (24-bit resolution)."""
        shape = [int(d) for d in shape]
        u = _uniform_xla(self.seeds, self._next_word(), int(np.prod(shape)))
        return self._shaped(lo + (hi - lo) * u, shape)

    def integers(self, shape, lo: int, hi: int) -> tf.Tensor:
        """int32 uniform on lo..hi-1, shape [N, *shape]."""
        return tf.cast(tf.floor(self.uniform(shape, lo, hi)), tf.int32)

    def normal(self, shape, mean=0.0, std=1.0) -> tf.Tensor:
        """float32 N(mean, std) of shape [N, *shape] (Box-Muller)."""
        shape = [int(d) for d in shape]
        z = _normal_xla(self.seeds, self._next_word(), int(np.prod(shape)))
        return self._shaped(mean + std * z, shape)
