"""ImageNet-C digital corruptions: contrast, elastic transform, pixelate, JPEG; and the colour ones
(brightness; extra: saturate) which share the HSV round trip.

Same calling convention as `evaluation.corruptions_noise`. Pixelate is an XLA kernel per
severity (its sizes change); JPEG calls libjpeg per image like the reference (via Pillow) does.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from evaluation import filters
from evaluation.corruptions_noise import unit


def _hsv_adjust(images, fn):
    hsv = tf.image.rgb_to_hsv(unit(images))
    hsv = fn(hsv)
    return tf.clip_by_value(tf.image.hsv_to_rgb(hsv), 0, 1) * 255


def brightness(images, s, rng):
    c = [0.1, 0.2, 0.3, 0.4, 0.5][s]
    return _hsv_adjust(
        images, lambda hsv: tf.concat([hsv[..., :2], tf.clip_by_value(hsv[..., 2:] + c, 0, 1)], -1)
    )


def saturate(images, s, rng):
    mult, add = [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)][s]

    def adjust(hsv):
        sat = tf.clip_by_value(hsv[..., 1:2] * mult + add, 0, 1)
        return tf.concat([hsv[..., :1], sat, hsv[..., 2:]], -1)

    return _hsv_adjust(images, adjust)


def contrast(images, s, rng):
    c = [0.4, 0.3, 0.2, 0.1, 0.05][s]
    x = unit(images)
    means = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    return tf.clip_by_value((x - means) * c + means, 0, 1) * 255


def elastic_warp(x: tf.Tensor, dy: tf.Tensor, dx: tf.Tensor) -> tf.Tensor:
    """`scipy.ndimage.map_coordinates(order=1, mode="reflect")` at (row + dy, col + dx), batched.

    Args:
        x: float NHWC; dy, dx: float [N, H, W] displacements in pixels.
    """
    h, w = x.shape[1], x.shape[2]
    r = tf.range(h, dtype=tf.float32)[None, :, None] + dy
    c = tf.range(w, dtype=tf.float32)[None, None, :] + dx

    def reflect(i, n):  # SciPy "reflect" = half-sample symmetric
        m = tf.math.floormod(i, 2 * n)
        return tf.where(m >= n, 2 * n - 1 - m, m)

    r0, c0 = tf.floor(r), tf.floor(c)
    fr, fc = (r - r0)[..., None], (c - c0)[..., None]
    r0, c0 = tf.cast(r0, tf.int32), tf.cast(c0, tf.int32)
    out = 0.0
    for ri, wr in ((r0, 1 - fr), (r0 + 1, fr)):
        for ci, wc in ((c0, 1 - fc), (c0 + 1, fc)):
            idx = tf.stack([reflect(ri, h), reflect(ci, w)], axis=-1)
            out += wr * wc * tf.gather_nd(x, idx, batch_dims=1)
    return out


def elastic_transform(images, s, rng):
    alpha = 250 * [0.05, 0.065, 0.085, 0.1, 0.12][s]
    x = unit(images)
    h, w = x.shape[1], x.shape[2]
    sigma = (h * 0.01, w * 0.01)
    max_d = h * 0.005

    noise = rng.uniform([h, w, 2], -max_d, max_d)  # dx and dy fields in one draw
    field = filters.skimage_gaussian(noise, sigma, mode="symmetric", truncate=3) * alpha
    dx, dy = field[..., 0], field[..., 1]
    return tf.clip_by_value(elastic_warp(x, dy, dx), 0, 1) * 255


@functools.cache
def pil_box_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's BOX resampling (precompute_coeffs with box_filter) as a few taps per output.

    Returns:
        (indices, weights), int32 / float32 [n_out, taps]: output o is sum_t w[o, t] * in[i[o, t]].
        A dense [n_out, n_in] matrix would cost n_in multiply-adds per output instead of ~2.
    """
    scale = n_in / n_out
    support = 0.5 * max(scale, 1.0)
    taps = []
    for o in range(n_out):
        center = (o + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        t = (np.arange(lo, hi) - center + 0.5) / max(scale, 1.0)
        wts = ((t > -0.5) & (t <= 0.5)).astype(np.float64)
        taps.append((np.arange(lo, hi), wts / wts.sum()))
    width = max(len(i) for i, _ in taps)
    indices = np.zeros((n_out, width), np.int32)
    weights = np.zeros((n_out, width), np.float32)
    for o, (i, wts) in enumerate(taps):
        indices[o, : len(i)], weights[o, : len(i)] = i, wts
    return indices, weights


PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)


@functools.cache
def _pixelate_taps(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Box-down-then-nearest-up along an axis of length n as taps per full-size pixel.

    Pillow's NEAREST upsampling picks small pixel floor((i + 0.5) * small / n) for pixel i, so
    composing it with the BOX taps of that small pixel gives taps [5, n, T] for every severity at
    the same shape: one compiled kernel serves all five (zero weights pad T).
    """
    per_severity = []
    for c in PIXELATE:
        small = int(n * c)
        indices, weights = pil_box_taps(n, small)
        pick = np.floor((np.arange(n) + 0.5) * (small / n)).astype(np.int64)
        per_severity.append((indices[pick], weights[pick]))
    width = max(i.shape[1] for i, _ in per_severity)
    indices = np.stack([np.pad(i, [(0, 0), (0, width - i.shape[1])]) for i, _ in per_severity])
    weights = np.stack([np.pad(w, [(0, 0), (0, width - w.shape[1])]) for _, w in per_severity])
    return indices.astype(np.int32), weights.astype(np.float32)


def pixelate(images, s, rng):
    rows, cols = (_pixelate_taps(n) for n in images.shape[1:3])
    return _pixelate_xla(images, rows[0][s], rows[1][s], cols[0][s], cols[1][s])


@tf.function(jit_compile=True)
def _pixelate_xla(images, row_index, row_weight, col_index, col_weight):
    # Pillow resizes horizontally then vertically, rounding to uint8 after each pass; the
    # nearest upsampling is folded into the taps, so both passes run at full size
    x = tf.cast(images, tf.float32)
    out = 0.0
    for t in range(col_index.shape[1]):
        out += tf.gather(x, col_index[:, t], axis=2) * col_weight[None, None, :, t, None]
    x = tf.floor(out + 0.5)
    out = 0.0
    for t in range(row_index.shape[1]):
        out += tf.gather(x, row_index[:, t], axis=1) * row_weight[None, :, t, None, None]
    return tf.cast(tf.floor(out + 0.5), tf.uint8)


def jpeg_compression(images, s, rng):
    quality = [25, 18, 15, 10, 7][s]

    # libjpeg(-turbo) per image, as Pillow does in the reference: no batched JPEG codec exists
    def roundtrip(image):
        data = tf.io.encode_jpeg(image, quality=quality)
        return tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")

    if tf.executing_eagerly():  # eager tf.map_fn builds a loop per call: slower than Python's
        return tf.stack([roundtrip(image) for image in images])
    spec = tf.TensorSpec(images.shape[1:], tf.uint8)
    return tf.map_fn(roundtrip, images, fn_output_signature=spec)
