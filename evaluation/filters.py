"""Batched image filtering helpers shared by the shifts and the corruptions (TensorFlow).

Padding is done with an index gather so every boundary rule of SciPy / OpenCV / skimage is available
for any pad width, including pads wider than the image (TF's `tf.pad` has no edge mode and refuses
reflect pads >= the image size, which 28 px images with a 49-tap kernel need).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# name -> how an out-of-range index maps back into [0, n).
PAD_MODES = ("nearest", "symmetric", "reflect101")


def pad_indices(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source indices for padding an axis of length `n`.

    Args:
        n: axis length.
        before, after: pad widths.
        mode: "nearest" (edge replicate; skimage/SciPy "nearest"), "symmetric" (d c b a | a b c d;
            SciPy "reflect"), "reflect101" (d c b | a b c d; OpenCV default, torch "reflect").

    Returns:
        int array of length before + n + after.
    """
    idx = np.arange(-before, n + after)
    if mode == "nearest" or n == 1:
        return np.clip(idx, 0, n - 1)
    if mode == "symmetric":
        m = np.mod(idx, 2 * n)
        return np.where(m >= n, 2 * n - 1 - m, m)
    if mode == "reflect101":
        m = np.mod(idx, 2 * n - 2)
        return np.where(m >= n, 2 * n - 2 - m, m)
    raise ValueError(f"unknown pad mode {mode!r}; allowed: {PAD_MODES}")


def pad(x: tf.Tensor, ph: tuple[int, int], pw: tuple[int, int], mode: str) -> tf.Tensor:
    """Pads a static-shaped NHWC tensor on H and W with `mode` (see `pad_indices`)."""
    h, w = x.shape[1], x.shape[2]
    x = tf.gather(x, pad_indices(h, ph[0], ph[1], mode), axis=1)
    return tf.gather(x, pad_indices(w, pw[0], pw[1], mode), axis=2)


def separable_filter(
    x: tf.Tensor, kernel_h: np.ndarray, kernel_w: np.ndarray, mode: str
) -> tf.Tensor:
    """Correlates float32 NHWC `x` with kernel_h along H then kernel_w along W (odd lengths)."""
    c = x.shape[-1]
    rh, rw = len(kernel_h) // 2, len(kernel_w) // 2
    x = pad(x, (rh, rh), (rw, rw), mode)
    kh = np.tile(np.asarray(kernel_h, np.float32).reshape(-1, 1, 1, 1), (1, 1, c, 1))
    kw = np.tile(np.asarray(kernel_w, np.float32).reshape(1, -1, 1, 1), (1, 1, c, 1))
    x = tf.nn.depthwise_conv2d(x, kh, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, kw, [1, 1, 1, 1], "VALID")


def filter2d(x: tf.Tensor, kernel: np.ndarray, mode: str) -> tf.Tensor:
    """Correlates float32 NHWC `x` with a 2-D odd-sized kernel, same output size."""
    c = x.shape[-1]
    kh, kw = kernel.shape
    x = pad(x, (kh // 2, kh // 2), (kw // 2, kw // 2), mode)
    k = np.tile(np.asarray(kernel, np.float32)[:, :, None, None], (1, 1, c, 1))
    return tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "VALID")


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """SciPy's `gaussian_filter` kernel (used by skimage.filters.gaussian): radius int(t*s+0.5)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def skimage_gaussian(x: tf.Tensor, sigma, mode: str = "nearest", truncate: float = 4.0):
    """`skimage.filters.gaussian(x, sigma, channel_axis=-1)` on a float NHWC batch.

    Args:
        sigma: scalar, or (sigma_h, sigma_w).
    """
    sh, sw = (sigma, sigma) if np.isscalar(sigma) else sigma
    return separable_filter(
        x, gaussian_kernel1d(sh, truncate), gaussian_kernel1d(sw, truncate), mode
    )


def to_static_nhwc(images) -> tf.Tensor:
    """Converts uint8 NHWC / HWC input to a uint8 NHWC tensor with static H, W, C."""
    x = tf.convert_to_tensor(images)
    if x.dtype != tf.uint8:
        raise ValueError(f"images must be uint8, got {x.dtype.name}")
    if x.shape.rank == 3:
        x = x[None]
    if x.shape.rank != 4:
        raise ValueError(f"images must be HWC or NHWC, got shape {x.shape}")
    if None in x.shape[1:]:
        raise ValueError(f"images need a static height, width and channels, got {x.shape}")
    return x
