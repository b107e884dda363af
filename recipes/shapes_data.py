"""A generated stars-and-moons data set with a position shortcut (after Geirhos et al. 2020).

In training every star sits in the top-left quadrant and every moon in the bottom-right one (with
jitter in position, size, rotation and colour), so position alone predicts the class. The test
conditions break one thing each, keeping the rest as in training:

- `iid`: drawn like the training set;
- `opposite_quadrant`: stars bottom-right, moons top-left (Geirhos' test);
- `scale`: shapes 0.5x or 1.6x their training size;
- `rotation`: any rotation (training allows +-15 degrees);
- `background`: a textured background (random-phase noise and stripes) instead of a dark, flat one.

Images are drawn with vectorised NumPy masks from one seed: the same seed gives the same bytes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from recipes.datasets import DataSplits

CLASS_NAMES = ("star", "moon")
CONDITIONS = ("iid", "opposite_quadrant", "scale", "rotation", "background")
STAR_POINTS = 5
STAR_INNER = 0.45  # inner radius / outer radius of the star
MOON_OFFSET = 0.55  # centre offset of the subtracted disc, in radii
TRAIN_ROTATION = np.deg2rad(15.0)


@dataclasses.dataclass(frozen=True)
class ShapesData:
    """The training splits (`splits.test` is the i.i.d. test set) and the shifted test sets."""

    splits: DataSplits
    shifted: dict[str, tf.data.Dataset]


def star_mask(dx: np.ndarray, dy: np.ndarray, radius: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Pixels inside a 5-pointed star of outer `radius`: the boundary radius varies with angle.

    Between two neighbouring tips the boundary follows straight-line-like interpolation of the
    polar radius from `radius` (tip) to `STAR_INNER * radius` (notch).
    """
    theta = np.arctan2(dy, dx) - angle
    sector = 2 * np.pi / STAR_POINTS
    phase = np.abs(((theta + sector / 2) % sector) - sector / 2) / (sector / 2)  # 0 tip, 1 notch
    boundary = radius * (1 - (1 - STAR_INNER) * phase)
    return np.hypot(dx, dy) <= boundary


def moon_mask(dx: np.ndarray, dy: np.ndarray, radius: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """A crescent: the disc of `radius` minus an equal disc shifted by MOON_OFFSET radii."""
    ox = MOON_OFFSET * radius * np.cos(angle)
    oy = MOON_OFFSET * radius * np.sin(angle)
    return (np.hypot(dx, dy) <= radius) & (np.hypot(dx - ox, dy - oy) > radius)


def moon_area(radius: float) -> float:
    """Exact crescent area: disc minus the lens two equal circles at distance d share."""
    d = MOON_OFFSET * radius
    lens = 2 * radius**2 * np.arccos(d / (2 * radius)) - d / 2 * np.sqrt(4 * radius**2 - d**2)
    return np.pi * radius**2 - lens


def _backgrounds(rng: np.random.Generator, n: int, size: int, textured: bool) -> np.ndarray:
    if not textured:
        level = rng.uniform(0, 50, (n, 1, 1, 1))
        return np.broadcast_to(level, (n, size, size, 3)).copy()
    y, x = np.mgrid[:size, :size] / size
    frequency = rng.uniform(2, 6, (n, 1, 1))
    direction = rng.uniform(0, np.pi, (n, 1, 1))
    stripes = np.sin(2 * np.pi * frequency * (x * np.cos(direction) + y * np.sin(direction)))
    noise = rng.uniform(-1, 1, (n, size, size))
    gray = 110 + 60 * stripes + 50 * noise
    tint = rng.uniform(0.6, 1.2, (n, 1, 1, 3))
    return gray[..., None] * tint


def draw_shapes(
    rng: np.random.Generator, n: int, size: int, condition: str = "iid"
) -> tuple[np.ndarray, np.ndarray]:
    """Draws `n` images of one condition.

    Returns:
        uint8 images (n, size, size, 3) and int64 labels (0 star, 1 moon), classes alternating.
    """
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    labels = np.arange(n, dtype=np.int64) % 2
    # Quadrant centres: star top-left, moon bottom-right; swapped for the opposite-quadrant test.
    quadrant = labels if condition != "opposite_quadrant" else 1 - labels
    centre = np.where(quadrant[:, None] == 0, 0.25, 0.75) * size
    centre = centre + rng.uniform(-0.06, 0.06, (n, 2)) * size
    radius = rng.uniform(0.15, 0.2, n) * size
    if condition == "scale":
        radius = radius * rng.choice([0.5, 1.6], n)
    angle = rng.uniform(-TRAIN_ROTATION, TRAIN_ROTATION, n)
    if condition == "rotation":
        angle = rng.uniform(0, 2 * np.pi, n)
    # Moons open to the right in training: angle 0 puts the subtracted disc on the right.
    y, x = np.mgrid[:size, :size] + 0.5
    dx = x[None] - centre[:, 1, None, None]
    dy = y[None] - centre[:, 0, None, None]
    r, a = radius[:, None, None], angle[:, None, None]
    mask = np.where(labels[:, None, None] == 0, star_mask(dx, dy, r, a), moon_mask(dx, dy, r, a))
    colour = rng.uniform(150, 255, (n, 1, 1, 3))
    images = np.where(
        mask[..., None], colour, _backgrounds(rng, n, size, condition == "background")
    )
    return np.clip(np.round(images), 0, 255).astype(np.uint8), labels


def make_shapes(
    *, seed: int = 0, image_size: int = 32, train_size: int = 2000, test_size: int = 500
) -> ShapesData:
    """Generates the training splits and every test condition, deterministically from `seed`.

    Args:
        seed: one seed for everything (each split draws from its own child generator).
        image_size: side of the square images.
        train_size: training images; validation has `test_size // 2` i.i.d. images.
        test_size: images per test condition.
    """
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16 to draw the shapes, got {image_size}")
    streams = np.random.default_rng(seed).spawn(2 + len(CONDITIONS))
    train_images, train_labels = draw_shapes(streams[0], train_size, image_size)
    val_images, val_labels = draw_shapes(streams[1], max(2, test_size // 2), image_size)
    shifted_arrays = {
        condition: draw_shapes(stream, test_size, image_size, condition)
        for condition, stream in zip(CONDITIONS, streams[2:], strict=True)
    }
    pixels = train_images.reshape(-1, 3).astype(np.float64)

    def dataset(images: np.ndarray, labels: np.ndarray) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices((images, labels))

    shifted = {name: dataset(*arrays) for name, arrays in shifted_arrays.items()}
    splits = DataSplits(
        train=dataset(train_images, train_labels),
        val=dataset(val_images, val_labels),
        test=shifted["iid"],
        num_classes=len(CLASS_NAMES),
        image_size=image_size,
        name="shapes",
        mean=tuple(pixels.mean(axis=0).tolist()),
        std=tuple(pixels.std(axis=0).tolist()),
        train_size=train_size,
        val_size=len(val_labels),
        test_size=test_size,
        class_names=CLASS_NAMES,
        source=f"generated, seed {seed}",
    )
    return ShapesData(splits=splits, shifted=shifted)
