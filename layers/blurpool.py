"""Anti-aliased downsampling layers: `BlurPool2D` and `MaxBlurPool2D` (Zhang, ICML 2019)."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from layers.binomial import binomial_kernel_2d, blur_padding, check_filter_size
from layers.padding import check_pad_mode, check_pad_overflow, check_reflect_fits, pad_spatial


def _pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints -> a pair of positive ints (ValueError otherwise)."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    valid = len(pair) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair
    )
    if not valid:
        raise ValueError(
            f"{name} must be a positive int or a pair of positive ints, got {value!r}."
        )
    return (int(pair[0]), int(pair[1]))


def _downsampled(size: int | None, stride: int) -> int | None:
    return None if size is None else math.ceil(size / stride)


def _check_channels_last(data_format: str | None, layer: str) -> str:
    """The layers compute on NHWC only: refuse channels_first, given or as Keras' default."""
    resolved = keras.config.image_data_format() if data_format is None else data_format
    if resolved != "channels_last":
        source = "keras.config.image_data_format()" if data_format is None else "data_format"
        raise ValueError(
            f"{layer} supports only data_format='channels_last' (allowed: 'channels_last' or "
            f"None for Keras' default), got {source} {resolved!r}; transpose to NHWC first."
        )
    return resolved


@keras.saving.register_keras_serializable(package="robust_recipes")
class BlurPool2D(keras.layers.Layer):
    """Binomial low-pass filter per channel, then subsampling (channels_last).

    Pads `[floor((k-1)/2), ceil((k-1)/2)]` on H and W with `pad_mode`, convolves each channel with
    the normalised k x k binomial kernel and keeps every `strides`-th pixel, so an H x W input gives
    ceil(H / s) x ceil(W / s), sampled where antialiased-cnns samples. The kernel is a constant,
    not a weight: the layer has no variables.

    Reflect padding as wide as the map (pad 2 on a 2x2 map, deep in a network fed small images)
    is impossible in torch and TF; with `pad_overflow="repeat"` the reflection goes on as
    `numpy.pad(mode="reflect")` does (period 2(n-1), a 1-pixel map replicated); where the pad
    fits the output is Zhang's, unchanged.

    Args:
        filter_size: kernel side k in 1..7, an int (1 = plain subsampling `x[:, ::s, ::s]`).
        strides: subsampling factor, an int or (sH, sW).
        pad_mode: "reflect", "replicate" or "zero".
        pad_overflow: "repeat" or "error": what reflect padding does on a map not wider than
            the pad (replicate and zero padding fit any map).
        data_format: "channels_last" or None (Keras' default, which must be channels_last).
        **kwargs: standard Keras layer arguments (name, dtype, ...).
    """

    def __init__(
        self,
        filter_size: int = 4,
        strides=2,
        pad_mode: str = "reflect",
        pad_overflow: str = "repeat",
        data_format: str | None = None,
        **kwargs,
    ):
        # Arguments are checked before any work starts (a user's mistake: one clear line).
        data_format = _check_channels_last(data_format, type(self).__name__)
        filter_size, strides = check_filter_size(filter_size), _pair(strides, "strides")
        check_pad_mode(pad_mode)
        check_pad_overflow(pad_overflow)
        super().__init__(**kwargs)
        self.data_format = data_format
        self.filter_size = filter_size
        self.strides = strides
        self.pad_mode = pad_mode
        self.pad_overflow = pad_overflow
        before_after = blur_padding(self.filter_size)
        self.pads = (before_after, before_after)
        self._kernel_2d = binomial_kernel_2d(self.filter_size)
        self._depthwise_kernel = None

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} expects NHWC input, got shape {input_shape}.")
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"{type(self).__name__} needs a known channel count (last axis).")
        if self.pad_overflow == "error":
            check_reflect_fits(self.pad_mode, self.pads, tuple(input_shape[1:3]))
        # (k, k, C, 1) depthwise kernel kept as NumPy and turned into a tensor inside call(), so
        # that the layer can be built in one graph (e.g. a tf.data map) and called in another.
        self._depthwise_kernel = np.ascontiguousarray(
            np.tile(self._kernel_2d[:, :, None, None], (1, 1, channels, 1))
        )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.filter_size == 1:
            # A 1x1 binomial kernel is [1]: plain subsampling (no padding, pads are 0).
            return x[:, :: self.strides[0], :: self.strides[1], :]
        x = pad_spatial(x, self.pads, self.pad_mode, self.pad_overflow)
        kernel = ops.convert_to_tensor(self._depthwise_kernel, dtype=self.compute_dtype)
        return ops.depthwise_conv(
            x, kernel, strides=self.strides, padding="valid", data_format="channels_last"
        )

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, _downsampled(h, self.strides[0]), _downsampled(w, self.strides[1]), c)

    def get_config(self):
        config = super().get_config()
        config.update(
            filter_size=self.filter_size,
            strides=list(self.strides),
            pad_mode=self.pad_mode,
            pad_overflow=self.pad_overflow,
            data_format=self.data_format,
        )
        return config


