"""ImageNet-C blur corruptions: defocus, glass, motion, zoom and (extra) Gaussian blur.

Same calling convention as `evaluation.corruptions_noise`. The heavy loops (defocus' FFT product,
the motion and zoom shift-and-add) are XLA kernels whose severity parameters are tensors, so one
compilation per image size (motion: per kernel length) serves the severities.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from evaluation import filters
from evaluation.corruptions_noise import truncate, unit

DEFOCUS = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)]


def disk_kernel(radius: int, alias_blur: float) -> np.ndarray:
    """ImageNet-C's anti-aliased disk: the aliased disk blurred by cv2.GaussianBlur (3x3 or 5x5)."""
    import cv2  # only for building the small kernel (exactly the reference's construction)

    size = 8 if radius <= 8 else radius
    grid = np.arange(-size, size + 1)
    xx, yy = np.meshgrid(grid, grid)
    aliased = np.array((xx**2 + yy**2) <= radius**2, dtype=np.float32)
    aliased /= np.sum(aliased)
    ksize = (3, 3) if radius <= 8 else (5, 5)
    return cv2.GaussianBlur(aliased, ksize=ksize, sigmaX=alias_blur)


def _fft_size(n: int) -> int:
    """The smallest even 5-smooth length >= n: FFTs of lengths with a large prime factor (244 for
    224 px = 4 * 61) run 1.5x slower."""
    m = n + n % 2
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 2


@functools.cache
def _defocus_spectra(h: int, w: int) -> tuple[np.ndarray, int, tuple[int, int]]:
    """rfft2 of the five disk kernels on the FFT grid, their common half size and the grid size.

    The disks (17x17 or 21x21, not separable) are applied as one FFT product: cheaper than a
    441-tap direct convolution. All five are centred in 21x21 so one compiled graph serves every
    severity. The grid holds the image plus a reflect-101 border of `half` (cv2.filter2D's
    BORDER_DEFAULT), zero-padded to an FFT-friendly size; circular wrap-around only reaches the
    border.
    """
    half = max(r for r, _ in DEFOCUS)
    grid = _fft_size(h + 2 * half), _fft_size(w + 2 * half)
    spectra = []
    for radius, alias in DEFOCUS:
        kernel = disk_kernel(radius, alias)
        k = kernel.shape[0] // 2
        placed = np.zeros(grid, np.float64)
        # correlation = convolution with the flipped kernel (symmetric here), centred at (0, 0)
        for dy in range(-k, k + 1):
            for dx in range(-k, k + 1):
                placed[dy % grid[0], dx % grid[1]] = kernel[k - dy, k - dx]
        spectra.append(np.fft.rfft2(placed))
    return np.stack(spectra).astype(np.complex64), half, grid


def defocus_blur(images, s, rng):
    spectra, half, grid = _defocus_spectra(images.shape[1], images.shape[2])
    return _defocus_xla(images, tf.constant(spectra[s]), half, grid)


@tf.function(jit_compile=True, autograph=False)
def _defocus_xla(images, spectrum, half: int, grid: tuple[int, int]):
    h, w = images.shape[1], images.shape[2]
    planes = tf.transpose(unit(images), [0, 3, 1, 2])
    padded = tf.pad(planes, [[0, 0], [0, 0], [half, half], [half, half]], "REFLECT")  # reflect-101
    y = tf.signal.irfft2d(tf.signal.rfft2d(padded, grid) * spectrum, grid)
    y = tf.transpose(y[:, :, half : half + h, half : half + w], [0, 2, 3, 1])
    return truncate(tf.clip_by_value(y, 0, 1) * 255)


def gaussian_blur(images, s, rng):
    c = [1, 2, 3, 4, 6][s]
    return tf.clip_by_value(filters.skimage_gaussian(unit(images), c), 0, 1) * 255


