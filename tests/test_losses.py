"""Stability training's KL term against a direct NumPy formula and its analytic gradients, on a tiny
model's logits; its Gaussian perturbation's statistics and seeding."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special

from recipes.losses import gaussian_perturbation, stability_loss


def numpy_kl(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """KL(p || q) = sum_k p_k log(p_k / q_k), p = softmax(clean), q = softmax(noisy), float64."""
    p = special.softmax(clean.astype(np.float64), axis=1)
    q = special.softmax(noisy.astype(np.float64), axis=1)
    return np.sum(p * np.log(p / q), axis=1)


def tiny_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x))


def _images(n: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 6, 6, 3)).astype(np.float32)


def test_matches_numpy_kl_on_a_tiny_models_logits():
    model = tiny_model()
    images = _images()
    clean = model(images / 255.0)
    noisy = model(gaussian_perturbation(images, 0.2, seed=1) / 255.0)
    loss = stability_loss(clean, noisy)
    assert loss.dtype == "float32" and loss.shape == (8,)
    expected = numpy_kl(np.asarray(clean), np.asarray(noisy))
    assert expected.min() > 1e-6  # the noise changed every prediction a little
    # float32 log-probabilities of size ~1 carry ~1e-7 rounding each
    np.testing.assert_allclose(np.asarray(loss), expected, rtol=1e-4, atol=1e-6)


def test_direction_is_kl_clean_to_noisy():
    """Large logit differences, where KL(p || q) and KL(q || p) differ by tens of percent."""
    rng = np.random.default_rng(4)
    clean, noisy = (3.0 * rng.normal(size=(16, 6)).astype(np.float32) for _ in range(2))
    expected = numpy_kl(clean, noisy)
    assert np.median(np.abs(expected / numpy_kl(noisy, clean) - 1)) > 0.1
    np.testing.assert_allclose(np.asarray(stability_loss(clean, noisy)), expected, rtol=1e-5)


def test_zero_for_equal_logits_and_stable_for_extreme_ones():
    logits = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(stability_loss(logits, logits)), 0.0)
    # softmax underflows to 0 at -100 in float32; log-softmax keeps the KL finite and exact
    clean = np.array([[0.0, -100.0]], np.float32)
    noisy = np.array([[-100.0, 0.0]], np.float32)
    np.testing.assert_allclose(np.asarray(stability_loss(clean, noisy)), [100.0], rtol=1e-6)


def test_gradients_match_the_analytic_ones():
    """d KL / d noisy = q - p; d KL / d clean_k = p_k (log p_k - log q_k - KL)."""
    rng = np.random.default_rng(2)
    clean = tf.constant(rng.normal(size=(3, 4)), tf.float32)
    noisy = tf.constant(rng.normal(size=(3, 4)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([clean, noisy])
        total = tf.reduce_sum(stability_loss(clean, noisy))
    p = special.softmax(clean.numpy().astype(np.float64), axis=1)
    q = special.softmax(noisy.numpy().astype(np.float64), axis=1)
    kl = np.sum(p * np.log(p / q), axis=1, keepdims=True)
    grad_noisy = tape.gradient(total, noisy).numpy()
    assert np.abs(grad_noisy).max() > 1e-3
    np.testing.assert_allclose(grad_noisy, q - p, atol=1e-6)
    np.testing.assert_allclose(
        tape.gradient(total, clean).numpy(), p * (np.log(p / q) - kl), atol=1e-6
    )


def test_weight_gradient_flows_through_both_branches():
    """The full gradient is the clean-branch plus the noisy-branch part, both non-zero."""
    model = tiny_model(seed=3)
    x = _images(seed=3)
    x_noisy = gaussian_perturbation(x, 0.3, seed=4)

    def gradient(stop_clean: bool, stop_noisy: bool) -> np.ndarray:
        with tf.GradientTape() as tape:
            clean, noisy = model(x / 255.0), model(x_noisy / 255.0)
            clean = tf.stop_gradient(clean) if stop_clean else clean
            noisy = tf.stop_gradient(noisy) if stop_noisy else noisy
            loss = tf.reduce_mean(stability_loss(clean, noisy))
        grads = tape.gradient(loss, model.trainable_variables)
        return np.concatenate([g.numpy().ravel() for g in grads])

    full = gradient(False, False)
    via_clean, via_noisy = gradient(False, True), gradient(True, False)
    assert np.linalg.norm(via_clean) > 1e-6 and np.linalg.norm(via_noisy) > 1e-6
    np.testing.assert_allclose(full, via_clean + via_noisy, atol=1e-7)
    assert np.linalg.norm(full - via_noisy) > 1e-3 * np.linalg.norm(full)


def test_float16_logits_give_float32_loss():
    rng = np.random.default_rng(5)
    clean, noisy = (rng.normal(size=(4, 3)).astype(np.float16) for _ in range(2))
    loss = stability_loss(clean, noisy)
    assert loss.dtype == "float32"
    np.testing.assert_allclose(np.asarray(loss), numpy_kl(clean, noisy), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- perturbation


def test_noise_std_is_sigma_times_255_and_unrounded():
    images = np.full((32, 16, 16, 3), 128.0, np.float32)
    out = np.asarray(gaussian_perturbation(images, 0.04, seed=0))
    assert out.dtype == np.float32 and out.shape == images.shape
    residual = (out - 128.0).astype(np.float64)
    n = residual.size  # 24576 values, no clipping within 12 standard deviations
    assert abs(residual.std() / (0.04 * 255) - 1) < 4 / np.sqrt(2 * n)
    assert abs(residual.mean()) < 4 * 0.04 * 255 / np.sqrt(n)
    assert np.mean(out != np.round(out)) > 0.99


def test_seeded_clipped_and_identity_at_zero():
    images = np.random.default_rng(6).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    a = gaussian_perturbation(images, 0.1, seed=7)
    np.testing.assert_array_equal(a, gaussian_perturbation(images, 0.1, seed=7))
    assert np.mean(np.asarray(a) != np.asarray(gaussian_perturbation(images, 0.1, seed=8))) > 0.9
    pair = tf.constant([7, 3], tf.int64)
    np.testing.assert_array_equal(
        gaussian_perturbation(images, 0.1, seed=pair),
        tf.function(lambda s: gaussian_perturbation(images, 0.1, seed=s))(pair),
    )
    strong = np.asarray(gaussian_perturbation(images, 1.0, seed=9))
    assert strong.min() == 0.0 and strong.max() == 255.0
    np.testing.assert_array_equal(gaussian_perturbation(images, 0.0, seed=1), images)


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf")])
def test_bad_sigma_raises(sigma):
    with pytest.raises(ValueError, match="sigma must be a finite number >= 0"):
        gaussian_perturbation(np.zeros((1, 4, 4, 3)), sigma, seed=0)
