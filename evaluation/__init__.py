"""Robustness evaluation of Keras image classifiers.

Accuracy and calibration under the reference study's blur/brightness shifts, the ImageNet-C
corruptions and small translations; reports as JSON, Markdown and PNG plots.

Names are imported on first use (PEP 562), so `python -m evaluation --help` and the package's
other command lines answer without loading TensorFlow.
"""

import importlib

# public name -> the module that defines it
_EXPORTS = {
    "PERTURBATION_SIGMAS": "evaluation.calibration",
    "TemperatureScaling": "evaluation.calibration",
    "add_gaussian_noise": "evaluation.calibration",
    "fit_temperature": "evaluation.calibration",
    "matched_noise_levels": "evaluation.calibration",
    "perturbed_validation": "evaluation.calibration",
    "flip_probability": "evaluation.consistency",
    "translation_sensitivity": "evaluation.consistency",
    "corrupt": "evaluation.corruptions",
    "corruption_names": "evaluation.corruptions",
    "ALEXNET_BASELINE": "evaluation.metrics",
    "StreamingMetrics": "evaluation.metrics",
    "accuracy": "evaluation.metrics",
    "adaptive_rms_calibration_error": "evaluation.metrics",
    "brier_score": "evaluation.metrics",
    "expected_calibration_error": "evaluation.metrics",
    "mean_corruption_error": "evaluation.metrics",
    "negative_log_likelihood": "evaluation.metrics",
    "rms_calibration_error": "evaluation.metrics",
    "Report": "evaluation.report",
    "SUITES": "evaluation.runner",
    "evaluate": "evaluation.runner",
    "brightness": "evaluation.shifts",
    "gaussian_blur": "evaluation.shifts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
