"""evaluation.corruptions against imagecorruptions 1.1.2 (shimmed for NumPy 2 / skimage 0.26).

Deterministic corruptions: mean |ours - reference| <= about one uint8 level on a 32x32 image.
Stochastic ones: the reference's statistics (mean absolute change, mean); their random-free cores
(motion blur at a fixed angle, the elastic warp, clipped zoom) exactly against the reference code.
"""

import importlib
import importlib.util

import numpy as np
import pytest
import tensorflow as tf

from benchmarks.imagecorruptions_compat import load_imagecorruptions
from evaluation import corruptions as C


def _load_reference():
    """imagecorruptions with the documented NumPy 2 / scikit-image shims."""
    pytest.importorskip("skimage")
    if importlib.util.find_spec("imagecorruptions") is None:
        pytest.skip("imagecorruptions not installed")
    return load_imagecorruptions()


@pytest.fixture(scope="module")
def ref():
    return _load_reference()


@pytest.fixture(scope="module")
def image():
    import skimage.data

    img = skimage.data.chelsea()[::8, 40:-40:8][:32, :32]  # textured natural 32x32 crop
    return np.ascontiguousarray(img)


DETERMINISTIC = [n for n, c in C.CORRUPTIONS.items() if not c.stochastic]
STOCHASTIC = [n for n, c in C.CORRUPTIONS.items() if c.stochastic]


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_match_reference(ref, image, name):
    wide = np.ascontiguousarray(np.concatenate([image, image[:, ::-1]], axis=1)[:, :50])
    for img in (image, wide):  # 32x32 and 32x50
        for sev in C.SEVERITIES:
            ours = C.corrupt(img, name, sev).astype(float)
            theirs = ref[0].corrupt(img, sev, name).astype(float)
            assert np.abs(ours - theirs).mean() <= 1.2, (name, sev, img.shape)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_match_reference_statistics(ref, image, name):
    np.random.seed(0)  # noqa: NPY002 (the reference draws from the global NumPy RNG)
    draws = 6
    for sev in (1, 3, 5):
        theirs = np.stack([ref[0].corrupt(image, sev, name) for _ in range(draws)]).astype(float)
        ours = np.stack([C.corrupt(image, name, sev, seed=k) for k in range(draws)]).astype(float)
        change_t, change_o = np.abs(theirs - image).mean(), np.abs(ours - image).mean()
        tol = {"spatter": 0.6, "frost": 0.35, "glass_blur": 0.25}.get(name, 0.12)
        assert abs(change_o - change_t) <= tol * change_t + 1.0, (name, sev, change_o, change_t)
        assert abs(ours.mean() - theirs.mean()) <= 0.12 * theirs.mean() + 1, (name, sev)


def test_noise_standard_deviation():
    flat = np.full((4, 64, 64, 3), 128, np.uint8)
    for sev, sigma in zip(C.SEVERITIES, [0.08, 0.12, 0.18, 0.26, 0.38], strict=True):
        out = C.corrupt(flat, "gaussian_noise", sev).astype(float) / 255
        # truncation to uint8 lowers the mean by half a level; clipping is negligible up to sev 3
        if sev <= 3:
            assert out.std() == pytest.approx(sigma, rel=0.03)


def test_motion_blur_core_matches_reference(ref, image):
    x = image.astype(np.float64)
    for angle in (-40.0, 0.0, 30.0):
        theirs = ref[1]._motion_blur(x, radius=15, sigma=5, angle=angle)
        ours = C.shift_and_add_motion_blur(
            tf.constant(x[None], tf.float32), 15, 5, tf.constant([angle])
        ).numpy()[0]
        np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_elastic_warp_and_zoom_match_scipy(ref, image):
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(0)
    x = image.astype(np.float32) / 255
    dy, dx = rng.normal(0, 1.5, (2, 32, 32)).astype(np.float32)
    yy, xx, zz = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    theirs = map_coordinates(
        x, (yy + dy[..., None], xx + dx[..., None], zz), order=1, mode="reflect"
    )
    ours = C.elastic_warp(tf.constant(x[None]), tf.constant(dy[None]), tf.constant(dx[None]))
    np.testing.assert_allclose(ours.numpy()[0], theirs, atol=1e-5)
    for z in (1.06, 2.5, 4.5):
        np.testing.assert_allclose(
            C.clipped_zoom(tf.constant(x[None]), z).numpy()[0],
            ref[1].clipped_zoom(x, z),
            atol=1e-5,
        )


def test_seeded_any_size_and_grayscale():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 28, 41, 3), dtype=np.uint8)
    for name in C.corruption_names("all"):
        a = C.corrupt(images, name, 5, seed=7)
        assert a.shape == images.shape and a.dtype == np.uint8
        np.testing.assert_array_equal(a, C.corrupt(images, name, 5, seed=7))
        if name == "gaussian_noise":
            assert not np.array_equal(a, C.corrupt(images, name, 5, seed=8))
    gray = images[..., :1]
    assert C.corrupt(tf.constant(gray), "fog", 2).shape == gray.shape


def test_subsets_and_errors():
    assert len(C.corruption_names("common")) == 15
    assert C.corruption_names("extra") == ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
    assert len(C.corruption_names("all")) == 19
    # the imagecorruptions grouping: brightness counts as weather
    assert C.corruption_names("weather") == ["snow", "frost", "fog", "brightness"]
    assert C.corruption_names("digital") == [
        "contrast",
        "elastic_transform",
        "pixelate",
        "jpeg_compression",
    ]
    img = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown corruption"):
        C.corrupt(img, "rain", 1)
    with pytest.raises(ValueError, match="severity"):
        C.corrupt(img, "fog", 6)
    with pytest.raises(ValueError, match="at least 28"):
        C.corrupt(np.zeros((1, 20, 32, 3), np.uint8), "fog", 1)
    with pytest.raises(ValueError, match="subset"):
        C.corruption_names("validation")
