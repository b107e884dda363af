"""The reference study's test-time shifts on uint8 images, exactly as torchvision applied them.

The study (jeffwiroj/ece228 `experiments/eval.py`) applied `GaussianBlur(5, sigma)` and
`ColorJitter(brightness=(f, f))` to uint8 PIL images before ToTensor/Normalize:

- blur: float32 kernel exp(-x^2 / (2 sigma^2)) at x = linspace(-(k-1)/2, (k-1)/2, k), normalised,
  2-D kernel = outer product, reflection padding without repeating the edge (torch "reflect"),
  result rounded half-to-even to uint8. `keras.ops.image.gaussian_blur` zero-pads instead.
- brightness: PIL `ImageEnhance.Brightness` = blend with black = trunc(float32(f) * x), clipped to
  [0, 255] (multiplicative). `tf.image.adjust_brightness` is additive.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from evaluation.filters import filter2d, to_static_nhwc

BLUR_SIGMAS = (0.3, 0.5, 0.7, 0.9)
BRIGHTNESS_FACTORS = {
    "pathmnist": (0.8, 0.9, 1.1, 1.2),
    "pets": (0.6, 0.8, 1.2, 1.4),
}
DEFAULT_BRIGHTNESS_DATASET = "pathmnist"


def brightness_factors(dataset_name: str | None) -> tuple[float, ...]:
    """The study's brightness factors for a data set (None -> the pathMNIST set)."""
    key = DEFAULT_BRIGHTNESS_DATASET if dataset_name is None else dataset_name
    if key not in BRIGHTNESS_FACTORS:
        raise ValueError(
            f"unknown dataset_name {dataset_name!r}; allowed: {sorted(BRIGHTNESS_FACTORS)} or None"
        )
    return BRIGHTNESS_FACTORS[key]


def torchvision_gaussian_kernel(sigma: float, kernel_size: int = 5) -> np.ndarray:
    """torchvision's 2-D Gaussian kernel (float32 outer product of the normalised 1-D kernel)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    half = (kernel_size - 1) * 0.5
    x = np.linspace(-half, half, kernel_size, dtype=np.float32)
    pdf = np.exp(np.float32(-0.5) * (x / np.float32(sigma)) ** 2).astype(np.float32)
    k1 = (pdf / pdf.sum()).astype(np.float32)
    return np.outer(k1, k1).astype(np.float32)


def _as_output(y: tf.Tensor, like) -> tf.Tensor | np.ndarray:
    return y.numpy() if isinstance(like, np.ndarray) else y


def gaussian_blur(images, sigma: float, kernel_size: int = 5):
    """torchvision `GaussianBlur(kernel_size, sigma)` on uint8 NHWC (or HWC) images.

    Args:
        images: uint8 NumPy array or tensor, NHWC or HWC; H, W > kernel_size // 2.
        sigma: standard deviation of the kernel.
        kernel_size: odd kernel size (the study used 5).

    Returns:
        uint8 images of the same shape (NumPy in -> NumPy out, tensor in -> tensor out).
    """
    x = to_static_nhwc(images)
    kernel = torchvision_gaussian_kernel(sigma, kernel_size)
    y = filter2d(tf.cast(x, tf.float32), kernel, "reflect101")
    y = tf.cast(tf.clip_by_value(tf.round(y), 0.0, 255.0), tf.uint8)
    y = tf.reshape(y, tf.shape(images)) if len(images.shape) == 3 else y
    return _as_output(y, images)


def brightness(images, factor: float):
    """torchvision `ColorJitter(brightness=(factor, factor))` on uint8 PIL images.

    Args:
        images: uint8 NumPy array or tensor of any shape.
        factor: multiplicative factor >= 0.

    Returns:
        uint8 floor(clip(float32(factor) * x, 0, 255)), same shape and kind as `images`.
    """
    if factor < 0:
        raise ValueError(f"brightness factor must be >= 0, got {factor}")
    x = tf.convert_to_tensor(images)
    if x.dtype != tf.uint8:
        raise ValueError(f"images must be uint8, got {x.dtype.name}")
    y = tf.cast(x, tf.float32) * tf.constant(factor, tf.float32)
    y = tf.cast(tf.floor(tf.clip_by_value(y, 0.0, 255.0)), tf.uint8)
    return _as_output(y, images)
