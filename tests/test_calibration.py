"""Temperature scaling against SciPy, a fine grid and closed forms; the TemperatureScaling layer's
serialisation and precision; the perturbed calibration set's noise statistics and determinism."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import optimize, special

from evaluation.calibration import (
    NOISE_GRID,
    PERTURBATION_SIGMAS,
    TemperatureScaling,
    add_gaussian_noise,
    fit_temperature,
    matched_noise_levels,
    perturbed_validation,
)
from evaluation.corruptions import corrupt

REPO = Path(__file__).resolve().parents[1]
# ImageNet-C gaussian_noise severities 1-5 (Hendrycks & Dietterich; evaluation/corruptions.py).
IMAGENET_C_NOISE = (0.08, 0.12, 0.18, 0.26, 0.38)


def reference_nll(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    """Mean -log softmax(z / t)[y] with SciPy's logsumexp (independent of the module)."""
    z = logits / t
    return float(np.mean(special.logsumexp(z, axis=1) - z[np.arange(len(labels)), labels]))


def calibrated_sample(n: int, k: int, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits z ~ N(0, scale^2) and labels drawn from softmax(z): calibrated at T = 1."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=scale, size=(n, k))
    probs = special.softmax(z, axis=1)
    labels = (rng.random((n, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    return z, np.minimum(labels, k - 1)


# ------------------------------------------------------------------------- fit_temperature


def grid_nll(logits: np.ndarray, labels: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    """reference_nll at every temperature of a grid, vectorised in chunks."""
    out = []
    for chunk in np.array_split(temperatures, max(1, len(temperatures) // 200)):
        z = logits[None] / chunk[:, None, None]
        picked = z[:, np.arange(len(labels)), labels]
        out.append(np.mean(special.logsumexp(z, axis=2) - picked, axis=1))
    return np.concatenate(out)


@pytest.mark.parametrize("factor", [0.4, 2.5])
def test_matches_scipy_and_a_fine_grid(factor):
    z, y = calibrated_sample(1000, 7, 2.0, seed=1)
    logits = factor * z
    t = fit_temperature(logits, y)
    ref = optimize.minimize_scalar(
        lambda log_t: reference_nll(logits, y, np.exp(log_t)),
        bounds=(np.log(1e-2), np.log(1e2)),
        method="bounded",
        options={"xatol": 1e-12},
    )
    assert abs(t - np.exp(ref.x)) < 1e-6
    grid = np.linspace(0.9 * t, 1.1 * t, 2001)  # spacing 1e-4 * t
    nll = grid_nll(logits, y, grid)
    assert abs(grid[int(np.argmin(nll))] - t) <= 1e-4 * t
    assert reference_nll(logits, y, t) <= nll.min() + 1e-12


def test_hand_worked_three_classes():
    """z = [d, 0, 0], 60 % labelled 0: softmax(z/T)_0 = 0.6 at the optimum, so
    e^{d/T} / (e^{d/T} + 2) = 0.6 -> e^{d/T} = 3 -> T = d / ln 3."""
    logits = np.tile([3.0, 0.0, 0.0], (10, 1))
    labels = np.array([0] * 6 + [1, 1, 2, 2])
    assert fit_temperature(logits, labels) == pytest.approx(3.0 / np.log(3.0), abs=1e-9)


def test_hand_worked_two_classes_one_hot():
    """z = [2, 0], 3 of 4 labelled 0: sigmoid(2/T) = 3/4 -> T = 2 / ln 3 (one-hot labels)."""
    logits = np.array([[2.0, 0.0]] * 4)
    one_hot = np.eye(2)[[0, 0, 0, 1]]
    assert fit_temperature(logits, one_hot) == pytest.approx(2.0 / np.log(3.0), abs=1e-9)
    assert fit_temperature(logits, one_hot.astype(np.float32)) == pytest.approx(1.820478, 1e-6)


@pytest.mark.parametrize("factor", [0.5, 3.0])
def test_scaled_calibrated_model_gives_back_the_factor(factor):
    z, y = calibrated_sample(20000, 5, 1.5, seed=2)
    # The estimate of log T has standard error ~1/sqrt(N * Fisher info): about 1-2 % here.
    assert fit_temperature(factor * z, y) == pytest.approx(factor, rel=0.03)
    assert fit_temperature(z, y) == pytest.approx(1.0, rel=0.03)


def test_accuracy_unchanged_exactly():
    z, y = calibrated_sample(5000, 10, 3.0, seed=3)
    logits = (2.0 * z).astype(np.float32)
    t = fit_temperature(logits, y)
    assert t > 1.5
    scaled = np.asarray(TemperatureScaling(t)(logits))
    np.testing.assert_array_equal(scaled.argmax(axis=1), logits.argmax(axis=1))
    np.testing.assert_array_equal((logits / t).argmax(axis=1), logits.argmax(axis=1))


def test_separable_data_returns_the_lower_bound_with_a_warning():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5], [-1.0, 0.0, 3.0]])
    with pytest.warns(RuntimeWarning, match="lower bound 0.01"):
        assert fit_temperature(logits, np.array([0, 1, 2])) == 0.01
    with pytest.warns(RuntimeWarning, match="lower bound 0.05"):
        assert fit_temperature(logits, np.array([0, 1, 2]), bounds=(0.05, 20)) == 0.05


def test_worse_than_uniform_returns_the_upper_bound_and_constant_logits_one():
    logits = np.array([[2.0, 0.0], [0.0, 2.0]])
    with pytest.warns(RuntimeWarning, match="upper bound 100"):
        assert fit_temperature(logits, np.array([1, 0])) == 100.0
    with pytest.warns(RuntimeWarning, match="constant"):
        assert fit_temperature(np.ones((3, 4)), np.array([0, 1, 2])) == 1.0


@pytest.mark.parametrize(
    "logits, labels, message",
    [
        (np.zeros((0, 3)), np.zeros(0, int), "no examples"),
        (np.zeros(3), np.zeros(3, int), r"\[N, K\]"),
        (np.zeros((3, 1)), np.zeros(3, int), "K >= 2"),
        (np.array([[0.0, np.nan]]), np.zeros(1, int), "NaN"),
        (np.array([[0.0, np.inf]]), np.zeros(1, int), "NaN or infinity"),
        (np.zeros((3, 2)), np.zeros(4, int), "3 logit rows but 4 labels"),
        (np.zeros((3, 2)), np.array([0, 1, 2]), r"\[0, 1\]"),
        (np.zeros((3, 2)), np.array([0.0, 1.0, 1.0]), "integer class ids"),
        (np.zeros((3, 2)), np.zeros((3, 3)), "one-hot"),
        (np.zeros((2, 2)), np.array([[1.0, 1.0], [0.0, 1.0]]), "summing to 1"),
    ],
)
def test_bad_inputs_raise_one_clear_error(logits, labels, message):
    with pytest.raises(ValueError, match=message):
        fit_temperature(logits, labels)


def test_bad_bounds_raise():
    with pytest.raises(ValueError, match="0 < lower < 1 < upper"):
        fit_temperature(np.eye(2), np.array([0, 1]), bounds=(2.0, 5.0))


# ------------------------------------------------------------------------- TemperatureScaling


LOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    import evaluation.calibration  # registers robust_recipes>TemperatureScaling
    model = keras.models.load_model(sys.argv[1])
    layer = model.get_layer("temperature")
    assert type(layer).__name__ == "TemperatureScaling", type(layer)
    print(repr(layer.temperature))
    np.save(sys.argv[3], np.asarray(model(np.load(sys.argv[2]))))
    """
)


def test_keras_file_round_trip_in_a_fresh_process(tmp_path):
    inputs = keras.Input((4,))
    logits = keras.layers.Dense(3)(inputs)
    model = keras.Model(inputs, TemperatureScaling(1.7, name="temperature")(logits))
    model.save(tmp_path / "model.keras")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_SCRIPT,
            *(str(tmp_path / f) for f in ("model.keras", "x.npy", "y.npy")),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "1.7"
    expected = np.asarray(model.layers[1](x)) / 1.7
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-6)


def test_config_round_trip_and_bad_temperature():
    clone = TemperatureScaling.from_config(TemperatureScaling(0.25, name="t").get_config())
    assert (clone.temperature, clone.name, clone.dtype_policy.name) == (0.25, "t", "float32")
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            TemperatureScaling(bad)


def test_float32_under_mixed_float16_and_inside_tf_data():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        dense = keras.layers.Dense(3)
        scaling = TemperatureScaling(3.0)
        x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
        hidden = dense(x)
        out = scaling(hidden)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert hidden.dtype == "float16" and out.dtype == "float32"
    np.testing.assert_allclose(np.asarray(out), np.asarray(hidden, np.float32) / 3.0, rtol=1e-6)

    logits = np.random.default_rng(2).normal(size=(6, 3)).astype(np.float32)
    mapped = tf.data.Dataset.from_tensor_slices(logits).batch(4).map(TemperatureScaling(2.0))
    np.testing.assert_allclose(np.concatenate(list(mapped.as_numpy_iterator())), logits / 2.0)


# ------------------------------------------------------------------------- perturbed set


def _images(n: int = 40, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_perturbed_set_is_seeded_uint8_and_keeps_shape():
    images = _images()
    a = perturbed_validation(images, seed=5)
    assert a.dtype == tf.uint8 and a.shape == images.shape
    np.testing.assert_array_equal(a, perturbed_validation(images, seed=5))
    assert np.mean(np.asarray(a) != np.asarray(perturbed_validation(images, seed=6))) > 0.5
    # 64-bit seeds are kept whole (2**40 + 5 would equal 5 if wrapped to 32 bits)
    assert np.mean(np.asarray(a) != np.asarray(perturbed_validation(images, 2**40 + 5))) > 0.5


def rounded_clipped_normal(centre: float, std: float) -> np.ndarray:
    """Exact distribution over 0..255 of clip(round(centre + N(0, std^2)), 0, 255)."""
    edges = special.ndtr((np.arange(-0.5, 256.0) - centre) / std)
    edges[0], edges[-1] = 0.0, 1.0  # the clipped tails land on 0 and 255
    return np.diff(edges)


@pytest.mark.parametrize("sigma", [0.02, 0.1, 0.3])
def test_noise_std_matches_sigma(sigma):
    """Mid-grey images: the output's mean and std match the exact rounded, clipped normal."""
    images = np.full((64, 16, 16, 3), 128, np.uint8)
    out = np.asarray(perturbed_validation(images, seed=0, sigmas=[sigma]), np.float64)
    probs = rounded_clipped_normal(128.0, 255 * sigma)
    mean = probs @ np.arange(256.0)
    std = np.sqrt(probs @ (np.arange(256.0) - mean) ** 2)
    n = out.size  # 49152 values: 4 standard errors of the std are 1.8 %
    assert abs(out.std() / std - 1) < 4 / np.sqrt(2 * n)
    assert abs(out.mean() - mean) < 4 * std / np.sqrt(n)


def test_levels_are_balanced_and_each_image_gets_one():
    images = np.full((30, 16, 16, 3), 128, np.uint8)
    sigmas = (0.0, 0.03, 0.1)
    out = np.asarray(perturbed_validation(images, seed=3, sigmas=sigmas), np.float64)
    stds = (out - 128.0).reshape(30, -1).std(axis=1) / 255
    levels = np.abs(stds[:, None] - np.array(sigmas)[None]).argmin(axis=1)
    np.testing.assert_allclose(stds, np.array(sigmas)[levels], atol=0.006)
    assert np.bincount(levels, minlength=3).tolist() == [10, 10, 10]
    np.testing.assert_array_equal(out[levels == 0], 128.0)  # sigma 0 is the clean image
    other = np.asarray(perturbed_validation(images, seed=4, sigmas=sigmas), np.float64)
    other_levels = np.abs(
        (other - 128.0).reshape(30, -1).std(axis=1)[:, None] / 255 - np.array(sigmas)
    ).argmin(axis=1)
    assert not np.array_equal(levels, other_levels)  # the assignment is seeded, not fixed


def test_clipped_at_the_uint8_range():
    """Black and white images get one-sided noise: means of the exact clipped distribution."""
    black_white = np.stack([np.zeros((32, 16, 3)), np.full((32, 16, 3), 255)]).astype(np.uint8)
    out = np.asarray(add_gaussian_noise(black_white, 0.5, seed=1)).astype(np.float64)
    assert out.min() == 0 and out.max() == 255
    for image, centre in zip(out, (0.0, 255.0), strict=True):
        probs = rounded_clipped_normal(centre, 127.5)
        mean = probs @ np.arange(256.0)
        std = np.sqrt(probs @ (np.arange(256.0) - mean) ** 2)
        assert abs(image.mean() - mean) < 4 * std / np.sqrt(image.size)


def test_never_the_test_suites_gaussian_noise():
    """Other levels than ImageNet-C's gaussian_noise, and other outputs at any severity."""
    assert not set(PERTURBATION_SIGMAS) & set(IMAGENET_C_NOISE)
    assert PERTURBATION_SIGMAS[0] == 0.0 and PERTURBATION_SIGMAS[-1] >= 0.5  # clean to strong
    images = _images(10, 32)
    ours = np.asarray(perturbed_validation(images, seed=0))
    for severity in range(1, 6):
        assert np.mean(ours != corrupt(images, "gaussian_noise", severity, seed=0)) > 0.3


def test_inside_tf_data_matches_eager():
    images = _images(12)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(4).enumerate()
    mapped = dataset.map(lambda i, batch: perturbed_validation(batch, seed=100 + i))
    out = np.concatenate(list(mapped.as_numpy_iterator()))
    eager = [perturbed_validation(images[4 * i : 4 * i + 4], seed=100 + i) for i in range(3)]
    np.testing.assert_array_equal(out, np.concatenate(eager))


def test_matched_levels_on_a_linear_accuracy_curve():
    """Accuracy 0.9 - 2 sigma reaches chance 0.5 at sigma 0.2: levels are linspace(0, 0.2, 10),
    exactly, as linear interpolation of a linear curve is exact; the sweep stops at chance."""
    calls = []

    def accuracy_at(sigma: float) -> float:
        calls.append(sigma)
        return 0.9 - 2.0 * sigma

    levels = matched_noise_levels(accuracy_at, chance=0.5)
    np.testing.assert_allclose(levels, np.linspace(0.0, 0.2, 10), atol=1e-12)
    first_past = next(g for g in NOISE_GRID if g >= 0.2)
    assert calls == [g for g in NOISE_GRID if g <= first_past]


def test_matched_levels_by_hand_with_a_noisy_curve():
    """Grid (0, .1, .2, .4), accuracies (.9, .7, .8, .5) -> running minimum (.9, .7, .7, .5).
    chance .5, 5 levels: targets .8 -> (.9 - .8) / .2 of the way to .1: .05; .7 -> .1;
    .6 -> from .2 (min .7) to .4 (.5) at 1/2: .3 (not 2/3, as the raw .8 would give); .5 -> .4."""
    table = {0.0: 0.9, 0.1: 0.7, 0.2: 0.8, 0.4: 0.5}
    levels = matched_noise_levels(table.__getitem__, 0.5, num_levels=5, grid=tuple(table))
    np.testing.assert_allclose(levels, [0.0, 0.05, 0.1, 0.3, 0.4], atol=1e-12)
    # a model that never falls to chance gets the largest grid sigma for the unreachable levels
    levels = matched_noise_levels(table.__getitem__, 0.3, num_levels=4, grid=tuple(table))
    np.testing.assert_allclose(levels, [0.0, 0.1, 0.4, 0.4], atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chance": 0.95}, "must exceed chance"),
        ({"chance": 0.5, "num_levels": 1}, "num_levels"),
        ({"chance": 0.5, "grid": (0.1, 0.2)}, "increase strictly from 0.0"),
        ({"chance": 0.5, "grid": (0.0, 0.2, 0.2)}, "increase strictly from 0.0"),
    ],
)
def test_matched_levels_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        matched_noise_levels(lambda sigma: 0.9 - sigma, **kwargs)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: perturbed_validation(_images(), 0, sigmas=[]), "non-empty"),
        (lambda: perturbed_validation(_images(), 0, sigmas=[0.1, -0.1]), ">= 0"),
        (lambda: perturbed_validation(_images().astype(np.float32), 0), "uint8 NHWC"),
        (lambda: add_gaussian_noise(_images()[0], 0.1, 0), "uint8 NHWC"),
        (lambda: add_gaussian_noise(_images(), float("nan"), 0), "finite"),
    ],
)
def test_perturbation_bad_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
