"""Robustness evaluation of Keras image classifiers.

Accuracy and calibration under the reference study's blur/brightness shifts, the ImageNet-C
corruptions and small translations; reports as JSON, Markdown and PNG plots.
"""

from evaluation.consistency import flip_probability, translation_sensitivity
from evaluation.corruptions import corrupt, corruption_names
from evaluation.metrics import (
    ALEXNET_BASELINE,
    StreamingMetrics,
    accuracy,
    adaptive_rms_calibration_error,
    brier_score,
    expected_calibration_error,
    mean_corruption_error,
    negative_log_likelihood,
    rms_calibration_error,
)
from evaluation.report import Report
from evaluation.runner import SUITES, evaluate
from evaluation.shifts import brightness, gaussian_blur

__all__ = [
    "ALEXNET_BASELINE",
    "SUITES",
    "Report",
    "StreamingMetrics",
    "accuracy",
    "adaptive_rms_calibration_error",
    "brier_score",
    "brightness",
    "corrupt",
    "corruption_names",
    "evaluate",
    "expected_calibration_error",
    "flip_probability",
    "gaussian_blur",
    "mean_corruption_error",
    "negative_log_likelihood",
    "rms_calibration_error",
    "translation_sensitivity",
]
