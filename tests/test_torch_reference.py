"""`evaluation` against outputs recorded from the study's own implementations.

`tests/reference/torch_reference.npz` holds what torchvision's `GaussianBlur` / `ColorJitter`
(on uint8 PIL images, as the study applied them) and torchmetrics 0.11.4's `CalibrationError`
returned on fixed inputs; `tests/reference/make_torch_reference.py` records it. No torch is needed.
"""

from pathlib import Path

import numpy as np
import pytest

from evaluation import metrics, shifts

REFERENCE = np.load(Path(__file__).parent / "reference" / "torch_reference.npz")
IMAGE_KEYS = ("images_even", "images_odd")


@pytest.mark.parametrize("key", IMAGE_KEYS)
@pytest.mark.parametrize("sigma", shifts.BLUR_SIGMAS)
def test_gaussian_blur_matches_torchvision(key, sigma):
    expected = REFERENCE[f"blur_{sigma}_{key}"].astype(np.int16)
    actual = np.asarray(shifts.gaussian_blur(REFERENCE[key], sigma)).astype(np.int16)
    diff = np.abs(actual - expected)
    # Bit-exact except rare +-1 rounding differences (float32 accumulation order).
    assert diff.max() <= 1
    assert np.mean(diff > 0) < 1e-3


@pytest.mark.parametrize("key", IMAGE_KEYS)
@pytest.mark.parametrize("factor", (0.6, 0.8, 0.9, 1.1, 1.2, 1.4))
def test_brightness_matches_torchvision_color_jitter(key, factor):
    actual = np.asarray(shifts.brightness(REFERENCE[key], factor))
    np.testing.assert_array_equal(actual, REFERENCE[f"brightness_{factor}_{key}"])


METRICS = {
    "l2": metrics.rms_calibration_error,
    "l1": metrics.expected_calibration_error,
}


@pytest.mark.parametrize("case", ("random", "edges", "small", "mixed"))
@pytest.mark.parametrize("norm", sorted(METRICS))
def test_calibration_error_matches_study_torchmetrics(case, norm):
    probs = REFERENCE[f"calib_{case}_probs"]
    labels = REFERENCE[f"calib_{case}_labels"]
    expected = float(REFERENCE[f"calib_{case}_{norm}"])
    assert METRICS[norm](probs, labels, num_bins=10) == pytest.approx(expected, rel=1e-5, abs=1e-6)