@keras.saving.register_keras_serializable(package="robust_recipes")
class MaxBlurPool2D(keras.layers.Layer):
    """Zhang's replacement for a strided max-pool: max-pool at stride 1 (no padding), then blur.

    An H x W input gives ceil((H - p + 1) / s) x ceil((W - p + 1) / s) with p = pool_size.

    Args:
        pool_size: max-pool window, an int or (pH, pW).
        filter_size: blur kernel side in 1..7.
        strides: subsampling factor of the blur, an int or (sH, sW).
        pad_mode: "reflect", "replicate" or "zero" (padding of the blur).
        pad_overflow: "repeat" or "error", as in `BlurPool2D`.
        data_format: "channels_last" or None (Keras' default, which must be channels_last).
        **kwargs: standard Keras layer arguments.
    """

    def __init__(
        self,
        pool_size=2,
        filter_size: int = 4,
        strides=2,
        pad_mode: str = "reflect",
        pad_overflow: str = "repeat",
        data_format: str | None = None,
        **kwargs,
    ):
        _check_channels_last(data_format, type(self).__name__)
        pool_size = _pair(pool_size, "pool_size")
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.blur = BlurPool2D(
            filter_size=filter_size,
            strides=strides,
            pad_mode=pad_mode,
            pad_overflow=pad_overflow,
            data_format="channels_last",
            dtype=self.dtype_policy,
            name="blur",
        )

    @property
    def filter_size(self) -> int:
        return self.blur.filter_size

    @property
    def strides(self) -> tuple[int, int]:
        return self.blur.strides

    @property
    def pad_mode(self) -> str:
        return self.blur.pad_mode

    @property
    def pad_overflow(self) -> str:
        return self.blur.pad_overflow

    @property
    def data_format(self) -> str:
        return self.blur.data_format

    def _pooled_shape(self, input_shape):
        n, h, w, c = input_shape
        sizes = [
            None if size is None else size - pool + 1
            for size, pool in zip((h, w), self.pool_size, strict=True)
        ]
        for name, size in zip(("height", "width"), sizes, strict=True):
            if size is not None and size < 1:
                raise ValueError(
                    f"MaxBlurPool2D input {name} must be at least pool_size {self.pool_size}, "
                    f"got shape {input_shape}."
                )
        return (n, sizes[0], sizes[1], c)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"MaxBlurPool2D expects NHWC input, got shape {input_shape}.")
        self.blur.build(self._pooled_shape(input_shape))

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        x = ops.max_pool(x, self.pool_size, strides=1, padding="valid", data_format="channels_last")
        return self.blur(x)

    def compute_output_shape(self, input_shape):
        return self.blur.compute_output_shape(self._pooled_shape(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update(
            pool_size=list(self.pool_size),
            filter_size=self.filter_size,
            strides=list(self.strides),
            pad_mode=self.pad_mode,
            pad_overflow=self.pad_overflow,
            data_format=self.data_format,
        )
        return config
