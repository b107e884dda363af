"""Stability training (Zheng, Song, Leung, Goodfellow, CVPR 2016): the KL term and its noise.

The training loss is `task_loss(f(x), y) + alpha * mean_i KL(p(x_i) || p(x'_i))` with
`x' = x + N(0, sigma^2)` per pixel; the task loss sees the clean batch only. Both f(x) and f(x')
come from the same weights and the gradient flows through both branches, as in the paper (no
stop-gradient on the clean branch).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

# Second seed word of the stateless noise RNG (any fixed value; distinct from other streams).
_NOISE_STREAM = 1503


def stability_loss(clean_logits, noisy_logits):
    """Per-example KL(p_clean || p_noisy) of the softmax distributions, in float32 or wider.

    Computed from log-softmax (no log of a rounded-to-zero probability):
    sum_k p_k (log p_k - log q_k), p = softmax(clean), q = softmax(noisy).

    Args:
        clean_logits: [B, K] logits of the clean batch (float16 is cast to float32, float64 kept).
        noisy_logits: [B, K] logits of the same batch with noise added.

    Returns:
        [B], >= 0 (up to rounding); multiply the mean by alpha (0.01 in the paper).
    """
    dtype = keras.backend.result_type(clean_logits.dtype, "float32")
    log_p = ops.log_softmax(ops.cast(clean_logits, dtype), axis=-1)
    log_q = ops.log_softmax(ops.cast(noisy_logits, dtype), axis=-1)
    return ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)


def gaussian_perturbation(images_0_255, sigma: float, seed) -> tf.Tensor:
    """x' = clip(x + N(0, (255 sigma)^2), 0, 255): the paper's noisy copy of a [0, 255] batch.

    sigma is on the [0, 1] image scale (0.04 in the paper), so the pixel-unit std is 255 sigma.
    The result is clipped to [0, 255] so that x' stays an image the model can meet (pixels at 0 or
    255 then see one-sided noise); it is not rounded, so the perturbation stays continuous.

    Args:
        images_0_255: float or uint8 batch with values in [0, 255] (before normalisation).
        sigma: noise std on the [0, 1] scale, finite and >= 0.
        seed: int, scalar int tensor (combined with a fixed stream id) or an int [2] tensor
            used as the stateless seed (e.g. tf.stack([base_seed, step]) for fresh noise per step).

    Returns:
        float32 tensor of the input's shape.
    """
    if not (math.isfinite(float(sigma)) and float(sigma) >= 0):
        raise ValueError(f"sigma must be a finite number >= 0 (on the [0, 1] scale), got {sigma!r}")
    x = tf.cast(images_0_255, tf.float32)
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(_NOISE_STREAM, tf.int64)])
    noise = tf.random.stateless_normal(tf.shape(x), seed, stddev=255.0 * float(sigma))
    return tf.clip_by_value(x + noise, 0.0, 255.0)
