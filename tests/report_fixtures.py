"""Synthetic `Report`s for the report tests: rows computed by `StreamingMetrics` on simulated
probabilities (so every row is self-consistent), no model. Numbers are fake: for tests only."""

from __future__ import annotations

import numpy as np

from evaluation.metrics import StreamingMetrics
from evaluation.report import Report

CLASSES = 9
BRIGHTNESS = (0.8, 0.9, 1.1, 1.2)
BLUR = (0.3, 0.5, 0.7, 0.9)
COMMON = (
    "gaussian_noise shot_noise impulse_noise defocus_blur glass_blur motion_blur zoom_blur snow "
    "frost fog brightness contrast elastic_transform pixelate jpeg_compression"
).split()
CONSISTENCY = {
    "shift_consistency": 0.9123,
    "p_top1_change": 0.0456,
    "mean_abs_change": 0.0321,
    "flip_probability_noise": 0.0789,
    "settings": {
        "max_shift_fraction": 0.125,
        "translation_steps": 8,
        "noise_sigma": 0.03,
        "noise_frames": 10,
    },
}


def simulated_row(rng, strength: float, n: int, with_ci: bool) -> dict:
    """Metrics of a simulated classifier whose true-class logit is boosted by `strength`."""
    labels = rng.integers(0, CLASSES, n)
    logits = rng.normal(0, 1, (n, CLASSES))
    logits[np.arange(n), labels] += strength
    probs = np.exp(logits * 1.5)
    probs /= probs.sum(1, keepdims=True)
    m = StreamingMetrics()
    m.update(probs, labels)
    row = m.result()
    if with_ci:  # a made-up, deliberately asymmetric interval around each value
        row["ci95"] = {
            "accuracy": [row["accuracy"] - 0.012, row["accuracy"] + 0.009],
            "rms_calibration_error": [
                row["rms_calibration_error"] * 0.7,
                row["rms_calibration_error"] * 1.4,
            ],
            "expected_calibration_error": [
                row["expected_calibration_error"] * 0.75,
                row["expected_calibration_error"] * 1.3,
            ],
        }
    return row


def make_report(
    study: bool = True,
    corruptions=(),
    severities=(1, 2, 3, 4, 5),
    with_ci: bool = False,
    consistency: bool = False,
    n: int = 2000,
    seed: int = 0,
    meta: dict | None = None,
) -> Report:
    """A report with the chosen suites; harder conditions get weaker simulated classifiers."""
    rng = np.random.default_rng(seed)
    results = [
        {"suite": "clean", "shift": "clean", "level": None, **simulated_row(rng, 3.0, n, with_ci)}
    ]
    if study:
        for sigma in BLUR:
            row = simulated_row(rng, 3.0 - 1.2 * sigma, n, with_ci)
            results.append({"suite": "study", "shift": "blur", "level": sigma, **row})
        for f in BRIGHTNESS:
            row = simulated_row(rng, 3.0 - 3 * abs(f - 1), n, with_ci)
            results.append({"suite": "study", "shift": "brightness", "level": f, **row})
    for i, name in enumerate(corruptions):
        for s in severities:
            row = simulated_row(rng, 3.0 - s * (0.15 + 0.03 * i), n, with_ci)
            results.append({"suite": "imagenet-c", "shift": name, "level": s, **row})
    suites = (["study"] if study else []) + (["imagenet-c"] if corruptions else [])
    default_meta = {
        "suites": suites + (["consistency"] if consistency else []),
        "dataset": "pathmnist.npz",
        "dataset_name": "pathmnist",
        "image_size": 28,
        "num_examples": n,
        "brightness_factors": list(BRIGHTNESS),
        "severities": list(severities),
        "seed": 0,
        "model": "resnet18",
    }
    return Report(results, dict(CONSISTENCY) if consistency else {}, default_meta | (meta or {}))
