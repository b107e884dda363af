"""Temperature scaling of a whole model: fit T on validation data, report calibration before/after.

`fit_model_temperature` runs a model over validation batches (clean, or under the perturbed
calibration set's Gaussian noise: `calibration.perturbed_validation`) and fits one temperature on
its log-probabilities. A model that returns probabilities needs no logits: softmax(log p / T) =
softmax(z / T), since log p = z - logsumexp(z) shifts every class alike. `with_temperature`
appends the temperature to such a model; `compare` puts both reports' calibration side by side.
The test suite's shifts and corruptions are never used to fit: only the validation split, and
for `perturbed` additive Gaussian noise at levels that are not ImageNet-C's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from evaluation.calibration import (
    PERTURBATION_SIGMAS,
    TEMPERATURE_BOUNDS,
    fit_temperature,
    perturbed_validation,
)
from evaluation.report import Report

MODES = ("none", "clean", "perturbed")
# How many times the validation set is drawn under noise for `perturbed` (each image gets one
# level per pass, the levels balanced within each batch).
PERTURBED_PASSES = 2
# log(p) of a float32 probability: p is clipped to the smallest normal float32 first.
_TINY = float(np.finfo(np.float32).tiny)


def check_mode(mode: str) -> str:
    """Returns `mode` if it is one of MODES; ValueError naming the allowed values otherwise."""
    if mode not in MODES:
        raise ValueError(f"calibration mode must be one of {list(MODES)}, got {mode!r}")
    return mode


def logits_of(model: Callable, preprocess: Callable | None = None, from_logits: bool = False):
    """images (0..255) -> the model's logits, or log p for a model that returns probabilities."""

    def logits(images: tf.Tensor) -> tf.Tensor:
        x = tf.cast(images, tf.float32) if preprocess is None else preprocess(images)
        outputs = tf.cast(model(x, training=False), tf.float32)
        return outputs if from_logits else tf.math.log(tf.maximum(outputs, _TINY))

    return logits


def fit_model_temperature(
    logits_fn: Callable[[tf.Tensor], tf.Tensor],
    batches: tf.data.Dataset,
    mode: str,
    seed: int = 0,
) -> float:
    """The temperature that minimises the NLL of `logits_of` on the validation batches.

    Args:
        logits_fn: uint8 image batch -> logits (or log-probabilities), e.g. `logits_of(model)`.
        batches: (uint8 NHWC batch, integer labels) of the validation split.
        mode: "clean" (the batches as they are) or "perturbed" (each image under one of
            `PERTURBATION_SIGMAS`' noise levels, `PERTURBED_PASSES` passes).
        seed: seeds the perturbation.

    Returns:
        (T > 0, None), or (1.0, the reason) when the fit ran to a bound.
    """
    if check_mode(mode) == "none":
        raise ValueError("mode 'none' fits no temperature")
    passes = 1 if mode == "clean" else PERTURBED_PASSES
    logits, labels = [], []
    for repeat in range(passes):
        for index, (images, batch_labels) in enumerate(batches):
            if mode == "perturbed":
                batch_seed = (seed * 1_000_003 + repeat) * 1_000_003 + index
                images = perturbed_validation(images, batch_seed, PERTURBATION_SIGMAS)
            logits.append(np.asarray(logits_fn(images), np.float64))
            labels.append(np.asarray(batch_labels).reshape(-1))
    if not logits:
        raise ValueError("the validation data yielded no examples to fit the temperature on")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bounds are handled below
        temperature = fit_temperature(np.concatenate(logits), np.concatenate(labels))
    if temperature in TEMPERATURE_BOUNDS:
        return 1.0, (
            f"the fit ran to its bound T = {temperature:g} (the validation data hold no estimate "
            "of T, e.g. every image right with a margin): left uncalibrated, T = 1"
        )
    return temperature, None


def with_temperature(model: keras.Model, temperature: float, from_logits: bool = False):
    """`model` followed by temperature scaling.

    A probability model gives softmax(log p / T); a logits model (`from_logits`) gives z / T,
    still logits.
    """
    from evaluation.calibration import TemperatureScaling

    inputs = keras.Input(model.input_shape[1:], name="image")
    outputs = keras.ops.cast(model(inputs), "float32")
    if not from_logits:
        outputs = keras.ops.log(keras.ops.maximum(outputs, _TINY))
    outputs = TemperatureScaling(temperature, name="temperature")(outputs)
    if not from_logits:
        outputs = keras.layers.Softmax(dtype="float32", name="probabilities")(outputs)
    return keras.Model(inputs, outputs, name=f"{model.name}_calibrated")


def describe(mode: str, temperature: float, source: str, note: str | None = None) -> dict:
    """The report's `meta["calibration"]` entry."""
    fitted_on = {
        "clean": f"{source}, as it is",
        "perturbed": f"{source} under Gaussian noise, sigma {list(PERTURBATION_SIGMAS)} on the "
        "[0, 1] scale (not the test suite's shifts or corruptions)",
    }[mode]
    entry = {"mode": mode, "temperature": temperature, "fitted_on": fitted_on}
    return entry | ({"note": note} if note else {})


def compare(calibrated: Report, uncalibrated: Report, calibration: dict) -> Report:
    """The calibrated report, each row with the uncalibrated calibration errors beside it."""
    keys = ("accuracy", "rms_calibration_error", "expected_calibration_error", "nll")
    before = {(r["suite"], r["shift"], r["level"]): r for r in uncalibrated.results}
    for row in calibrated.results:
        old = before[(row["suite"], row["shift"], row["level"])]
        row["uncalibrated"] = {key: old[key] for key in keys if key in old}
    calibrated.meta["calibration"] = calibration
    return calibrated
