"""Prediction consistency under small translations and perturbation sequences.

- `shift_consistency` (Zhang 2019): two random shifts per image, fraction whose top-1 agrees.
- `translation_sensitivity` (Azulay & Weiss 2019): over diagonal 1-pixel shifts, the probability
  that top-1 changes and the mean absolute change of the top probability.
- `flip_probability` (ImageNet-P): fraction of frame pairs whose top-1 differs.

A shift by (dy, dx) is a window of the image's size cut at offset (dy, dx) from the image padded at
the bottom and right by symmetric reflection (so the model sees its usual input size; Zhang and
Azulay-Weiss cut windows out of larger images). Offsets and noise are drawn per image, keyed by
(seed, example index), so they do not depend on batching or workers (the reference scripts share
one offset per batch and are unseeded).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from evaluation import filters

# Zhang's 32 of 256 px max shift, Azulay-Weiss' 8 diagonal steps, ImageNet-P's difficulty-1
# Gaussian noise (sigma 0.03) with 10 noisy frames per image.
SHIFT_FRACTION = 32 / 256
TRANSLATION_STEPS = 8
NOISE_SIGMA, NOISE_FRAMES = 0.03, 10
# views per image: two random shifts, the diagonal shifts 0..8 (shift 0 is the image itself,
# ImageNet-P's first frame), then the noisy frames
NUM_VIEWS = 2 + TRANSLATION_STEPS + 1 + NOISE_FRAMES
SHIFT_STREAM, NOISE_STREAM = 11, 12


def shift_windows(images, dy, dx, max_shift: int) -> tf.Tensor:
    """Crops each image's window at offset (dy[i], dx[i]) of its padded copy.

    Args:
        images: uint8 NHWC batch with static H, W.
        dy, dx: integer arrays or tensors [N] in [0, max_shift].
        max_shift: bottom/right padding.

    Returns:
        uint8 NHWC batch of the input's size.
    """
    x = filters.to_static_nhwc(images)
    h, w = x.shape[1], x.shape[2]
    padded = filters.pad(x, (0, max_shift), (0, max_shift), "symmetric")
    rows = tf.cast(tf.convert_to_tensor(dy), tf.int32)[:, None] + tf.range(h)[None]
    cols = tf.cast(tf.convert_to_tensor(dx), tf.int32)[:, None] + tf.range(w)[None]
    return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)


def _per_example(seed: int, stream: int, indices, shape, draw) -> tf.Tensor:
    """`draw(shape, key)` for each example with key (seed, stream, example index)."""
    key = tf.constant([seed, stream], tf.int64)
    return tf.map_fn(
        lambda i: draw(shape, tf.random.experimental.stateless_fold_in(key, i)),
        tf.cast(indices, tf.int64),
        fn_output_signature=tf.TensorSpec(shape, tf.float32),
    )


def views(images, indices, seed: int) -> tf.Tensor:
    """The consistency suite's inputs for each image, random numbers keyed per example.

    Args:
        images: uint8 [N, H, W, C] with static H, W, C.
        indices: int64 [N] global example indices.
        seed: the evaluation's seed.

    Returns:
        uint8 [N, NUM_VIEWS, H, W, C]: two random shifts of at most `SHIFT_FRACTION` of H, the
        diagonal shifts 0..TRANSLATION_STEPS, the images plus Gaussian noise (NOISE_FRAMES).
    """
    x = filters.to_static_nhwc(images)
    h = x.shape[1]
    max_shift = max(1, round(h * SHIFT_FRACTION))
    offsets = _per_example(
        seed, SHIFT_STREAM, indices, [4], lambda s, k: tf.random.stateless_uniform(s, k)
    )
    offsets = tf.cast(tf.floor(offsets * (max_shift + 1)), tf.int32)
    out = [shift_windows(x, offsets[:, 2 * j], offsets[:, 2 * j + 1], max_shift) for j in (0, 1)]
    n = tf.shape(x)[0]
    for c in range(TRANSLATION_STEPS + 1):
        out.append(shift_windows(x, tf.fill([n], c), tf.fill([n], c), TRANSLATION_STEPS))
    xf = tf.cast(x, tf.float32) / 255.0
    noise = _per_example(
        seed,
        NOISE_STREAM,
        indices,
        [NOISE_FRAMES, *x.shape[1:]],
        lambda s, k: tf.random.stateless_normal(s, k, stddev=NOISE_SIGMA),
    )
    for k in range(NOISE_FRAMES):
        noisy = tf.clip_by_value(xf + noise[:, k], 0, 1)
        out.append(tf.cast(tf.floor(noisy * 255), tf.uint8))
    return tf.stack(out, axis=1)


class ConsistencySums:
    """Streams `views`' predictions into per-example counts that add across batches and workers."""

    KEYS = ("n", "shift_agree", "top1_changes", "abs_change", "noise_flips")

    def __init__(self):
        self.sums = dict.fromkeys(self.KEYS, 0.0)

    def update(self, probs) -> None:
        """Adds [N, NUM_VIEWS, C] probabilities of `views`' images."""
        p = np.asarray(probs, np.float64)
        if p.shape[0] == 0:
            return
        top = p.argmax(-1)
        seq = p[:, 2 : 3 + TRANSLATION_STEPS].transpose(1, 0, 2)  # [T, N, C]
        jagged = translation_sensitivity(seq)
        frames = np.concatenate([top[:, 2:3], top[:, 3 + TRANSLATION_STEPS :]], axis=1)
        n, pairs = p.shape[0], TRANSLATION_STEPS * p.shape[0]
        self.sums["n"] += n
        self.sums["shift_agree"] += float(np.sum(top[:, 0] == top[:, 1]))
        self.sums["top1_changes"] += jagged["p_top1_change"] * pairs
        self.sums["abs_change"] += jagged["mean_abs_change"] * pairs
        self.sums["noise_flips"] += flip_probability(frames, mode="noise") * n

    def state(self) -> dict[str, np.ndarray]:
        return {"consistency": np.array([self.sums[k] for k in self.KEYS])}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.sums = dict(zip(self.KEYS, (float(v) for v in state["consistency"]), strict=True))

    def result(self) -> dict:
        """The report's consistency block (fractions over all examples / frame pairs)."""
        n = self.sums["n"]
        return {
            "shift_consistency": self.sums["shift_agree"] / n,
            "p_top1_change": self.sums["top1_changes"] / (TRANSLATION_STEPS * n),
            "mean_abs_change": self.sums["abs_change"] / (TRANSLATION_STEPS * n),
            "flip_probability_noise": self.sums["noise_flips"] / n,
            "settings": {
                "max_shift_fraction": SHIFT_FRACTION,
                "translation_steps": TRANSLATION_STEPS,
                "noise_sigma": NOISE_SIGMA,
                "noise_frames": NOISE_FRAMES,
            },
        }


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
