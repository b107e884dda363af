"""Prediction consistency under small translations and perturbation sequences.

- `shift_consistency` (Zhang 2019): two random shifts per image, fraction whose top-1 agrees.
- `translation_sensitivity` (Azulay & Weiss 2019): over diagonal 1-pixel shifts, the probability
  that top-1 changes and the mean absolute change of the top probability.
- `flip_probability` (ImageNet-P): fraction of frame pairs whose top-1 differs.

A shift by (dy, dx) is a window of the image's size cut at offset (dy, dx) from the image padded at
the bottom and right by symmetric reflection (so the model sees its usual input size; Zhang and
Azulay-Weiss cut windows out of larger images). Offsets are drawn per image, seeded (the reference
scripts share one offset per batch and are unseeded).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from evaluation import filters

PredictFn = Callable[[tf.Tensor], np.ndarray]


def shift_windows(images, dy, dx, max_shift: int) -> tf.Tensor:
    """Crops each image's window at offset (dy[i], dx[i]) of its padded copy.

    Args:
        images: uint8 NHWC batch with static H, W.
        dy, dx: int arrays [N] in [0, max_shift].
        max_shift: bottom/right padding.

    Returns:
        uint8 NHWC batch of the input's size.
    """
    x = filters.to_static_nhwc(images)
    h, w = x.shape[1], x.shape[2]
    padded = filters.pad(x, (0, max_shift), (0, max_shift), "symmetric")
    rows = tf.constant(np.asarray(dy)[:, None] + np.arange(h)[None], tf.int32)
    cols = tf.constant(np.asarray(dx)[:, None] + np.arange(w)[None], tf.int32)
    return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)


def shift_consistency_counts(
    predict: PredictFn, images, max_shift: int, rng: np.random.Generator
) -> tuple[int, int]:
    """(agreeing, total) top-1 pairs under two random shifts per image (Zhang's consistency)."""
    n = int(images.shape[0])
    off = rng.integers(0, max_shift + 1, size=(2, 2, n))
    a = predict(shift_windows(images, off[0, 0], off[0, 1], max_shift)).argmax(-1)
    b = predict(shift_windows(images, off[1, 0], off[1, 1], max_shift)).argmax(-1)
    return int(np.sum(a == b)), n


def translation_sequence(predict: PredictFn, images, steps: int = 8) -> np.ndarray:
    """Probabilities for the diagonal shifts 0..steps, shape [steps + 1, N, C]."""
    n = int(images.shape[0])
    return np.stack(
        [
            predict(shift_windows(images, np.full(n, c), np.full(n, c), steps))
            for c in range(steps + 1)
        ]
    )


def translation_sensitivity(probs_sequence) -> dict[str, float]:
    """Azulay & Weiss' jaggedness over consecutive frames of [T, N, C] probabilities.

    Returns:
        {"p_top1_change": mean 1[argmax p_t != argmax p_t+1],
         "mean_abs_change": mean |p_t[k*] - p_t+1[k*]| with k* = argmax p_t}.
    """
    p = np.asarray(probs_sequence, np.float64)
    if p.ndim != 3 or p.shape[0] < 2:
        raise ValueError(f"need [T >= 2, N, C] probabilities, got shape {p.shape}")
    top = p.argmax(-1)
    k = top[:-1]
    before = np.take_along_axis(p[:-1], k[..., None], -1)[..., 0]
    after = np.take_along_axis(p[1:], k[..., None], -1)[..., 0]
    return {
        "p_top1_change": float(np.mean(top[:-1] != top[1:])),
        "mean_abs_change": float(np.mean(np.abs(before - after))),
    }


FLIP_MODES = ("temporal", "noise")


def flip_probability(predictions, mode: str = "temporal") -> float:
    """ImageNet-P flip probability of top-1 predictions [m sequences, n frames] (difficulty 1).

    Args:
        predictions: integer top-1 labels, shape [m, n], n >= 2.
        mode: "temporal" compares consecutive frames, "noise" compares every frame with the first.

    Returns:
        mean over sequences of the fraction of compared pairs whose top-1 differs.
    """
    pred = np.asarray(predictions)
    if pred.ndim != 2 or pred.shape[1] < 2:
        raise ValueError(f"predictions must be [m, n >= 2], got shape {pred.shape}")
    if mode == "temporal":
        flips = pred[:, 1:] != pred[:, :-1]
    elif mode == "noise":
        flips = pred[:, 1:] != pred[:, :1]
    else:
        raise ValueError(f"unknown flip mode {mode!r}; allowed: {FLIP_MODES}")
    return float(np.mean(flips.mean(axis=1)))
