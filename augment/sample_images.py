"""Built-in sample images for previews, drawn procedurally (no files, no downloads)."""

from __future__ import annotations

import numpy as np


def sample_images(count: int = 4, size: int = 96) -> np.ndarray:
    """Returns ``count`` uint8 RGB images ``[count, size, size, 3]``: gradients, a disc, stripes
    and a checkerboard, so that colour, contrast and geometric changes are all visible."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    gradient = np.stack([xx, yy, 1.0 - xx], axis=-1)
    disc = ((xx - 0.55) ** 2 + (yy - 0.45) ** 2 < 0.08)[..., None]
    stripes = (np.sin(xx * 18.0 + yy * 6.0) > 0)[..., None]
    checker = ((np.floor(xx * 6) + np.floor(yy * 6)) % 2 == 0)[..., None]
    arrow = ((np.abs(yy - 0.5) < 0.08) & (xx > 0.2) & (xx < 0.7))[..., None]
    arrow |= ((xx >= 0.6) & (xx < 0.85) & (np.abs(yy - 0.5) < 0.85 - xx))[..., None]
    designs = [
        np.where(disc, [0.95, 0.8, 0.1], 0.3 + 0.6 * gradient),
        np.where(stripes, [0.1, 0.3, 0.8], [0.9, 0.9, 0.85]),
        np.where(arrow, [0.8, 0.1, 0.1], np.where(checker, 0.75, 0.35) * [0.9, 1.0, 0.9]),
        np.where(disc | arrow, gradient[..., ::-1], 0.15 + 0.2 * gradient),
    ]
    images = [designs[i % len(designs)] for i in range(count)]
    return np.clip(np.round(np.stack(images) * 255.0), 0, 255).astype(np.uint8)
