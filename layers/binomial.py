"""Binomial low-pass filters of Zhang, "Making Convolutional Networks Shift-Invariant Again"."""

from __future__ import annotations

import math
import numbers

import numpy as np

#: Filter sizes the blur layers accept (antialiased-cnns' range: 1 = plain subsampling ... 7).
FILTER_SIZES = tuple(range(1, 8))


def check_filter_size(filter_size: int) -> int:
    """Validate a blur filter size.

    Args:
        filter_size: side of the square binomial filter.

    Returns:
        `filter_size` as an int.

    Raises:
        ValueError: if it is not one of `FILTER_SIZES`; floats (4.0), strings and bools are
            refused too (4.0 == 4 in Python, but a float here is a caller's mistake).
    """
    is_int = isinstance(filter_size, numbers.Integral) and not isinstance(filter_size, bool)
    if not is_int or filter_size not in FILTER_SIZES:
        raise ValueError(
            f"filter_size must be one of {list(FILTER_SIZES)} (an int), got {filter_size!r} "
            f"({type(filter_size).__name__})."
        )
    return int(filter_size)


def binomial_row(filter_size: int) -> np.ndarray:
    """1-D binomial coefficients C(k-1, i), e.g. k=4 -> [1, 3, 3, 1] (integers, unnormalised).

    Args:
        filter_size: number of taps k.

    Returns:
        int64 array of shape (k,).
    """
    k = check_filter_size(filter_size)
    return np.array([math.comb(k - 1, i) for i in range(k)], dtype=np.int64)


def binomial_kernel_2d(filter_size: int) -> np.ndarray:
    """2-D blur kernel: outer product of `binomial_row` normalised to sum 1.

    The sum of the outer product is 4^(k-1), a power of two, so the float32 values are exact
    (and stay exact in float16 for k <= 7).

    Args:
        filter_size: side k of the kernel.

    Returns:
        float32 array of shape (k, k) summing to 1.
    """
    row = binomial_row(filter_size)
    outer = np.outer(row, row)
    return (outer / outer.sum()).astype(np.float32)


def blur_padding(filter_size: int) -> tuple[int, int]:
    """Padding (before, after) = (floor((k-1)/2), ceil((k-1)/2)) per spatial axis, as Zhang pads.

    Args:
        filter_size: side k of the kernel.

    Returns:
        (before, after) pad widths.
    """
    k = check_filter_size(filter_size)
    return (k - 1) // 2, k // 2
