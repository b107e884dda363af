"""ImageNet-C digital corruptions: contrast, elastic transform, pixelate, JPEG; and the colour ones
(brightness; extra: saturate) which share the HSV round trip.

Same calling convention as `evaluation.corruptions_noise`. Pixelate is two XLA kernels per
severity (its sizes change); JPEG calls libjpeg per image like the reference (via Pillow) does.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from evaluation import filters
from evaluation.corruptions_noise import truncate, unit


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
    h, w = images.shape[1], images.shape[2]
    sigma = (h * 0.01, w * 0.01)
    max_d = h * 0.005

    noise = rng.uniform([h, w, 2], -max_d, max_d)  # dx and dy fields in one draw
    field = filters.skimage_gaussian(noise, sigma, mode="symmetric", truncate=3) * alpha
    return _elastic_warp_xla(images, field)


# the warp's four gathers and blends fused: 20x faster than op by op
@tf.function(jit_compile=True, autograph=False)
def _elastic_warp_xla(images, field):
    y = elastic_warp(unit(images), field[..., 1], field[..., 0])
    return truncate(tf.clip_by_value(y, 0, 1) * 255)


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
def _pixelate_axis(n: int, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pillow's BOX taps from n to int(n * c) pixels, and its NEAREST pick back to n pixels.

    Pillow's NEAREST resize (ImagingScaleAffine) steps a float64 position by small / n from
    small / (2n) and truncates it. Accumulated as there: at exact ties ((i + 0.5) * small / n an
    integer) the floor of the product can pick the next pixel.
    """
    small = int(n * c)
    indices, weights = pil_box_taps(n, small)
    step, position, pick = small / n, small / n * 0.5, []
    for _ in range(n):
        pick.append(int(position))
        position += step
    return indices, weights, np.array(pick, np.int32)


def pixelate(images, s, rng):
    return _pixelate_graph(images, PIXELATE[s])


# Two XLA kernels per severity and image size, their taps built in: fused into one, XLA:CPU
# recomputes each output pixel's box sum instead of reading it from the small image, 3x slower.
# One graph function runs both: one dispatch from Python instead of two, 10-30% faster.
@tf.function(autograph=False)
def _pixelate_graph(images, c: float):
    return _nearest_up_xla(_box_down_xla(images, c), tuple(images.shape[1:3]), c)


@tf.function(jit_compile=True, autograph=False)
def _box_down_xla(images, c: float):
    # Pillow resizes horizontally then vertically, rounding to uint8 after each pass
    x = images
    for axis in (2, 1):
        index, weight, _ = _pixelate_axis(images.shape[axis], c)
        weight = weight.reshape(weight.shape + (1,) * (3 - axis))  # broadcast over later axes
        x = tf.cast(x, tf.float32)
        x = tf.add_n(
            [tf.gather(x, index[:, t], axis=axis) * weight[:, t] for t in range(index.shape[1])]
        )
        x = tf.cast(tf.floor(x + 0.5), tf.uint8)
    return x


@tf.function(jit_compile=True, autograph=False)
def _nearest_up_xla(small, size: tuple[int, int], c: float):
    # one gather of whole pixels (row and column picked together): faster than one per axis
    rows, cols = (_pixelate_axis(n, c)[2] for n in size)
    h, w, channels = small.shape[1:]
    pixels = tf.reshape(small, [-1, h * w, channels])
    picked = tf.gather(pixels, (rows[:, None] * w + cols[None, :]).ravel(), axis=1)
    return tf.reshape(picked, [-1, *size, channels])


def jpeg_compression(images, s, rng):
    return _jpeg_graph(images, tf.constant([25, 18, 15, 10, 7][s]))


# libjpeg(-turbo) per image, as Pillow does in the reference (same bytes): no batched JPEG codec
# exists. A graph function: no eager dispatch per image, and the images' round trips may run in
# parallel on TF's inter-op threads; a known batch size unrolls them (tf.map_fn's loop costs more).
@tf.function(autograph=False, reduce_retracing=True)
def _jpeg_graph(images, quality):
    def roundtrip(image):
        data = tf.raw_ops.EncodeJpegVariableQuality(images=image, quality=quality)
        return tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")

    if images.shape[0] is not None:
        return tf.stack([roundtrip(image) for image in tf.unstack(images)])
    spec = tf.TensorSpec(images.shape[1:], tf.uint8)
    return tf.map_fn(roundtrip, images, fn_output_signature=spec)
