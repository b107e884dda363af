"""ImageNet-C weather corruptions: snow, frost, fog, and (extra) spatter.

Same calling convention as `evaluation.corruptions_noise`. Snow's motion blur is the shared XLA
kernel; fog's plasma fractal (many small ops) is a graph function traced once per image size.
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np
import tensorflow as tf

from evaluation import filters
from evaluation.corruption_random import ImageRandom
from evaluation.corruptions_blur import clipped_zoom, shift_and_add_motion_blur
from evaluation.corruptions_noise import truncate, unit

ASSETS = pathlib.Path(__file__).parent / "assets"


def gray(x: tf.Tensor) -> tf.Tensor:
    """cv2.COLOR_RGB2GRAY weights on a float NHWC RGB batch, keeps a channel axis."""
    return tf.tensordot(x, tf.constant([0.299, 0.587, 0.114]), axes=[[3], [0]])[..., None]


def snow(images, s, rng):
    x = unit(images)
    mean, std, zoom, threshold, radius, sigma, blend = [
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ][s]
    h, w = x.shape[1], x.shape[2]
    layer = rng.normal([h, w, 1], mean, std)
    layer = clipped_zoom(layer, zoom)
    layer = tf.clip_by_value(tf.where(layer < threshold, 0.0, layer), 0, 1)
    angle = rng.uniform([], -135.0, -45.0)
    layer = shift_and_add_motion_blur(layer, radius, sigma, angle)
    layer = tf.round(layer * 255) / 255
    layer = layer[:, :h, :w]
    x = blend * x + (1 - blend) * tf.maximum(x, gray(x) * 1.5 + 0.5)
    return tf.clip_by_value(x + layer + tf.reverse(layer, axis=[1, 2]), 0, 1) * 255


@functools.cache
def frost_textures() -> np.ndarray:
    """The shipped procedural frost textures, uint8 [K, S, S, 3] RGB (see assets/make_frost.py)."""
    with np.load(ASSETS / "frost.npz") as data:
        luminance = data["luminance"].astype(np.float32)
        tint = data["tint"].astype(np.float32)
    return np.clip(luminance[..., None] * tint, 0, 255).astype(np.uint8)


@functools.cache
def _frost_layers(h: int, w: int) -> np.ndarray:
    """The textures scaled so they cover an h x w image, times 1.1 (like the reference), rounded.

    Computed once per image size (eagerly, also when first called while tracing).
    """
    textures = frost_textures()
    size = textures.shape[1]
    side = int(np.ceil(size * max(1.0, h / size, w / size) * 1.1))
    with tf.init_scope():
        resized = tf.image.resize(tf.constant(textures, tf.float32), [side, side], "bicubic")
        return np.clip(np.round(resized.numpy()), 0, 255).astype(np.float32)


def frost(images, s, rng):
    image_weight, frost_weight = [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)][s]
    x = unit(images)
    h, w = x.shape[1], x.shape[2]
    layers = _frost_layers(h, w)
    side = layers.shape[1]
    u = rng.uniform([3])
    which, top, left = (
        tf.cast(u[:, i] * m, tf.int32) for i, m in enumerate([len(layers), side - h, side - w])
    )
    rows = top[:, None] + tf.range(h)[None]
    cols = left[:, None] + tf.range(w)[None]
    layer = tf.gather(tf.constant(layers), which)
    layer = tf.gather(tf.gather(layer, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    return tf.clip_by_value(image_weight * x * 255 + frost_weight * layer, 0, 255)


def plasma_fractal(mapsize: int, wibbledecay, rng: ImageRandom) -> tf.Tensor:
    """Diamond-square height maps in [0, 1], shape [N, mapsize, mapsize] (ImageNet-C's fog).

    Same recursion as the reference, written as a coarse-to-fine interleave so it runs batched:
    each level computes square centres and the two diamond point sets from the current grid (with
    the reference's periodic `np.roll` neighbours) and interleaves them into a grid twice as fine.
    All levels' uniforms come from one draw (one generator pass instead of one per point set).
    """
    n = rng.batch_size
    sizes = [1 << i for i in range(max(mapsize - 1, 1).bit_length())]
    draws = tf.split(
        rng.uniform([3 * sum(k * k for k in sizes)], -1, 1), [3 * k * k for k in sizes], 1
    )
    grid = tf.zeros([n, 1, 1])
    wibble = tf.constant(100.0)
    for k, u in zip(sizes, draws, strict=True):
        u = tf.reshape(u, [n, 3, k, k])

        def wibbled(total, i, wibble=wibble, u=u):
            return total / 4 + wibble * wibble * u[:, i]

        sq = grid + tf.roll(grid, -1, axis=1)
        centre = wibbled(sq + tf.roll(sq, -1, axis=2), 0)
        top = wibbled(centre + tf.roll(centre, 1, axis=1) + grid + tf.roll(grid, -1, axis=2), 1)
        left = wibbled(centre + tf.roll(centre, 1, axis=2) + grid + tf.roll(grid, -1, axis=1), 2)
        even = tf.reshape(tf.stack([grid, top], axis=-1), [n, k, 2 * k])
        odd = tf.reshape(tf.stack([left, centre], axis=-1), [n, k, 2 * k])
        grid = tf.reshape(tf.stack([even, odd], axis=2), [n, 2 * k, 2 * k])
        wibble /= wibbledecay
    grid -= tf.reduce_min(grid, axis=[1, 2], keepdims=True)
    return grid / tf.reduce_max(grid, axis=[1, 2], keepdims=True)


FOG = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))


def fog(images, s, rng):
    strength, decay = (tf.constant(v, tf.float32) for v in FOG[s])
    return _fog_graph(images, rng.seeds, tf.constant(rng.stream), strength, decay)


# XLA would fuse this best but takes tens of seconds to compile the fractal's ~200 small ops;
# a graph function is traced in well under a second and still beats the reference.
@tf.function
def _fog_graph(images, seeds, stream, strength, decay):
    x = unit(images)
    h, w = x.shape[1], x.shape[2]
    mapsize = 1 << (max(h, w, 3) - 1).bit_length()
    plasma = plasma_fractal(mapsize, decay, ImageRandom(seeds, stream))[:, :h, :w, None]
    max_val = tf.reduce_max(x, axis=[1, 2, 3], keepdims=True)
    x = x + strength * plasma
    return truncate(tf.clip_by_value(x * max_val / (max_val + strength), 0, 1) * 255)


def _box3(x):
    return filters.filter2d(x, np.full((3, 3), 1 / 9, np.float32), "reflect101")


def _equalize_hist(v: tf.Tensor, levels: int) -> tf.Tensor:
    """cv2.equalizeHist per image for integer-valued float images with values in [0, levels)."""
    n = tf.shape(v)[0]
    flat = tf.cast(tf.reshape(v, [n, -1]), tf.int32)
    hist = tf.reduce_sum(tf.one_hot(flat, levels, dtype=tf.float32), axis=1)  # [N, levels]
    first = tf.argmax(tf.cast(hist > 0, tf.int32), axis=1, output_type=tf.int32)
    first_count = tf.gather(hist, first, batch_dims=1)
    total = tf.cast(tf.shape(flat)[1], tf.float32)
    cum = tf.cumsum(hist, axis=1) - first_count[:, None]
    lut = tf.round(cum * 255.0 / tf.maximum(total - first_count, 1.0)[:, None])
    out = tf.gather(lut, flat, batch_dims=1)
    out = tf.where((total == first_count)[:, None], tf.cast(flat, tf.float32), out)
    return tf.reshape(out, tf.shape(v))


def _water_distance(liquid8: tf.Tensor) -> tf.Tensor:
    """The reference's embossed distance map for water drops, from the drop layer (0..255).

    Reference (OpenCV): Canny edges of the layer, L2 distance to the nearest edge truncated at 20,
    3x3 blur, histogram equalisation, an emboss kernel (saturated to uint8), 3x3 blur. Here edges
    are the drops' inner boundary (the 0 -> ~175 jump dominates Canny's response) and the distance
    is an octagonal approximation of L2 by alternating 3x3 square / cross dilations.
    """
    mask = tf.cast(liquid8 > 0, tf.float32)
    eroded = -tf.nn.max_pool2d(-mask, 3, 1, "SAME")
    reached = mask * (1 - eroded)  # edge pixels
    dist = tf.zeros_like(mask)
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.float32)
    for step in range(20):
        dist += 1 - reached
        if step % 2 == 0:
            reached = tf.nn.max_pool2d(reached, 3, 1, "SAME")
        else:
            reached = tf.minimum(filters.filter2d(reached, cross, "nearest"), 1.0)
    dist = tf.floor(_box3(dist))  # .astype(np.uint8) truncates
    dist = _equalize_hist(dist, 21)
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)
    dist = tf.clip_by_value(tf.round(filters.filter2d(dist, emboss, "reflect101")), 0, 255)
    return tf.round(_box3(dist))


def spatter(images, s, rng):
    loc, scale, sigma, threshold, intensity, mud = [
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    ][s]
    x = unit(images)
    h, w = x.shape[1], x.shape[2]
    liquid = filters.skimage_gaussian(rng.normal([h, w, 1], loc, scale), sigma)
    liquid = tf.where(liquid < threshold, 0.0, liquid)
    if mud:
        m = filters.skimage_gaussian(tf.cast(liquid > threshold, tf.float32), intensity)
        m = tf.where(m < 0.8, 0.0, m)
        color = tf.constant([63, 42, 20], tf.float32) / 255.0 * m
        return tf.clip_by_value(x * (1 - m) + color, 0, 1) * 255
    liquid8 = tf.floor(tf.clip_by_value(liquid, 0, 1) * 255)
    m = liquid8 * _water_distance(liquid8)
    m = m / tf.maximum(tf.reduce_max(m, axis=[1, 2, 3], keepdims=True), 1e-12) * intensity
    # the reference treats RGB as BGR here, so (175, 238, 238) lands on (R, G, B)
    color = tf.constant([175, 238, 238], tf.float32) / 255.0
    return tf.clip_by_value(x + m * color, 0, 1) * 255
