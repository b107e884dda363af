"""The generated shapes data set: determinism, the quadrant rule, and the shapes' geometry."""

import numpy as np
import pytest

from recipes import shapes_data
from recipes.shapes_data import draw_shapes, make_shapes


def _arrays(dataset):
    images, labels = zip(*dataset.as_numpy_iterator(), strict=True)
    return np.stack(images), np.array(labels)


def _foreground_centroids(images):
    """Centroid (row, col) of the shape: pixels much brighter than the flat background."""
    mask = images.min(axis=-1) >= 140
    rows, cols = np.mgrid[: images.shape[1], : images.shape[2]]
    count = mask.sum(axis=(1, 2))
    return np.stack([(mask * rows).sum((1, 2)) / count, (mask * cols).sum((1, 2)) / count], 1)


@pytest.fixture(scope="module")
def data():
    return make_shapes(seed=3, image_size=32, train_size=40, test_size=20)


def test_same_seed_same_bytes_other_seed_differs(data):
    again = make_shapes(seed=3, image_size=32, train_size=40, test_size=20)
    other = make_shapes(seed=4, image_size=32, train_size=40, test_size=20)
    for split in ("train", "val", "test"):
        a, b = _arrays(getattr(data.splits, split)), _arrays(getattr(again.splits, split))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    for name in shapes_data.CONDITIONS:
        np.testing.assert_array_equal(
            _arrays(data.shifted[name])[0], _arrays(again.shifted[name])[0]
        )
    assert not np.array_equal(_arrays(data.splits.train)[0], _arrays(other.splits.train)[0])


def test_splits_facts_and_balance(data):
    images, labels = _arrays(data.splits.train)
    assert images.dtype == np.uint8 and images.shape == (40, 32, 32, 3)
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [20, 20]
    assert data.splits.num_classes == 2 and data.splits.name == "shapes"
    assert (data.splits.train_size, data.splits.val_size, data.splits.test_size) == (40, 10, 20)
    pixels = images.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(data.splits.mean, pixels.mean(0))
    np.testing.assert_allclose(data.splits.std, pixels.std(0))
    assert set(data.shifted) == set(shapes_data.CONDITIONS)


@pytest.mark.parametrize(
    ("condition", "star_quadrant"), [("iid", 0.25), ("opposite_quadrant", 0.75)]
)
def test_quadrant_rule_holds_in_training_and_is_swapped_in_the_opposite_test(
    condition, star_quadrant
):
    images, labels = draw_shapes(np.random.default_rng(0), 30, 48, condition)
    centroids = _foreground_centroids(images) / 48
    stars, moons = centroids[labels == 0], centroids[labels == 1]
    # Each shape lies in its class's quadrant: both centroid coordinates on the quadrant's side.
    assert np.all((stars < 0.5) == (star_quadrant < 0.5))
    assert np.all((moons < 0.5) == (star_quadrant > 0.5))
    np.testing.assert_allclose(stars, star_quadrant, atol=0.1)


def test_moon_mask_area_matches_the_circle_lens_formula():
    size, radius = 200, 60.0
    y, x = np.mgrid[:size, :size] + 0.5
    mask = shapes_data.moon_mask(x - 100, y - 100, radius, 0.3)
    assert mask.sum() == pytest.approx(shapes_data.moon_area(radius), rel=0.01)
    # By hand at d = 0.55 r: lens = 2r^2 acos(d/2r) - (d/2) sqrt(4r^2 - d^2).
    d = 0.55
    lens = 2 * np.arccos(d / 2) - d / 2 * np.sqrt(4 - d**2)
    assert shapes_data.moon_area(1.0) == pytest.approx(np.pi - lens)


def test_star_mask_has_tips_at_the_radius_and_notches_at_the_inner_radius():
    radius, angle = 10.0, 0.2
    tips = np.arange(5) * 2 * np.pi / 5 + angle
    notches = tips + np.pi / 5
    inside = lambda r, t: shapes_data.star_mask(r * np.cos(t), r * np.sin(t), radius, angle)  # noqa: E731
    assert inside(0.99 * radius, tips).all() and not inside(1.01 * radius, tips).any()
    inner = shapes_data.STAR_INNER * radius
    assert inside(0.99 * inner, notches).all() and not inside(1.01 * inner, notches).any()


def test_scale_rotation_and_background_conditions_change_what_they_say():
    rng = lambda: np.random.default_rng(5)  # noqa: E731
    base, _ = draw_shapes(rng(), 40, 48, "iid")
    scaled, _ = draw_shapes(rng(), 40, 48, "scale")
    area = lambda images: (images.min(-1) >= 140).sum((1, 2))  # noqa: E731
    ratio = area(scaled) / area(base)
    assert np.all((np.abs(ratio - 0.25) < 0.12) | (np.abs(ratio - 2.56) < 0.5))
    textured, _ = draw_shapes(rng(), 40, 48, "background")
    corner = lambda images: images[:, :6, -6:].astype(float).std(axis=(1, 2, 3))  # noqa: E731
    assert corner(base).max() == 0 and corner(textured).min() > 10


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="condition must be one of"):
        draw_shapes(np.random.default_rng(0), 2, 32, "blur")
    with pytest.raises(ValueError, match="image_size must be >= 16"):
        make_shapes(image_size=8)
