"""Draws the procedural frost textures in `frost.npz` (python -m evaluation.assets.make_frost).

ImageNet-C's frost blends photographs of frost into the image. We do not ship those photographs;
instead this script draws ice-like textures: a hazy low-frequency base plus branching crystal
needles (random walks that split at about +-60 degrees, like dendrites), anti-aliased with OpenCV.
The luminance is rescaled to the reference photographs' mean and spread (mean 165, std 33 over
frost1-5 of the imagecorruptions package) and a bluish tint close to theirs is stored separately
(RGB means 146, 167, 179), so a frost corruption has a similar strength. Deterministic (seeded).
"""

from __future__ import annotations

import pathlib

import cv2
import numpy as np

SIZE = 192
COUNT = 5
TARGET_MEAN, TARGET_STD = 165.0, 33.0
TINT = np.array([146.0, 167.0, 179.0]) / 164.0


def _crystals(rng: np.random.Generator, size: int) -> np.ndarray:
    canvas = np.zeros((size, size), np.float32)
    stack = [
        (rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0, 2 * np.pi), 1.0)
        for _ in range(40)
    ]
    while stack:
        x, y, angle, strength = stack.pop()
        for _ in range(int(rng.integers(4, 14))):
            step = rng.uniform(2, 6)
            nx, ny = x + step * np.cos(angle), y + step * np.sin(angle)
            cv2.line(
                canvas,
                (int(x * 4), int(y * 4)),
                (int(nx * 4), int(ny * 4)),
                float(strength),
                1,
                cv2.LINE_AA,
                shift=2,
            )
            x, y = nx, ny
            angle += rng.normal(0, 0.15)
            if strength > 0.3 and rng.random() < 0.2:
                side = rng.choice([-1, 1]) * np.pi / 3
                stack.append((x, y, angle + side, strength * 0.7))
    return canvas


def make_texture(seed: int, size: int = SIZE) -> np.ndarray:
    """One luminance texture, uint8 [size, size]."""
    rng = np.random.default_rng(seed)
    haze = cv2.GaussianBlur(rng.normal(size=(size, size)).astype(np.float32), (0, 0), size / 10)
    grain = cv2.GaussianBlur(rng.normal(size=(size, size)).astype(np.float32), (0, 0), 1.0)
    crystals = cv2.GaussianBlur(_crystals(rng, size), (0, 0), 0.6)
    lum = haze / (haze.std() + 1e-6) + 0.5 * grain / (grain.std() + 1e-6)
    lum += 3.0 * crystals / (crystals.std() + 1e-6)
    lum = (lum - lum.mean()) / lum.std() * TARGET_STD + TARGET_MEAN
    return np.clip(np.round(lum), 0, 255).astype(np.uint8)


def main() -> None:
    out = pathlib.Path(__file__).with_name("frost.npz")
    luminance = np.stack([make_texture(seed) for seed in range(COUNT)])
    np.savez_compressed(out, luminance=luminance, tint=TINT.astype(np.float32))
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
