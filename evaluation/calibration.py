"""Temperature scaling (Guo et al., ICML 2017) and the perturbed calibration set (Tomani et al.,
CVPR 2021).

- `fit_temperature(logits, labels)`: the T > 0 minimising the mean negative log-likelihood of
  softmax(logits / T). The NLL is convex in 1/T, so the root of its derivative is found by Brent's
  bracketing method in log T, in float64 (no learning rate, no iteration budget to tune).
- `TemperatureScaling(temperature)`: a Keras layer dividing logits by T, to append to a model.
- `perturbed_validation(images, seed, sigmas)`: validation images under Gaussian noise of several
  levels, the calibration set meant to keep temperature scaling useful under domain shift;
  `matched_noise_levels` picks the levels per model as Tomani et al. do, `add_gaussian_noise` is
  the noise itself.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from scipy import optimize

from layers.temperature_scaling import TemperatureScaling

# T is searched in [lower, upper]; an optimum outside is returned as the nearest bound (warned).
TEMPERATURE_BOUNDS = (1e-2, 1e2)
# Brent's tolerance in log T: |T_found - T_opt| <= 1e-10 * T, i.e. below 1e-8 inside the bounds.
_LOG_T_TOL = 1e-10

# Noise standard deviations on the [0, 1] image scale, one per calibration-set level (0 = clean).
# Tomani et al. tune 10 levels per model so that accuracy falls linearly from the clean accuracy
# to chance (`matched_noise_levels` does that); without a model at hand we fix 10 levels: the
# clean set plus nine roughly geometric steps from barely visible (0.02, about 5 grey levels) to
# an image mostly drowned in noise (1.0). They deliberately avoid the ImageNet-C `gaussian_noise`
# severities (0.08, 0.12, 0.18, 0.26, 0.38), which the test suite evaluates. How fast accuracy
# falls is very model-dependent (a small shapes CNN is near chance from 0.1 on), so prefer the
# matched levels when the validation set can be predicted ~20 times.
PERTURBATION_SIGMAS = (0.0, 0.02, 0.04, 0.07, 0.1, 0.15, 0.22, 0.32, 0.5, 1.0)
# Where `matched_noise_levels` measures accuracy: 0, then 24 geometric steps from 0.005 to 1.0.
NOISE_GRID = (0.0, *np.geomspace(0.005, 1.0, 24).tolist())
__all__ = [
    "PERTURBATION_SIGMAS",
    "TemperatureScaling",
    "add_gaussian_noise",
    "fit_temperature",
    "matched_noise_levels",
    "perturbed_validation",
]

# Stateless-RNG stream ids (the second seed word); distinct from `corruptions.Seeds`' streams.
_LEVEL_STREAM, _NOISE_STREAM = 1501, 1502


# ------------------------------------------------------------------------- temperature fitting


def _target_logits(labels, num_examples: int, num_classes: int, logits: np.ndarray) -> np.ndarray:
    """sum_k y_ik z_ik per row [N, 1] for class ids [N] or one-hot / probability rows [N, K]."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        if labels.shape[0] != num_examples:
            raise ValueError(f"{num_examples} logit rows but {labels.shape[0]} labels")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"1-D labels must be integer class ids, got dtype {labels.dtype}")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"class ids must lie in [0, {num_classes - 1}]")
        return np.take_along_axis(logits, labels[:, None].astype(np.intp), axis=1)
    if labels.shape != (num_examples, num_classes):
        raise ValueError(
            f"labels must be class ids [{num_examples}] or one-hot "
            f"[{num_examples}, {num_classes}], got shape {labels.shape}"
        )
    targets = labels.astype(np.float64)
    if not np.all(np.isfinite(targets)) or targets.min() < 0:
        raise ValueError("one-hot labels must be finite and non-negative")
    if not np.allclose(targets.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("one-hot labels must have rows summing to 1")
    return np.sum(targets * logits, axis=1, keepdims=True)


def _nll_slope(centred: np.ndarray, shifted: np.ndarray, beta: float) -> float:
    """d/d(beta) of the mean NLL at inverse temperature beta: mean_i sum_k (p_ik - y_ik) z_ik.

    With centred = z - c, c_i = sum_k y_ik z_ik, that is mean_i sum_k p_ik centred_ik (p and y
    sum to 1): a nearly certain correct prediction gives a tiny negative term instead of the
    rounding error of 1 - p. p = softmax(beta * shifted), shifted = centred - its row max <= 0
    (softmax ignores a shift per row; exp cannot overflow). The slope is non-decreasing in beta
    (its derivative is the mean variance of z under p), so it changes sign once.
    """
    weights = beta * shifted
    np.exp(weights, out=weights)  # unnormalised p, max 1
    return float(np.mean(np.sum(weights * centred, axis=1) / np.sum(weights, axis=1)))


def fit_temperature(logits, labels, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The temperature T that minimises the mean NLL of softmax(logits / T) on held-out data.

    Dividing by T > 0 keeps every argmax, so accuracy is unchanged; over-confident models get
    T > 1. The NLL is convex in beta = 1/T with slope mean_i [E_p(z_i) - z_i,y_i], non-decreasing
    in beta; Brent's method finds the slope's root in log T to a relative 1e-10.

    Documented results at the edges (each with a RuntimeWarning saying why):
    - the NLL still falls at the lower bound (typically every example right with a margin: the
      likelihood grows without limit as T -> 0): returns `bounds[0]`;
    - the NLL still falls at the upper bound (predictions no better than uniform): `bounds[1]`;
    - every row of logits constant (the NLL does not depend on T): 1.0.

    Args:
        logits: [N, K] float logits (NumPy or tensor), K >= 2, all finite.
        labels: [N] integer class ids, or [N, K] one-hot (probability rows give the
            cross-entropy optimum).
        bounds: (lower, upper) search interval for T, 0 < lower < 1 < upper.

    Returns:
        T as a Python float.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"logits must be [N, K] with K >= 2 classes, got shape {z.shape}")
    if z.shape[0] == 0:
        raise ValueError("no examples: logits has 0 rows")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits contain NaN or infinity")
    lower, upper = (float(b) for b in bounds)
    if not 0 < lower < 1 < upper < math.inf:
        raise ValueError(f"bounds must satisfy 0 < lower < 1 < upper < inf, got {bounds}")
    centred = z - _target_logits(labels, *z.shape, z)
    shifted = centred - centred.max(axis=1, keepdims=True)

    if np.all(np.ptp(z, axis=1) == 0):
        warnings.warn(
            "every row of logits is constant: the NLL does not depend on T; returning T = 1.0",
            RuntimeWarning,
            stacklevel=2,
        )
        return 1.0

    def slope(log_t: float) -> float:
        return _nll_slope(centred, shifted, math.exp(-log_t))

    lo, hi = math.log(lower), math.log(upper)
    if slope(lo) <= 0:
        warnings.warn(
            f"NLL still falling as T shrinks to {lower} (every example right with a margin?): "
            f"returning the lower bound {lower}; calibrate on more or perturbed data",
            RuntimeWarning,
            stacklevel=2,
        )
        return lower
    if slope(hi) >= 0:
        warnings.warn(
            f"NLL still falling as T grows to {upper} (predictions no better than uniform?): "
            f"returning the upper bound {upper}",
            RuntimeWarning,
            stacklevel=2,
        )
        return upper
    log_t = optimize.brentq(slope, lo, hi, xtol=_LOG_T_TOL, maxiter=500)
    return float(math.exp(log_t))


# --------------------------------------------------------------------- perturbed calibration set


def _check_sigmas(sigmas) -> tuple[float, ...]:
    values = tuple(float(s) for s in np.atleast_1d(np.asarray(sigmas, dtype=np.float64)))
    if not values or not all(math.isfinite(s) and s >= 0 for s in values):
        raise ValueError(f"sigmas must be a non-empty list of finite numbers >= 0, got {sigmas!r}")
    return values


def _seed_pair(seed, stream: int) -> tf.Tensor:
    return tf.stack([tf.cast(seed, tf.int64), tf.constant(stream, tf.int64)])


def add_gaussian_noise(images, sigma, seed) -> tf.Tensor:
    """uint8 images + N(0, sigma^2) per pixel and channel on the [0, 1] scale, clipped, rounded.

    Rounds to the nearest grey level (ImageNet-C truncates, which darkens by half a level).

    Args:
        images: uint8 NHWC batch (tensor or NumPy).
        sigma: float, or float [N] (one standard deviation per image).
        seed: int or scalar int tensor; same seed and images -> same output.

    Returns:
        uint8 tensor of the input's shape.
    """
    x = tf.convert_to_tensor(images)
    if x.dtype != tf.uint8 or x.shape.rank != 4:
        raise ValueError(f"images must be a uint8 NHWC batch, got {x.dtype.name} {x.shape}")
    if not tf.is_tensor(sigma):
        _check_sigmas(sigma)
    std = tf.cast(tf.broadcast_to(sigma, tf.shape(x)[:1]), tf.float32)[:, None, None, None]
    noise = tf.random.stateless_normal(tf.shape(x), _seed_pair(seed, _NOISE_STREAM)) * std
    noisy = tf.clip_by_value(tf.cast(x, tf.float32) / 255.0 + noise, 0.0, 1.0)
    return tf.cast(tf.round(noisy * 255.0), tf.uint8)


def matched_noise_levels(
    accuracy_at: Callable[[float], float],
    chance: float,
    num_levels: int = 10,
    grid: Sequence[float] = NOISE_GRID,
) -> tuple[float, ...]:
    """Noise levels at which a model's accuracy falls linearly from clean to chance (Tomani et al.).

    Level j targets accuracy a_0 - (a_0 - chance) * j / (num_levels - 1), a_0 = accuracy_at(0).
    The reference code searches each level with Nelder-Mead; here accuracy is measured once per
    grid point in increasing order (stopping once it reaches chance), made non-increasing by a
    running minimum, and each target's sigma is interpolated linearly between grid points. A
    target below every measured accuracy (a model that never falls to chance) gets the largest
    grid sigma.

    Args:
        accuracy_at: sigma -> accuracy on the validation set under `add_gaussian_noise` at sigma
            (a fixed seed keeps it deterministic).
        chance: accuracy of guessing, e.g. 1 / num_classes.
        num_levels: >= 2 levels including the clean one (10 in the paper's code).
        grid: increasing sigmas starting at 0 on the [0, 1] scale.

    Returns:
        num_levels non-decreasing sigmas, the first 0.0; pass them as `perturbed_validation`'s
        `sigmas`.
    """
    points = _check_sigmas(grid)
    if points[0] != 0.0 or np.any(np.diff(points) <= 0):
        raise ValueError(f"grid must increase strictly from 0.0, got {grid!r}")
    if not (isinstance(num_levels, int) and num_levels >= 2):
        raise ValueError(f"num_levels must be an int >= 2, got {num_levels!r}")
    accuracies = [float(accuracy_at(0.0))]
    if not 0 <= chance < accuracies[0]:
        raise ValueError(f"clean accuracy {accuracies[0]} must exceed chance {chance} (>= 0)")
    for sigma in points[1:]:
        accuracies.append(min(accuracies[-1], float(accuracy_at(sigma))))
        if accuracies[-1] <= chance:
            break
    sigmas, envelope = np.asarray(points[: len(accuracies)]), np.asarray(accuracies)
    levels = [0.0]
    for j in range(1, num_levels):
        target = accuracies[0] - (accuracies[0] - chance) * j / (num_levels - 1)
        below = np.flatnonzero(envelope <= target)
        if below.size == 0:
            levels.append(float(sigmas[-1]))
            continue
        i = int(below[0])
        gap = envelope[i - 1] - envelope[i]
        frac = (envelope[i - 1] - target) / gap
        levels.append(float(sigmas[i - 1] + frac * (sigmas[i] - sigmas[i - 1])))
    return tuple(levels)


def perturbed_validation(images, seed, sigmas=PERTURBATION_SIGMAS) -> tf.Tensor:
    """The perturbed calibration set of Tomani et al. (2021): each image under one noise level.

    The levels are spread evenly over the batch (counts differ by at most one) in a seeded random
    order, so a validation set mapped batch by batch becomes an even mix of clean-to-strong
    Gaussian noise; fit the temperature on the model's logits for it (labels unchanged). Map the
    set again with other seeds for more samples per level. Only additive Gaussian noise on the
    [0, 1] scale is used, never the test suite's shifts (blur, brightness) or corruptions: this is
    not `evaluation.corruptions.gaussian_noise` (other levels, see `PERTURBATION_SIGMAS`, rounded
    rather than truncated, independent random numbers). Read the test suite's noise corruptions
    (gaussian, shot, speckle noise) after such calibration as close relatives of the
    calibration data, not as an unseen shift.

    Args:
        images: uint8 NHWC batch (tensor or NumPy); works inside `tf.data` (stateless RNG).
        seed: int or scalar int tensor (e.g. the batch index mixed with a base seed).
        sigmas: noise standard deviations on the [0, 1] scale, >= 0 (0 = clean copy).

    Returns:
        uint8 tensor of the input's shape.
    """
    levels = tf.constant(_check_sigmas(sigmas), tf.float32)
    x = tf.convert_to_tensor(images)
    n = tf.shape(x)[0]
    balanced = tf.math.floormod(tf.range(n), tf.size(levels))
    order = tf.argsort(tf.random.stateless_uniform([n], _seed_pair(seed, _LEVEL_STREAM)))
    return add_gaussian_noise(x, tf.gather(levels, tf.gather(balanced, order)), seed)
