"""ImageNet-C weather corruptions: snow, frost, fog, and (extra) spatter.

Same calling convention as `evaluation.corruptions_noise`. Snow's motion blur is the shared XLA
kernel; fog's plasma fractal (many small ops) is a graph function traced once per image size;
spatter is a few XLA kernels shared by its severities.
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


def _diamond_square(grid: tf.Tensor, u: tf.Tensor, wibble: tf.Tensor) -> tf.Tensor:
    """One level of the fractal: [N, k, k] -> [N, 2k, 2k], with uniforms u [N, 3, k, k]."""
    n, k = tf.shape(grid)[0], grid.shape[1]

    def wibbled(total, i):
        return total / 4 + wibble * wibble * u[:, i]

    sq = grid + tf.roll(grid, -1, axis=1)
    centre = wibbled(sq + tf.roll(sq, -1, axis=2), 0)
    top = wibbled(centre + tf.roll(centre, 1, axis=1) + grid + tf.roll(grid, -1, axis=2), 1)
    left = wibbled(centre + tf.roll(centre, 1, axis=2) + grid + tf.roll(grid, -1, axis=1), 2)
    even = tf.reshape(tf.stack([grid, top], axis=-1), [n, k, 2 * k])
    odd = tf.reshape(tf.stack([left, centre], axis=-1), [n, k, 2 * k])
    return tf.reshape(tf.stack([even, odd], axis=2), [n, 2 * k, 2 * k])


# one compilation per level size; fused, a 128 -> 256 level runs 3-4x faster than op by op
_diamond_square_xla = tf.function(_diamond_square, jit_compile=True, autograph=False)
XLA_LEVELS = 64  # from this grid size up: smaller levels gain less than their compilation costs


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
        level = _diamond_square_xla if k >= XLA_LEVELS else _diamond_square
        grid = level(grid, tf.reshape(u, [n, 3, k, k]), wibble)
        wibble /= wibbledecay
    grid -= tf.reduce_min(grid, axis=[1, 2], keepdims=True)
    return grid / tf.reduce_max(grid, axis=[1, 2], keepdims=True)


FOG = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))


def fog(images, s, rng):
    strength, decay = (tf.constant(v, tf.float32) for v in FOG[s])
    return _fog_graph(images, rng.seeds, tf.constant(rng.stream), strength, decay)


# XLA would fuse this best but takes minutes to compile the whole fractal's ~200 small ops; a
# graph function is traced in well under a second and still beats the reference, and its largest
# levels and the blend with the image are XLA kernels.
@tf.function(autograph=False)
def _fog_graph(images, seeds, stream, strength, decay):
    mapsize = 1 << (max(images.shape[1], images.shape[2], 3) - 1).bit_length()
    plasma = plasma_fractal(mapsize, decay, ImageRandom(seeds, stream))
    return _fog_blend_xla(images, plasma, strength)


@tf.function(jit_compile=True, autograph=False)
def _fog_blend_xla(images, plasma, strength):
    x = unit(images)
    max_val = tf.reduce_max(x, axis=[1, 2, 3], keepdims=True)
    x = x + strength * plasma[:, : x.shape[1], : x.shape[2], None]
    return truncate(tf.clip_by_value(x * max_val / (max_val + strength), 0, 1) * 255)


def _shifted(x: tf.Tensor, axis: int, start: int, n: int) -> tf.Tensor:
    return x[:, start : start + n] if axis == 1 else x[:, :, start : start + n]


def _gaussian(x: tf.Tensor, taps: tf.Tensor) -> tf.Tensor:
    """skimage.filters.gaussian ("nearest") on [N, H, W] with odd-length taps as shifted
    multiply-adds, which XLA fuses per pass (its depthwise convolution is 10x slower). The border
    is padded by concatenation: XLA:CPU gathers along the minor axis 5-10x slower."""
    r = taps.shape[0] // 2
    for axis in (1, 2):
        n = x.shape[axis]
        ends = [tf.repeat(tf.gather(x, [i], axis=axis), r, axis) for i in (0, n - 1)]
        padded = tf.concat([ends[0], x, ends[1]], axis)
        x = tf.add_n([taps[t] * _shifted(padded, axis, t, n) for t in range(2 * r + 1)])
    return x


SPATTER_TAPS = 33  # the largest sigma's (4) kernel


def _taps(sigma: float) -> tf.Tensor:
    """The Gaussian taps of `sigma` zero-padded to SPATTER_TAPS: one compilation for all sigmas."""
    taps = filters.gaussian_kernel1d(sigma)
    return tf.constant(np.pad(taps, (SPATTER_TAPS - len(taps)) // 2), tf.float32)


def _box3(x: tf.Tensor) -> tf.Tensor:
    """The 3x3 sum with a reflect-101 border (cv2.blur times 9), separably."""
    h, w = x.shape[1], x.shape[2]
    x = tf.pad(x, [[0, 0], [1, 1], [1, 1]], "REFLECT")
    x = x[:, :h] + x[:, 1 : h + 1] + x[:, 2:]
    return x[:, :, :w] + x[:, :, 1 : w + 1] + x[:, :, 2:]


EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])


def _emboss(x: tf.Tensor) -> tf.Tensor:
    """cv2.filter2D(x, cv2.CV_8U, EMBOSS) of integer-valued [N, H, W]: correlation, reflect-101
    border, saturated to 0..255."""
    h, w = x.shape[1], x.shape[2]
    x = tf.pad(x, [[0, 0], [1, 1], [1, 1]], "REFLECT")
    terms = [int(k) * x[:, i : i + h, j : j + w] for (i, j), k in np.ndenumerate(EMBOSS) if k]
    return tf.clip_by_value(tf.add_n(terms), 0, 255)


def _dilate(x: tf.Tensor, axis: int) -> tf.Tensor:
    """Max over the neighbours along `axis` of a non-negative [N, H, W] (outside counts as 0)."""
    n = x.shape[axis]
    padded = tf.pad(x, [[0, 0], [1, 1], [0, 0]] if axis == 1 else [[0, 0], [0, 0], [1, 1]])
    return tf.maximum(tf.maximum(_shifted(padded, axis, 0, n), x), _shifted(padded, axis, 2, n))


def _equalize_hist(v: tf.Tensor, levels: int = 21) -> tf.Tensor:
    """cv2.equalizeHist per image for integer-valued float [N, H, W] with values in [0, levels).

    The histogram is a segment sum: XLA:CPU compares-and-sums a one-hot 5x slower.
    """
    n = tf.shape(v)[0]
    flat = tf.cast(tf.reshape(v, [n, -1]), tf.int32)
    bins = flat + levels * tf.range(n)[:, None]
    hist = tf.reshape(tf.math.unsorted_segment_sum(tf.ones_like(flat), bins, n * levels), [n, -1])
    hist = tf.cast(hist, tf.float32)
    first = tf.argmax(tf.cast(hist > 0, tf.int32), axis=1, output_type=tf.int32)
    first_count = tf.gather(hist, first, batch_dims=1)
    total = tf.cast(tf.shape(flat)[1], tf.float32)
    cum = tf.cumsum(hist, axis=1) - first_count[:, None]
    lut = tf.round(cum * 255.0 / tf.maximum(total - first_count, 1.0)[:, None])
    out = tf.gather(lut, flat, batch_dims=1)
    out = tf.where((total == first_count)[:, None], tf.cast(flat, tf.float32), out)
    return tf.reshape(out, tf.shape(v))


def _drop_distance(liquid: tf.Tensor, threshold) -> tuple[tf.Tensor, tf.Tensor]:
    """The thresholded drop layer liquid8 (0..255) and the first steps of the reference's distance
    map: truncated distance to the drops' edges, 3x3 blurred and truncated, from liquid [N, H, W].

    Reference (OpenCV): Canny edges of the layer, L2 distance to the nearest edge truncated at 20,
    3x3 blur. Here edges are the drops' inner boundary (the 0 -> ~175 jump dominates Canny's
    response) and the distance is an octagonal approximation of L2 by alternating 3x3 square /
    cross dilations, in uint8 (four times the SIMD lanes of float32).
    """
    liquid8 = tf.floor(tf.clip_by_value(tf.where(liquid < threshold, 0.0, liquid), 0, 1) * 255)
    mask = tf.cast(liquid8 > 0, tf.uint8)
    inside = 1 - _dilate(_dilate(1 - mask, 1), 2)  # 3x3 erosion, outside ignored
    edges = mask * (1 - inside)

    def two_steps(i, dist, reached):
        dist += 1 - reached
        reached = _dilate(_dilate(reached, 1), 2)  # square
        dist += 1 - reached
        return i + 1, dist, tf.maximum(_dilate(reached, 1), _dilate(reached, 2))  # cross

    _, dist, _ = tf.while_loop(lambda i, *_: i < 10, two_steps, (0, tf.zeros_like(mask), edges))
    return liquid8, tf.floor(_box3(tf.cast(dist, tf.float32)) / 9)  # .astype(np.uint8) truncates


SPATTER = [
    (0.65, 0.3, 4, 0.69, 0.6, 0),
    (0.65, 0.3, 3, 0.68, 0.6, 0),
    (0.65, 0.3, 2, 0.68, 0.5, 0),
    (0.65, 0.3, 1, 0.65, 1.5, 1),
    (0.67, 0.4, 1, 0.65, 1.5, 1),
]


def spatter(images, s, rng):
    loc, scale, sigma, threshold, intensity, mud = SPATTER[s]
    liquid = _gaussian_xla(rng.normal(images.shape[1:3], loc, scale), _taps(sigma))
    if mud:
        m = _gaussian_xla(tf.cast(liquid > threshold, tf.float32), _taps(intensity))
        return _mud_xla(images, m)
    liquid8, dist = _drop_distance_xla(liquid, tf.constant(threshold, tf.float32))
    dist = _emboss_xla(_equalize_xla(dist))
    return _water_xla(images, liquid8, dist, tf.constant(intensity, tf.float32))


# XLA kernels with the severities' parameters as tensors, one compilation each for all severities:
# 10x faster than op by op. The water branch is four kernels: fused into one, XLA:CPU recomputes
# each stencil's input per tap (slower to run, and to compile).
_gaussian_xla = tf.function(_gaussian, jit_compile=True, autograph=False)
_drop_distance_xla = tf.function(_drop_distance, jit_compile=True, autograph=False)
_equalize_xla = tf.function(_equalize_hist, jit_compile=True, autograph=False)
_emboss_xla = tf.function(_emboss, jit_compile=True, autograph=False)


@tf.function(jit_compile=True, autograph=False)
def _mud_xla(images, m):
    m = tf.where(m < 0.8, 0.0, m)[..., None]
    color = tf.constant([63, 42, 20], tf.float32) / 255.0 * m
    return truncate(tf.clip_by_value(unit(images) * (1 - m) + color, 0, 1) * 255)


@tf.function(jit_compile=True, autograph=False)
def _water_xla(images, liquid8, dist, intensity):
    m = (liquid8 * tf.round(_box3(dist) / 9))[..., None]  # cv2.blur rounds
    m = m / tf.maximum(tf.reduce_max(m, axis=[1, 2, 3], keepdims=True), 1e-12) * intensity
    # the reference treats RGB as BGR here, so (175, 238, 238) lands on (R, G, B)
    color = tf.constant([175, 238, 238], tf.float32) / 255.0
    return truncate(tf.clip_by_value(unit(images) + m * color, 0, 1) * 255)