def glass_blur(images, s, rng):
    sigma, delta, iterations = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)][s]
    x = (
        tf.floor(filters.skimage_gaussian(unit(images), sigma) * 255) / 255
    )  # the reference's np.uint8(...)
    h, w = x.shape[1], x.shape[2]
    rows = np.arange(h, dtype=np.int32)
    cols = np.arange(w, dtype=np.int32)
    inside = tf.constant(
        ((rows > delta) & (rows <= h - delta))[:, None] & ((cols > delta) & (cols <= w - delta))
    )[None]
    offsets = rng.integers([iterations, 2, h, w], -delta, delta)  # one draw for all rounds
    for i in range(iterations):
        dy, dx = offsets[:, i, 0], offsets[:, i, 1]
        src_r = tf.clip_by_value(
            tf.where(inside, rows[None, :, None] + dy, rows[:, None]), 0, h - 1
        )
        src_c = tf.clip_by_value(tf.where(inside, cols[None, None, :] + dx, cols), 0, w - 1)
        x = tf.gather_nd(x, tf.stack([src_r, src_c], axis=-1), batch_dims=1)
    return tf.clip_by_value(filters.skimage_gaussian(x, sigma), 0, 1) * 255


def motion_blur_kernel(radius: int, sigma: float) -> np.ndarray:
    """imagecorruptions' 1-D motion kernel: Gaussian weights at 0..2r, normalised."""
    k = np.exp(-(np.arange(2 * radius + 1) ** 2) / (2 * sigma**2))
    return k / k.sum()


def shift_and_add_motion_blur(x: tf.Tensor, radius: int, sigma: float, angle) -> tf.Tensor:
    """imagecorruptions' `_motion_blur` on a batch: an angle (degrees) per image, clamped shifts.

    Args:
        x: float32 NHWC tensor.
        radius, sigma: kernel width 2r+1 and Gaussian sigma.
        angle: float tensor [N] of angles in degrees.
    """
    kernel = motion_blur_kernel(radius, sigma)
    # zero-padded to a common length: one compilation per image size serves every radius
    kernel = np.pad(kernel, (0, max(MOTION_TAPS - len(kernel), 0)))
    width = tf.constant(2 * radius + 1, tf.int32)
    x, angle = tf.cast(x, tf.float32), tf.cast(angle, tf.float32)
    return _motion_blur_xla(x, tf.constant(kernel, tf.float32), width, angle)


MOTION_TAPS = 41  # ImageNet-C's largest motion kernel (radius 20)


# XLA fuses the 2r+1 gather-multiply-adds into one pass: 30x faster than eager on CPU.
@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _motion_blur_xla(x, kernel, width, angle):
    n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    rad = tf.cast(angle, tf.float64) * (math.pi / 180.0)
    py = tf.cast(width, tf.float64) * tf.sin(rad)
    px = tf.cast(width, tf.float64) * tf.cos(rad)
    hyp = tf.sqrt(py**2 + px**2)
    rows, cols = tf.range(h), tf.range(w)
    h64, w64 = tf.cast(h, tf.int64), tf.cast(w, tf.int64)

    def body(i, alive, out):
        fi = tf.cast(i, tf.float64)
        dy = tf.cast(-tf.math.ceil(fi * py / hyp - 0.5), tf.int64)
        dx = tf.cast(-tf.math.ceil(fi * px / hyp - 0.5), tf.int64)
        # the reference stops adding once a shift exceeds the image (no renormalisation)
        alive = alive & (tf.abs(dy) < h64) & (tf.abs(dx) < w64)
        ri = tf.clip_by_value(rows[None] - tf.cast(dy, tf.int32)[:, None], 0, h - 1)
        ci = tf.clip_by_value(cols[None] - tf.cast(dx, tf.int32)[:, None], 0, w - 1)
        shifted = tf.gather(tf.gather(x, ri, axis=1, batch_dims=1), ci, axis=2, batch_dims=1)
        weight = tf.where(alive, kernel[i], 0.0)
        return i + 1, alive, out + weight[:, None, None, None] * shifted

    _, _, out = tf.while_loop(
        lambda i, alive, out: i < width, body, (0, tf.ones([n], tf.bool), tf.zeros_like(x))
    )
    return out


