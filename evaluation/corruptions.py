"""The ImageNet-C corruptions (Hendrycks & Dietterich 2019) in TensorFlow, batched and seeded.

Parameters follow the `imagecorruptions` 1.1.2 package (the ImageNet-C script's tables, with its
size-agnostic changes: elastic transform, nearest-neighbour pixelate upsampling, fog map size,
top-left crop after zoom). Differences to that package, all deliberate:

- images from 28 px up, any aspect ratio, a batch at a time; random numbers come from a
  counter-based generator keyed by a seed per image (`evaluation.corruption_random`), so an
  image's result depends only on the image, its seed, the corruption and the severity;
- motion blur and snow use the package's shift-and-add motion blur (no ImageMagick);
- glass blur replaces the sequential pixel-swap loop by `iterations` rounds of random local
  displacements from the same offset range (a gather, so pixels can repeat: same statistics, not
  the same permutation);
- frost uses procedurally drawn textures shipped in `evaluation/assets/frost.npz` (see
  `evaluation/assets/make_frost.py`), not the photographs;
- spatter's water branch (severities 1-3) replaces OpenCV's Canny edges and L2 distance transform
  by the drops' boundary and an octagonal distance (the equalisation and emboss steps are kept);
- grayscale (1-channel) input is tiled to RGB, corrupted, and converted back with ITU-R 601 weights.

Outputs are truncated to uint8 like the reference's `np.uint8(...)`. Corruptions run op by op (no
tracing), with their hot loops as XLA kernels that take the severity's parameters as tensors where
shapes allow, so few compilations serve all 95 (name, severity) pairs; inside `tf.data` the same
code becomes part of the dataset's graph. The families live in `corruptions_noise`,
`corruptions_blur`, `corruptions_weather` and `corruptions_digital`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from evaluation import corruptions_blur as blur
from evaluation import corruptions_digital as digital
from evaluation import corruptions_noise as noise
from evaluation import corruptions_weather as weather
from evaluation import filters
from evaluation.corruption_random import ImageRandom, image_seeds

MIN_SIZE = 28
SEVERITIES = (1, 2, 3, 4, 5)


@dataclasses.dataclass(frozen=True)
class Corruption:
    """A registered corruption.

    Attributes:
        fn: fn(images, s, rng) -> float 0..255 or uint8; images uint8 NHWC RGB, s = severity - 1,
            rng an `ImageRandom` holding the per-image seeds.
        family: noise, blur, weather, digital or extra.
        stochastic: whether it draws random numbers.
    """

    fn: Callable
    family: str
    stochastic: bool


# name -> Corruption, in the imagecorruptions order (15 common, then the 4 extra).
CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": Corruption(noise.gaussian_noise, "noise", True),
    "shot_noise": Corruption(noise.shot_noise, "noise", True),
    "impulse_noise": Corruption(noise.impulse_noise, "noise", True),
    "defocus_blur": Corruption(blur.defocus_blur, "blur", False),
    "glass_blur": Corruption(blur.glass_blur, "blur", True),
    "motion_blur": Corruption(blur.motion_blur, "blur", True),
    "zoom_blur": Corruption(blur.zoom_blur, "blur", False),
    "snow": Corruption(weather.snow, "weather", True),
    "frost": Corruption(weather.frost, "weather", True),
    "fog": Corruption(weather.fog, "weather", True),
    "brightness": Corruption(digital.brightness, "weather", False),
    "contrast": Corruption(digital.contrast, "digital", False),
    "elastic_transform": Corruption(digital.elastic_transform, "digital", True),
    "pixelate": Corruption(digital.pixelate, "digital", False),
    "jpeg_compression": Corruption(digital.jpeg_compression, "digital", False),
    "speckle_noise": Corruption(noise.speckle_noise, "extra", True),
    "gaussian_blur": Corruption(blur.gaussian_blur, "extra", False),
    "spatter": Corruption(weather.spatter, "extra", True),
    "saturate": Corruption(digital.saturate, "extra", False),
}

_COMMON = [name for name, c in CORRUPTIONS.items() if c.family != "extra"]
SUBSETS: dict[str, list[str]] = {
    "common": _COMMON,
    "extra": [name for name, c in CORRUPTIONS.items() if c.family == "extra"],
    "all": list(CORRUPTIONS),
    **{
        family: [name for name, c in CORRUPTIONS.items() if c.family == family]
        for family in ("noise", "blur", "weather", "digital")
    },
}


def corruption_names(subset: str = "common") -> list[str]:
    """Corruption names of a subset: common (15), extra (4), all, noise, blur, weather, digital."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown corruption subset {subset!r}; allowed: {list(SUBSETS)}")
    return list(SUBSETS[subset])


def check_corruption(name: str, severity: int) -> None:
    """Raises ValueError for an unknown corruption name or a severity outside 1..5."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; allowed: {list(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")


def _apply(name: str, images: tf.Tensor, seeds: tf.Tensor, s: int) -> tf.Tensor:
    """Runs corruption `name` on uint8 NHWC images with int64 per-image seeds; returns uint8."""
    channels = images.shape[-1]
    if channels == 1:
        images = tf.tile(images, [1, 1, 1, 3])
    rng = ImageRandom(seeds, stream=list(CORRUPTIONS).index(name) * 8 + s + 1)
    y = CORRUPTIONS[name].fn(images, s, rng)
    if channels == 1:
        y = weather.gray(tf.cast(y, tf.float32))
    return y if y.dtype == tf.uint8 else noise.truncate(y)


def per_image_seeds(seed, n) -> tf.Tensor:
    """The int64 [n] seeds `corrupt` uses: a 1-D seed as given, a scalar via `image_seeds`."""
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer or seed.shape.rank not in (0, 1):
        raise ValueError(
            f"seed must be an int or a 1-D int array of per-image seeds, got {seed.dtype.name} "
            f"of shape {seed.shape}"
        )
    if seed.shape.rank == 0:
        return image_seeds(int(seed) if tf.executing_eagerly() else seed, n)
    if isinstance(n, int) and seed.shape[0] is not None and seed.shape[0] != n:
        raise ValueError(f"seed has {seed.shape[0]} per-image seeds for a batch of {n} images")
    return tf.cast(seed, tf.int64)


def corrupt(images, name: str, severity: int, seed=0):
    """Applies one corruption at one severity to uint8 images, seeded per image.

    Args:
        images: uint8 NHWC (or HWC) NumPy array or tensor, H and W >= 28, 1 or 3 channels.
        name: a name from `corruption_names("all")` (imagecorruptions spelling).
        severity: 1..5.
        seed: one int seed per image as a 1-D int array / tensor of length N; image i's result
            depends only on (image i, seed[i], name, severity), not on its batch. A scalar int
            seed s stands for the per-image seeds `image_seeds(s, N)` = s * 2**20 + i; for a
            single HWC image a scalar seed is that image's own seed.

    Returns:
        uint8 images of the same shape (NumPy in -> NumPy out, tensor in -> tensor out).
    """
    check_corruption(name, severity)
    x = filters.to_static_nhwc(images)
    h, w, c = x.shape[1:]
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"images must be at least {MIN_SIZE}x{MIN_SIZE} pixels, got {h}x{w}")
    if c not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {c}")
    single = len(images.shape) == 3
    if single and np.ndim(seed) == 0:
        seed = tf.reshape(tf.convert_to_tensor(seed), [1])
    n = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
    seeds = per_image_seeds(seed, n)  # validates the seed even where no numbers are drawn
    y = _apply(name, x, seeds, severity - 1)
    if single:
        y = y[0]
    return y.numpy() if isinstance(images, np.ndarray) else y
