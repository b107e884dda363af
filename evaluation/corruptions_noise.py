"""ImageNet-C noise corruptions: Gaussian, shot (Poisson), impulse (salt & pepper) and speckle.

Corruptions take the uint8 NHWC RGB batch, the severity index s (0..4) and a per-image
`ImageRandom`, and return float values on the 0..255 scale (truncated by the caller) or uint8.
Each noise corruption is one XLA kernel (noise and truncation fused, the random draw mostly by the
shared draw kernel just before) with the severity's parameter as a tensor, so one compilation per
image size serves all five severities.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf
from scipy.special import pdtr

from evaluation.corruption_random import ImageRandom

GAUSSIAN_SIGMAS = (0.08, 0.12, 0.18, 0.26, 0.38)
SHOT_RATES = (60, 25, 12, 5, 3)
IMPULSE_AMOUNTS = (0.03, 0.06, 0.09, 0.17, 0.27)
SPECKLE_SIGMAS = (0.15, 0.2, 0.35, 0.45, 0.6)
_POISSON_TABLE = 128  # counts 0..127: P(count > 127) < 1e-20 even at the largest rate (60)


def unit(images: tf.Tensor) -> tf.Tensor:
    """uint8 -> float32 in [0, 1]."""
    return tf.cast(images, tf.float32) / 255.0


def truncate(y: tf.Tensor) -> tf.Tensor:
    """Float 0..255 -> uint8 like the reference's np.uint8(...) (clip, then truncate)."""
    return tf.cast(tf.floor(tf.clip_by_value(y, 0, 255)), tf.uint8)


def _noise_kernel(draw: str, fuse_draw: bool = False):
    """Wraps body(x, r, param) -> float 0..255, with r the image-shaped "uniform" or "normal"
    draw, as an XLA kernel of (images, seeds, stream, param) -> uint8; the returned corruption
    picks param = table[s].

    The draw runs as its own kernel unless `fuse_draw`: fused, XLA:CPU recomputes the generator at
    every use of a value (shot noise's seven search steps: 2x slower) and runs Box-Muller 1.2x
    slower than drawing into a buffer. A uniform used once (impulse noise) fuses well.
    """

    def wrap(body):
        @tf.function(jit_compile=True, autograph=False)
        def kernel(images, seeds, stream, param, *drawn):
            x = unit(images)
            r = drawn[0] if drawn else getattr(ImageRandom(seeds, stream), draw)(x.shape[1:])
            return truncate(body(x, r, param))

        def corruption(images, s, rng: ImageRandom, table):
            stream = tf.constant(rng.stream, tf.int32)  # a tensor: no retracing per severity
            drawn = [] if fuse_draw else [getattr(rng, draw)(images.shape[1:])]
            return kernel(images, rng.seeds, stream, tf.constant(table[s], tf.float32), *drawn)

        return corruption

    return wrap


@_noise_kernel("normal")
def _gaussian(x, z, sigma):
    return tf.clip_by_value(x + sigma * z, 0, 1) * 255


def gaussian_noise(images, s, rng):
    return _gaussian(images, s, rng, GAUSSIAN_SIGMAS)


@functools.cache
def _poisson_cdf() -> np.ndarray:
    """Poisson CDFs P(count <= k) for rate = level / 255 * c: float32 [5 * 256 * 128], flat."""
    rates = np.arange(256)[:, None] / 255.0 * np.array(SHOT_RATES)[:, None, None]
    return pdtr(np.arange(_POISSON_TABLE), rates[..., None]).astype(np.float32).reshape(-1)


@_noise_kernel("uniform")
def _shot(x, u, severity):
    # Poisson(x * c) by inverting the CDF of the pixel's rate: x is a uint8 level / 255, so the
    # rate takes 256 values per severity and a 7-step binary search in a table replaces TF's
    # per-element sampler (slower than NumPy's). Exact up to the uniform's 2**-24 resolution.
    s = tf.cast(severity, tf.int32)
    level = tf.cast(tf.round(x * 255), tf.int32)
    row = (s * 256 + level) * _POISSON_TABLE
    cdf = tf.constant(_poisson_cdf())
    count = tf.zeros_like(level)
    step = _POISSON_TABLE // 2
    while step:
        count += tf.where(u >= tf.gather(cdf, row + count + step - 1), step, 0)
        step //= 2
    rate = tf.gather(tf.constant(SHOT_RATES, tf.float32), s)
    return tf.clip_by_value(tf.cast(count, tf.float32) / rate, 0, 1) * 255


def shot_noise(images, s, rng):
    return _shot(images, s, rng, range(5))


@_noise_kernel("uniform", fuse_draw=True)
def _impulse(x, u, amount):
    # skimage.util.random_noise(mode="s&p"): each value flipped with p=amount, salt/pepper 50/50;
    # one uniform decides both (below amount / 2: salt, below amount: pepper)
    return tf.where(u < amount / 2, 1.0, tf.where(u < amount, 0.0, x)) * 255


def impulse_noise(images, s, rng):
    return _impulse(images, s, rng, IMPULSE_AMOUNTS)


@_noise_kernel("normal")
def _speckle(x, z, sigma):
    return tf.clip_by_value(x + x * (sigma * z), 0, 1) * 255


def speckle_noise(images, s, rng):
    return _speckle(images, s, rng, SPECKLE_SIGMAS)
