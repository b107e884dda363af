"""Writes `torch_reference.npz`: outputs of the reference implementations the study used.

The seed study (pathMNIST / Pets) shifted uint8 PIL images with torchvision's
`GaussianBlur(5, sigma)` and `ColorJitter(brightness=(f, f))`, and measured calibration with
torchmetrics' `CalibrationError(norm='l2', n_bins=10)` of its era (right-closed bins). This script
records those implementations' outputs so that the tests can check `evaluation` against them without
torch installed.

Run it in an environment with torch, torchvision and torchmetrics 0.11.4 (the last release with the
study-era (a, b] binning), e.g.::

    pip install torch torchvision "setuptools<81" && pip install --no-deps torchmetrics==0.11.4
    python tests/reference/make_torch_reference.py

Recorded with torch 2.14.1, torchvision 0.29.1, torchmetrics 0.11.4.
"""

from pathlib import Path

import numpy as np
import torch
import torchmetrics
import torchvision
from torchmetrics.classification import MulticlassCalibrationError
from torchvision import transforms

BLUR_SIGMAS = (0.3, 0.5, 0.7, 0.9)
BRIGHTNESS_FACTORS = (0.6, 0.8, 0.9, 1.1, 1.2, 1.4)


def _apply(transform, images: np.ndarray) -> np.ndarray:
    to_pil = transforms.ToPILImage()
    return np.stack([np.asarray(transform(to_pil(image))) for image in images])


def _calibration_cases(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    logits = rng.normal(size=(257, 5)) * 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 5, size=257)
    # Confidences exactly on bin edges (0.3, 0.5, 0.7) and exactly 1.0.
    edges = np.array(
        [
            [0.3, 0.3, 0.2, 0.1, 0.1],
            [0.5, 0.2, 0.1, 0.1, 0.1],
            [0.7, 0.1, 0.1, 0.05, 0.05],
            [1.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0, 0.0],
            [0.2, 0.2, 0.2, 0.2, 0.2],
        ]
    )
    edge_labels = np.array([0, 1, 0, 0, 1, 3])
    return {
        "random": (probs, labels),
        "edges": (edges, edge_labels),
        "small": (probs[:7], labels[:7]),
        "mixed": (np.concatenate([probs[:40], edges]), np.concatenate([labels[:40], edge_labels])),
    }


def main() -> None:
    rng = np.random.default_rng(20261124)
    arrays = {
        "images_even": rng.integers(0, 256, size=(3, 28, 28, 3), dtype=np.uint8),
        "images_odd": rng.integers(0, 256, size=(2, 31, 46, 3), dtype=np.uint8),
    }
    for key in ("images_even", "images_odd"):
        for sigma in BLUR_SIGMAS:
            blur = transforms.GaussianBlur(kernel_size=5, sigma=sigma)
            arrays[f"blur_{sigma}_{key}"] = _apply(blur, arrays[key])
        for factor in BRIGHTNESS_FACTORS:
            jitter = transforms.ColorJitter(brightness=(factor, factor))
            arrays[f"brightness_{factor}_{key}"] = _apply(jitter, arrays[key])
    for name, (probs, labels) in _calibration_cases(rng).items():
        probs32 = torch.tensor(probs, dtype=torch.float32)
        target = torch.tensor(labels)
        arrays[f"calib_{name}_probs"] = probs32.numpy()
        arrays[f"calib_{name}_labels"] = labels.astype(np.int64)
        for norm in ("l1", "l2", "max"):
            metric = MulticlassCalibrationError(num_classes=probs.shape[1], n_bins=10, norm=norm)
            arrays[f"calib_{name}_{norm}"] = np.float64(metric(probs32, target).item())
    arrays["versions"] = np.array(
        [torch.__version__, torchvision.__version__, torchmetrics.__version__]
    )
    np.savez_compressed(Path(__file__).with_name("torch_reference.npz"), **arrays)


if __name__ == "__main__":
    main()
