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
from evaluation import corruption_random
from evaluation import corruptions as C
from evaluation import corruptions_weather as weather
from evaluation.corruptions_blur import clipped_zoom, shift_and_add_motion_blur
from evaluation.corruptions_digital import elastic_warp


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
    # 24 draws: spatter's drops are rare events (6 draws left a standard error near half the mean)
    draws = 24
    for sev in (1, 3, 5):
        theirs = np.stack([ref[0].corrupt(image, sev, name) for _ in range(draws)]).astype(float)
        batch = np.repeat(image[None], draws, axis=0)  # one image per seed, one call
        ours = C.corrupt(batch, name, sev, seed=np.arange(draws)).astype(float)
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
        ours = shift_and_add_motion_blur(
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
    ours = elastic_warp(tf.constant(x[None]), tf.constant(dy[None]), tf.constant(dx[None]))
    np.testing.assert_allclose(ours.numpy()[0], theirs, atol=1e-5)
    for z in (1.06, 2.5, 4.5):
        np.testing.assert_allclose(
            clipped_zoom(tf.constant(x[None]), z).numpy()[0],
            ref[1].clipped_zoom(x, z),
            atol=1e-5,
        )


def test_pixelate_bit_exact(ref, image):
    # Pillow's BOX taps and its accumulated NEAREST positions (32 -> 20 -> 50 px has a tie)
    wide = np.ascontiguousarray(np.concatenate([image, image[:, ::-1]], axis=1)[:, :50])
    odd = np.random.default_rng(8).integers(0, 256, (45, 77, 3), dtype=np.uint8)
    for img in (image, wide, odd):
        for sev in C.SEVERITIES:
            theirs = ref[0].corrupt(img, sev, "pixelate")
            np.testing.assert_array_equal(C.corrupt(img, "pixelate", sev), theirs)


def test_spatter_water_steps_match_opencv():
    # the reference's OpenCV steps after the distance: blur, truncate, equalizeHist, the emboss
    # filter2D saturated to uint8, blur rounded to uint8
    cv2 = pytest.importorskip("cv2")
    dist = np.random.default_rng(9).integers(0, 21, (3, 30, 41)).astype(np.float32)
    dist[2] = 7  # flat: equalizeHist keeps it
    box = tf.floor(weather._box3(tf.constant(dist)) / 9)
    np.testing.assert_array_equal(box, [cv2.blur(d, (3, 3)).astype(np.uint8) for d in dist])
    eq = weather._equalize_hist(box)
    np.testing.assert_array_equal(eq, [cv2.equalizeHist(np.uint8(b)) for b in box.numpy()])
    emboss = weather._emboss(eq)
    kernel = weather.EMBOSS.astype(np.float32)
    theirs = [cv2.filter2D(np.uint8(e), cv2.CV_8U, kernel) for e in eq.numpy()]
    np.testing.assert_array_equal(emboss, theirs)
    blurred = tf.round(weather._box3(emboss) / 9)
    np.testing.assert_array_equal(blurred, [cv2.blur(np.uint8(e), (3, 3)) for e in emboss.numpy()])


def test_draws_are_per_element_and_normal():
    # an image's k-th number does not depend on how many are drawn (odd counts too)
    from scipy import stats

    seeds = corruption_random.image_seeds(4, 3)
    for draw in ("uniform", "normal"):
        few = getattr(corruption_random.ImageRandom(seeds, 5), draw)([7]).numpy()
        many = getattr(corruption_random.ImageRandom(seeds, 5), draw)([4, 3]).numpy()
        np.testing.assert_array_equal(few, many.reshape(3, -1)[:, :7])
    # Box-Muller with the polynomial cosine: N(0, 1) by a Kolmogorov-Smirnov test on 2**20 draws
    z = corruption_random.ImageRandom(seeds[:1], 6).normal([1 << 20]).numpy().ravel()
    assert stats.kstest(z, "norm").pvalue > 0.01


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


def test_shot_noise_is_poisson():
    # flat level 128 at severity 2 (rate 25): counts ~ Poisson(25 * 128 / 255), output counts / 25
    flat = np.full((2, 64, 64, 3), 128, np.uint8)
    out = C.corrupt(flat, "shot_noise", 2, seed=1).astype(float)
    lam = 25 * 128 / 255
    counts = np.round(out / 255 * 25)  # truncation to uint8 loses < 0.1 count; counts > 25 clip
    assert counts.mean() == pytest.approx(lam, rel=0.01)
    assert counts.var() == pytest.approx(lam, rel=0.05)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_image_result_independent_of_batch(name):
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (6, 30, 36, 3), dtype=np.uint8)
    seeds = np.array([11, 12, 13, 2**40 + 5, -7, 0], np.int64)
    whole = C.corrupt(images, name, 3, seed=seeds)
    np.testing.assert_array_equal(whole[:3], C.corrupt(images[:3], name, 3, seed=seeds[:3]))
    np.testing.assert_array_equal(whole[3:], C.corrupt(images[3:], name, 3, seed=seeds[3:]))
    # the seed matters per image: other seeds, other result (same images)
    assert not np.array_equal(whole, C.corrupt(images, name, 3, seed=seeds + 1))


def test_scalar_seed_stands_for_image_seeds():
    images = np.random.default_rng(6).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    seeds = corruption_random.image_seeds(9, 4).numpy()
    assert len(set(seeds.tolist())) == 4
    np.testing.assert_array_equal(seeds[:2], corruption_random.image_seeds(9, 2).numpy())
    for name in ("gaussian_noise", "glass_blur"):
        np.testing.assert_array_equal(
            C.corrupt(images, name, 2, seed=9), C.corrupt(images, name, 2, seed=seeds)
        )


def test_corrupt_inside_tf_data():
    images = np.random.default_rng(7).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    seeds = np.arange(5, dtype=np.int64) * 1000 + 3
    for name in ("shot_noise", "fog", "pixelate", "jpeg_compression"):
        eager = C.corrupt(images, name, 4, seed=seeds)
        # a single HWC image with a scalar seed is that image with that seed in a batch
        np.testing.assert_array_equal(C.corrupt(images[1], name, 4, seed=seeds[1]), eager[1])
        # per image (HWC with its own scalar seed) and batched with an unknown batch size
        single = tf.data.Dataset.from_tensor_slices((images, seeds)).map(
            lambda x, s, n=name: C.corrupt(x, n, 4, seed=s)
        )
        np.testing.assert_array_equal(np.stack(list(single.as_numpy_iterator())), eager)
        batched = (
            tf.data.Dataset.from_tensor_slices((images, seeds))
            .batch(3)
            .map(lambda x, s, n=name: C.corrupt(x, n, 4, seed=s))
        )
        np.testing.assert_array_equal(np.concatenate(list(batched.as_numpy_iterator())), eager)


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
    with pytest.raises(ValueError, match="per-image seeds for a batch of 1"):
        C.corrupt(img, "fog", 1, seed=[1, 2])
    with pytest.raises(ValueError, match="1-D int array"):
        C.corrupt(img, "fog", 1, seed=1.5)