def motion_blur(images, s, rng):
    radius, sigma = [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)][s]
    angle = rng.uniform([], -45.0, 45.0)
    y = shift_and_add_motion_blur(tf.cast(images, tf.float32), radius, sigma, angle)
    return tf.clip_by_value(y, 0, 255)


def _zoom_axis(n: int, zoom: float):
    """Indices/weights of `clipped_zoom` along one axis (scipy.ndimage.zoom order 1, no trim).

    Returns (i0, i1, frac) for the zoomed length round(ceil(n / zoom) * zoom).
    """
    ch = int(np.ceil(n / float(zoom)))
    top = (n - ch) // 2
    out = round(ch * zoom)
    coords = np.arange(out) * ((ch - 1) / (out - 1) if out > 1 else 0.0)
    i0 = np.floor(coords).astype(np.int64)
    i1 = np.minimum(i0 + 1, ch - 1)
    return top + i0, top + i1, (coords - i0).astype(np.float32)


def clipped_zoom(x: tf.Tensor, zoom: float) -> tf.Tensor:
    """imagecorruptions' `clipped_zoom`: centre crop of ceil(n/zoom), bilinear zoom back (NHWC)."""
    out = x
    for axis, n in ((1, x.shape[1]), (2, x.shape[2])):
        i0, i1, f = _zoom_axis(n, zoom)
        shape = [1, 1, 1, 1]
        shape[axis] = -1
        f = f.reshape(shape)
        out = tf.gather(out, i0, axis=axis) * (1.0 - f) + tf.gather(out, i1, axis=axis) * f
    return out


ZOOMS = [
    np.arange(1, 1.11, 0.01),
    np.arange(1, 1.16, 0.01),
    np.arange(1, 1.21, 0.02),
    np.arange(1, 1.26, 0.02),
    np.arange(1, 1.31, 0.03),
]


@functools.cache
def _zoom_tables(h: int, w: int) -> list[np.ndarray]:
    """clipped_zoom's row/col index and weight tables for every zoom of every severity.

    Only the top-left h x w of each zoomed copy is kept, so each table is cut to h (w) entries;
    severities are padded to the longest zoom list (the kernel stops at the severity's count).
    """
    most = max(len(z) for z in ZOOMS)
    tables = []
    for n, dtype in ((h, np.int32), (w, np.int32)):
        per_severity = []
        for zooms in ZOOMS:
            axis = [[a[:n] for a in _zoom_axis(n, z)] for z in zooms]
            axis += [axis[0]] * (most - len(zooms))
            per_severity.append([np.stack([t[k] for t in axis]) for k in range(3)])
        tables += [
            np.stack([p[k] for p in per_severity]).astype(dtype if k < 2 else np.float32)
            for k in range(3)
        ]
    return tables


def zoom_blur(images, s, rng):
    tables = [tf.constant(t[s]) for t in _zoom_tables(images.shape[1], images.shape[2])]
    return _zoom_xla(images, tf.constant(len(ZOOMS[s])), *tables)


@tf.function(jit_compile=True, autograph=False)
def _zoom_xla(images, count, r0, r1, rf, c0, c1, cf):
    """(x + sum over the first `count` zooms of the bilinear zooms) / (count + 1), as uint8."""
    x = unit(images)

    def body(z, out):
        fr = rf[z][None, :, None, None]
        fc = cf[z][None, None, :, None]
        y = tf.gather(x, r0[z], axis=1) * (1 - fr) + tf.gather(x, r1[z], axis=1) * fr
        y = tf.gather(y, c0[z], axis=2) * (1 - fc) + tf.gather(y, c1[z], axis=2) * fc
        return z + 1, out + y

    _, out = tf.while_loop(lambda z, out: z < count, body, (0, tf.zeros_like(x)))
    y = (x + out) / tf.cast(count + 1, tf.float32)
    return truncate(tf.clip_by_value(y, 0, 1) * 255)
