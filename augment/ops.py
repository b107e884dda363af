"""Pure per-image augmentation ops on batches, with per-image arguments.

Every op takes ``images`` as float32 ``[B, H, W, C]`` with values in ``[0, 255]`` (RGB for the
colour ops) and one argument per image (a ``[B]`` tensor), and returns float32 images in
``[0, 255]``. A single image is a batch of one. Ops draw no random numbers: the stages do. The
formulas follow PIL (``ImageOps``/``ImageEnhance``), as the Model Garden and timm ops do;
geometric ops fill with constant gray 128 (Model Garden's reflect fill is a known bug). The ops
compile with XLA, which the batched op chain (``augment.chain``) relies on for speed.
"""

from __future__ import annotations

import math

import tensorflow as tf

FILL_VALUE = 128.0


def _per_image(arg: tf.Tensor) -> tf.Tensor:
    """Reshapes a ``[B]`` argument to broadcast against ``[B, H, W, C]``."""
    return tf.reshape(tf.cast(arg, tf.float32), [-1, 1, 1, 1])


def blend(degenerate: tf.Tensor, images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """PIL ``Image.blend(degenerate, image, factor)``: extrapolates, clips, truncates."""
    out = degenerate + _per_image(factor) * (images - degenerate)
    return tf.floor(tf.clip_by_value(out, 0.0, 255.0))


def grayscale(images: tf.Tensor) -> tf.Tensor:
    """PIL ``convert("L")`` luma (ITU-R 601, fixed-point rounding), shape ``[B, H, W, 1]``."""
    r, g, b = images[..., 0:1], images[..., 1:2], images[..., 2:3]
    return tf.floor((19595.0 * r + 38470.0 * g + 7471.0 * b + 32768.0) / 65536.0)


def identity(images: tf.Tensor, arg: tf.Tensor | None = None) -> tf.Tensor:
    """Returns the images unchanged."""
    return images


def stretch(images: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor) -> tf.Tensor:
    """Maps [lo, hi] linearly onto [0, 255] (truncating, like PIL); identity where hi <= lo."""
    scale = 255.0 / tf.maximum(hi - lo, 1.0)
    stretched = tf.clip_by_value(tf.floor((images - lo) * scale), 0.0, 255.0)
    return tf.where(hi > lo, stretched, images)


def channel_range(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Per image and channel minimum and maximum, float32 ``[B, 1, 1, C]`` each.

    Reduces over rows first, on ``[B, H, W * C]``: XLA on CPU reduces contiguous rows several
    times faster than it reduces ``[H, W]`` per channel in one go.
    """
    shape = tf.shape(images)
    rows = tf.reshape(images, tf.stack([shape[0], shape[1], -1]))
    extrema = []
    for reduce in (tf.reduce_min, tf.reduce_max):
        per_column = tf.reshape(reduce(rows, axis=1), tf.stack([shape[0], 1, shape[2], shape[3]]))
        extrema.append(tf.cast(reduce(per_column, axis=2, keepdims=True), tf.float32))
    return extrema[0], extrema[1]


def autocontrast(images: tf.Tensor, arg: tf.Tensor | None = None) -> tf.Tensor:
    """Stretches each channel of each image to [0, 255] (``ImageOps.autocontrast``)."""
    return stretch(images, *channel_range(images))


def equalize_lut(images: tf.Tensor) -> tf.Tensor:
    """Per image and channel look-up table of ``ImageOps.equalize``, shape ``[B, C, 256]``.

    ``images`` may be uint8 or float (rounded).
    """
    shape = tf.shape(images)
    batch, channels = shape[0], shape[3]
    if images.dtype == tf.uint8:
        values = tf.cast(images, tf.int32)
    else:
        values = tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.int32)
    offsets = tf.reshape(tf.range(batch * channels) * 256, tf.stack([batch, 1, 1, channels]))
    ids = tf.reshape(values + offsets, [-1])
    hist = tf.math.unsorted_segment_sum(tf.ones_like(ids), ids, batch * channels * 256)
    hist = tf.reshape(hist, tf.stack([batch, channels, 256]))
    top = tf.reduce_max(tf.where(hist > 0, tf.range(256), -1), axis=-1, keepdims=True)
    last_count = tf.gather(hist, top, batch_dims=2)
    step = (tf.reduce_sum(hist, axis=-1, keepdims=True) - last_count) // 255
    cum = tf.cumsum(hist, axis=-1, exclusive=True)
    lut = tf.minimum((cum + step // 2) // tf.maximum(step, 1), 255)
    identity_lut = tf.broadcast_to(tf.range(256), tf.shape(lut))
    return tf.cast(tf.where(step > 0, lut, identity_lut), tf.float32)


def apply_lut(images: tf.Tensor, lut: tf.Tensor) -> tf.Tensor:
    """Maps each pixel value through its image's and channel's table ``lut [B, C, 256]``.

    ``images`` may be uint8 or float (rounded); the result has the dtype of ``lut``.
    """
    shape = tf.shape(images)
    if images.dtype == tf.uint8:
        values = tf.cast(images, tf.int32)
    else:
        values = tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.int32)
    flat = tf.transpose(tf.reshape(values, tf.stack([shape[0], -1, shape[3]])), [0, 2, 1])
    mapped = tf.gather(lut, flat, batch_dims=2)
    return tf.reshape(tf.transpose(mapped, [0, 2, 1]), shape)


def equalize(images: tf.Tensor, arg: tf.Tensor | None = None) -> tf.Tensor:
    """Histogram-equalises each channel of each image (``ImageOps.equalize``)."""
    return apply_lut(images, equalize_lut(images))


def invert(images: tf.Tensor, arg: tf.Tensor | None = None) -> tf.Tensor:
    """Returns ``255 - images``."""
    return 255.0 - images


def posterize(images: tf.Tensor, bits: tf.Tensor) -> tf.Tensor:
    """Keeps the ``bits`` most significant bits (0 bits gives black, as in PIL)."""
    step = tf.pow(2.0, 8.0 - tf.clip_by_value(_per_image(bits), 0.0, 8.0))
    return tf.floor(tf.round(images) / step) * step


def solarize(images: tf.Tensor, threshold: tf.Tensor) -> tf.Tensor:
    """Inverts the pixels at or above ``threshold``."""
    return tf.where(images < _per_image(threshold), images, 255.0 - images)


def solarize_add(images: tf.Tensor, addition: tf.Tensor, threshold: float = 128.0) -> tf.Tensor:
    """Adds ``addition`` to the pixels below ``threshold`` (Model Garden ``solarize_add``)."""
    added = tf.clip_by_value(images + _per_image(addition), 0.0, 255.0)
    return tf.where(images < threshold, added, images)


def color(images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """Saturation: blends the grayscale image with the image (``ImageEnhance.Color``)."""
    return blend(grayscale(images), images, factor)


def mean_gray(images: tf.Tensor) -> tf.Tensor:
    """Per-image mean luma rounded to an integer (PIL ``ImageStat``), shape ``[B, 1, 1, 1]``."""
    return tf.floor(tf.reduce_mean(grayscale(images), axis=[1, 2, 3], keepdims=True) + 0.5)


def contrast(images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """Blends the mean gray level with the image (``ImageEnhance.Contrast``)."""
    return blend(mean_gray(images), images, factor)


def brightness(images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """Blends black with the image (``ImageEnhance.Brightness``)."""
    return blend(tf.zeros_like(images), images, factor)


def smooth(images: tf.Tensor) -> tf.Tensor:
    """PIL ``ImageFilter.SMOOTH`` (3x3 kernel [[1,1,1],[1,5,1],[1,1,1]]/13), borders kept.

    The 3x3 box sum is two 3-tap average pools times 9, rounded (exact on integers): XLA's
    depthwise convolution on CPU is over ten times slower, and nine shifted slices about twice.
    """
    rows = tf.nn.avg_pool2d(images, [3, 1], 1, "VALID")
    box = tf.round(tf.nn.avg_pool2d(rows, [1, 3], 1, "VALID") * 9.0)
    inner = tf.round((box + 4.0 * images[:, 1:-1, 1:-1]) / 13.0)
    middle = tf.concat([images[:, 1:-1, :1], inner, images[:, 1:-1, -1:]], axis=2)
    return tf.concat([images[:, :1], middle, images[:, -1:]], axis=1)


def sharpness(images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """Blends the smoothed image with the image (``ImageEnhance.Sharpness``)."""
    return blend(smooth(images), images, factor)


def cutout(
    images: tf.Tensor, half_size: tf.Tensor, center: tf.Tensor, fill_value: float = FILL_VALUE
) -> tf.Tensor:
    """Fills a square of side ``2 * half_size`` centred at ``center [B, 2]`` (row, col).

    The square is clipped at the border, as in Model Garden's ``cutout``. Any dtype.
    """
    shape = tf.shape(images)
    rows = tf.cast(tf.range(shape[1]), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(shape[2]), tf.float32)[None, None, :]
    half = tf.cast(half_size, tf.float32)[:, None, None]
    cy = tf.cast(center[:, 0], tf.float32)[:, None, None]
    cx = tf.cast(center[:, 1], tf.float32)[:, None, None]
    inside = (rows >= cy - half) & (rows < cy + half) & (cols >= cx - half) & (cols < cx + half)
    return tf.where(inside[..., None], tf.cast(fill_value, images.dtype), images)


# Geometric ops: each is a 3x3 matrix mapping OUTPUT pixel (x, y, 1) to INPUT coordinates, in pixel
# index coordinates; `warp` samples once, so several geometric ops compose into one matrix product.


def _matrix(a, b, c, d, e, f) -> tf.Tensor:
    zeros = tf.zeros_like(a)
    ones = tf.ones_like(a)
    return tf.reshape(tf.stack([a, b, c, d, e, f, zeros, zeros, ones], axis=-1), [-1, 3, 3])


def rotate_matrix(degrees: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Counter-clockwise rotation by ``degrees`` about the centre (as ``PIL.Image.rotate``)."""
    theta = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
    return _matrix(cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy)


def shear_x_matrix(shear: tf.Tensor, height=None, width=None) -> tf.Tensor:
    """Input x = x + shear * y."""
    s = tf.cast(shear, tf.float32)
    return _matrix(tf.ones_like(s), s, tf.zeros_like(s), tf.zeros_like(s), tf.ones_like(s), 0 * s)


def shear_y_matrix(shear: tf.Tensor, height=None, width=None) -> tf.Tensor:
    """Input y = y + shear * x."""
    s = tf.cast(shear, tf.float32)
    return _matrix(tf.ones_like(s), 0 * s, 0 * s, s, tf.ones_like(s), 0 * s)


def translate_x_matrix(pixels: tf.Tensor, height=None, width=None) -> tf.Tensor:
    """Input x = x + pixels (content moves left for positive ``pixels``, as Model Garden/timm)."""
    p = tf.cast(pixels, tf.float32)
    return _matrix(tf.ones_like(p), 0 * p, p, 0 * p, tf.ones_like(p), 0 * p)


def translate_y_matrix(pixels: tf.Tensor, height=None, width=None) -> tf.Tensor:
    """Input y = y + pixels (content moves up for positive ``pixels``)."""
    p = tf.cast(pixels, tf.float32)
    return _matrix(tf.ones_like(p), 0 * p, 0 * p, 0 * p, tf.ones_like(p), p)


def source_indices(
    matrices: tf.Tensor, height: tf.Tensor, width: tf.Tensor, interpolation: str = "nearest"
) -> tuple[tf.Tensor, tf.Tensor | None]:
    """Where each output pixel of an affine warp reads the input, as flat pixel indices.

    Args:
        matrices: ``[B, 3, 3]`` affine output-to-input maps in pixel index coordinates (last row
            0, 0, 1; every geometric op here is affine, which saves the projective division).
        height: output (and input) height.
        width: output (and input) width.
        interpolation: ``"nearest"`` (rounds half up, like PIL's NEAREST) or ``"bilinear"``.

    Returns:
        ``(indices, weights)``: int32 ``[B, K, H, W]`` indices ``y * width + x`` of the ``K``
        input pixels each output pixel reads (``-1`` outside the image), and their float32
        weights ``[B, K, H, W, 1]`` (``None`` for ``"nearest"``, where ``K`` is 1).
    """
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
    ys = tf.cast(tf.range(height), tf.float32)[None, :, None]
    xs = tf.cast(tf.range(width), tf.float32)[None, None, :]
    m = matrices[:, :2, :, None, None]
    src_x = m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]
    src_y = m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]

    def index(ix: tf.Tensor, iy: tf.Tensor) -> tf.Tensor:
        inside = (ix >= 0) & (ix < width) & (iy >= 0) & (iy < height)
        return tf.where(inside, iy * width + ix, -1)

    if interpolation == "nearest":
        ix = tf.cast(tf.floor(src_x + 0.5), tf.int32)
        iy = tf.cast(tf.floor(src_y + 0.5), tf.int32)
        return index(ix, iy)[:, None], None
    x0f, y0f = tf.floor(src_x), tf.floor(src_y)
    wx, wy = src_x - x0f, src_y - y0f
    x0, y0 = tf.cast(x0f, tf.int32), tf.cast(y0f, tf.int32)
    corners = [(x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)]
    weights = [(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy]
    indices = tf.stack([index(ix, iy) for ix, iy in corners], axis=1)
    return indices, tf.stack(weights, axis=1)[..., None]


def sample_pixels(
    images: tf.Tensor,
    indices: tf.Tensor,
    weights: tf.Tensor | None = None,
    fill_value: float = FILL_VALUE,
) -> tf.Tensor:
    """Reads the pixels that `source_indices` gave, with constant fill outside the image.

    Args:
        images: ``[B, H, W, C]``; float32 when ``weights`` are given, any dtype otherwise.
        indices: int32 ``[B, K, H, W]`` flat pixel indices, ``-1`` outside.
        weights: float32 ``[B, K, H, W, 1]`` to sum the ``K`` reads with, or ``None`` (K = 1).
        fill_value: value read outside the image.

    Returns:
        ``[B, H, W, C]`` of the dtype of ``images``.
    """
    shape = tf.shape(images)
    flat = tf.reshape(images, tf.stack([shape[0], -1, shape[3]]))
    out_shape = tf.concat([tf.shape(indices), shape[3:]], 0)
    index = tf.reshape(tf.maximum(indices, 0), tf.stack([shape[0], -1]))
    read = tf.gather(flat, index, axis=1, batch_dims=1)
    read = tf.reshape(read, out_shape)
    read = tf.where(indices[..., None] >= 0, read, tf.cast(fill_value, images.dtype))
    if weights is None:
        return read[:, 0]
    return tf.reduce_sum(weights * read, axis=1)


def warp(
    images: tf.Tensor,
    matrices: tf.Tensor,
    interpolation: str = "nearest",
    fill_value: float = FILL_VALUE,
) -> tf.Tensor:
    """Samples ``images`` at ``matrices [B, 3, 3] @ (x, y, 1)`` with constant fill.

    Written with gathers rather than ``ImageProjectiveTransformV3`` because that kernel has no XLA
    implementation and this one is faster on CPU. Under XLA, compute `source_indices` and
    `sample_pixels` in separate compiled functions: fused, XLA recomputes the indices per channel
    and the warp costs about 1.5 times as much.

    Args:
        images: float32 ``[B, H, W, C]`` (or any dtype with ``"nearest"``).
        matrices: affine output-to-input maps in pixel index coordinates (last row 0, 0, 1).
        interpolation: ``"nearest"`` or ``"bilinear"`` (see `source_indices`).
        fill_value: value of pixels sampled outside the image.

    Returns:
        The warped images, same shape and dtype.
    """
    shape = tf.shape(images)
    return sample_pixels(
        images, *source_indices(matrices, shape[1], shape[2], interpolation), fill_value
    )


GEOMETRIC_MATRICES = {
    "rotate": rotate_matrix,
    "shear_x": shear_x_matrix,
    "shear_y": shear_y_matrix,
    "translate_x": translate_x_matrix,
    "translate_y": translate_y_matrix,
}


def geometric_op(name: str, images: tf.Tensor, arg: tf.Tensor, interpolation: str = "nearest"):
    """Applies the geometric op ``name`` with per-image ``arg`` (degrees, shear or pixels)."""
    shape = tf.shape(images)
    return warp(images, GEOMETRIC_MATRICES[name](arg, shape[1], shape[2]), interpolation)


def rotate(images: tf.Tensor, degrees: tf.Tensor, interpolation: str = "nearest") -> tf.Tensor:
    """Rotates counter-clockwise by ``degrees`` about the centre, gray fill."""
    return geometric_op("rotate", images, degrees, interpolation)


def shear_x(images: tf.Tensor, shear: tf.Tensor, interpolation: str = "nearest") -> tf.Tensor:
    """Shears along x (input x = x + shear * y), gray fill."""
    return geometric_op("shear_x", images, shear, interpolation)


def shear_y(images: tf.Tensor, shear: tf.Tensor, interpolation: str = "nearest") -> tf.Tensor:
    """Shears along y (input y = y + shear * x), gray fill."""
    return geometric_op("shear_y", images, shear, interpolation)


def translate_x(images: tf.Tensor, pixels: tf.Tensor, interpolation: str = "nearest") -> tf.Tensor:
    """Translates by ``-pixels`` along x, gray fill."""
    return geometric_op("translate_x", images, pixels, interpolation)


def translate_y(images: tf.Tensor, pixels: tf.Tensor, interpolation: str = "nearest") -> tf.Tensor:
    """Translates by ``-pixels`` along y, gray fill."""
    return geometric_op("translate_y", images, pixels, interpolation)


# Pixel (non-geometric) ops with the uniform signature (images, arg, center).
PIXEL_OPS = {
    "identity": lambda x, a, c: x,
    "autocontrast": lambda x, a, c: autocontrast(x),
    "equalize": lambda x, a, c: equalize(x),
    "invert": lambda x, a, c: invert(x),
    "posterize": lambda x, a, c: posterize(x, a),
    "solarize": lambda x, a, c: solarize(x, a),
    "solarize_add": lambda x, a, c: solarize_add(x, a),
    "color": lambda x, a, c: color(x, a),
    "contrast": lambda x, a, c: contrast(x, a),
    "brightness": lambda x, a, c: brightness(x, a),
    "sharpness": lambda x, a, c: sharpness(x, a),
    "cutout": lambda x, a, c: cutout(x, a, c),
}

# Point ops as maps of pixel values: (values, arg) -> values. A table of the 256 values shaped
# [B, 1, 256, C] works like an image, so the op chain composes these without touching pixels.
POINT_OPS = {
    "invert": lambda v, a: invert(v),
    "posterize": posterize,
    "solarize": solarize,
    "solarize_add": solarize_add,
    "brightness": brightness,
}

# Point ops whose map depends on statistics of the image: (values, images, arg) -> values, with
# ``images`` uint8 or float [B, H, W, C]; ``op(x, x, a)`` is the op itself.
STATISTIC_POINT_OPS = {
    "autocontrast": lambda v, x, a: stretch(v, *channel_range(x)),
    "contrast": lambda v, x, a: blend(mean_gray(tf.cast(x, tf.float32)), v, a),
    "equalize": lambda v, x, a: apply_lut(v, equalize_lut(x)),
}

# Every base op, in a fixed order: the op chain identifies ops by their index here.
BASE_OPS = tuple(PIXEL_OPS) + tuple(GEOMETRIC_MATRICES)
