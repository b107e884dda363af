"""Per-image ops, the level table and the batched op chain against PIL / direct NumPy formulas."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageOps

from augment import levels, ops
from augment.chain import apply_op_chain

RNG = np.random.default_rng(0)
# Non-square, with a limited value range so autocontrast/equalize have work to do.
IMAGE = RNG.integers(30, 200, (18, 22, 3)).astype(np.uint8)
IMAGE[3:9, 4:12] = [250, 20, 90]


def run(op, image=IMAGE, arg=0.0, **kwargs):
    """Applies an op to one uint8 image; returns float64 numpy."""
    batch = tf.constant(image[None], tf.float32)
    return op(batch, tf.constant([arg], tf.float32), **kwargs).numpy()[0].astype(np.float64)


def pil(image=IMAGE):
    return Image.fromarray(image)


@pytest.mark.parametrize(
    ("op", "reference", "atol"),
    [
        (ops.autocontrast, lambda im: ImageOps.autocontrast(im), 1),
        (ops.equalize, lambda im: ImageOps.equalize(im), 0),
        (ops.invert, lambda im: ImageOps.invert(im), 0),
    ],
)
def test_parameterless_ops_match_pil(op, reference, atol):
    np.testing.assert_allclose(run(op), np.asarray(reference(pil())), atol=atol)


def test_equalize_constant_channel_is_identity():
    flat = np.full((8, 8, 3), 77, np.uint8)
    np.testing.assert_array_equal(run(ops.equalize, flat), np.asarray(ImageOps.equalize(pil(flat))))


@pytest.mark.parametrize("bits", [1, 3, 4, 8])
def test_posterize_matches_pil(bits):
    np.testing.assert_array_equal(run(ops.posterize, arg=bits), ImageOps.posterize(pil(), bits))


def test_posterize_zero_bits_is_black():
    assert run(ops.posterize, arg=0).max() == 0


@pytest.mark.parametrize("threshold", [0, 100, 128, 230, 256])
def test_solarize_matches_pil(threshold):
    np.testing.assert_array_equal(
        run(ops.solarize, arg=threshold), ImageOps.solarize(pil(), threshold)
    )


def test_solarize_add_formula():
    expected = np.where(IMAGE < 128, np.minimum(IMAGE.astype(int) + 99, 255), IMAGE)
    np.testing.assert_array_equal(run(ops.solarize_add, arg=99), expected)


def test_grayscale_matches_pil_luma():
    gray = ops.grayscale(tf.constant(IMAGE[None], tf.float32)).numpy()[0, ..., 0]
    np.testing.assert_array_equal(gray, np.asarray(pil().convert("L")))


@pytest.mark.parametrize("factor", [0.1, 0.5, 1.0, 1.72])
@pytest.mark.parametrize(
    ("op", "enhancer"),
    [
        (ops.color, ImageEnhance.Color),
        (ops.contrast, ImageEnhance.Contrast),
        (ops.brightness, ImageEnhance.Brightness),
        (ops.sharpness, ImageEnhance.Sharpness),
    ],
)
def test_enhance_ops_match_pil(op, enhancer, factor):
    expected = np.asarray(enhancer(pil()).enhance(factor)).astype(np.float64)
    got = run(op, arg=factor)
    np.testing.assert_allclose(got, expected, atol=1)
    assert np.mean(got != expected) < 0.05  # off-by-one from rounding only, and rarely


def test_cutout_formula():
    out = run(lambda x, a: ops.cutout(x, a, tf.constant([[4.0, 20.0]])), arg=3)
    expected = IMAGE.astype(np.float64).copy()
    expected[1:7, 17:22] = 128  # rows 4-3..4+3, cols 20-3..22 clipped at the border
    np.testing.assert_array_equal(out, expected)


def numpy_warp(image, matrix, fill=128.0):
    """Nearest-neighbour reference: out[y, x] = image[round(M @ (x, y, 1))] or fill."""
    h, w, _ = image.shape
    out = np.full(image.shape, fill)
    for y in range(h):
        for x in range(w):
            sx, sy, sz = matrix @ np.array([x, y, 1.0])
            ix, iy = int(np.floor(sx / sz + 0.5)), int(np.floor(sy / sz + 0.5))
            if 0 <= ix < w and 0 <= iy < h:
                out[y, x] = image[iy, ix]
    return out


@pytest.mark.parametrize(
    ("op", "arg", "matrix"),
    [
        (ops.shear_x, 0.3, [[1, 0.3, 0], [0, 1, 0], [0, 0, 1]]),
        (ops.shear_y, -0.2, [[1, 0, 0], [-0.2, 1, 0], [0, 0, 1]]),
        (ops.translate_x, 5.0, [[1, 0, 5], [0, 1, 0], [0, 0, 1]]),
        (ops.translate_y, -4.0, [[1, 0, 0], [0, 1, -4], [0, 0, 1]]),
    ],
)
def test_affine_ops_match_numpy_formula(op, arg, matrix):
    expected = numpy_warp(IMAGE.astype(np.float64), np.array(matrix, np.float64))
    np.testing.assert_array_equal(run(op, arg=arg), expected)


def test_translate_moves_content_and_fills_gray():
    out = run(ops.translate_x, arg=5.0)
    np.testing.assert_array_equal(out[:, :-5], IMAGE[:, 5:])
    assert np.all(out[:, -5:] == 128)


@pytest.mark.parametrize("degrees", [30.0, -45.0, 90.0])
def test_rotate_matches_pil(degrees):
    expected = np.asarray(pil().rotate(degrees, Image.NEAREST, fillcolor=(128, 128, 128)))
    got = run(ops.rotate, arg=degrees)
    # Same centre and direction; only pixels whose source lies on a rounding boundary differ.
    assert np.mean(np.any(got != expected, axis=-1)) < 0.03


def test_rotate_90_is_exact_on_square_image():
    square = IMAGE[:18, :18]
    np.testing.assert_array_equal(run(ops.rotate, square, arg=90.0), np.rot90(square))


def test_bilinear_warp_half_pixel_shift():
    ramp = np.tile(np.arange(8, dtype=np.float32)[None, :, None] * 10, (4, 1, 3))
    out = run(ops.translate_x, ramp.astype(np.uint8), arg=0.5, interpolation="bilinear")
    np.testing.assert_allclose(out[:, :-1, 0], ramp[:, :-1, 0] + 5.0, atol=1e-4)
    np.testing.assert_allclose(out[:, -1, 0], 0.5 * 70 + 0.5 * 128, atol=1e-4)


def test_level_table_hand_worked_at_magnitude_9():
    names = (
        "rotate",
        "posterize",
        "posterize_increasing",
        "solarize",
        "solarize_increasing",
        "solarize_add",
        "color",
        "shear_x",
        "translate_x",
        "translate_x_rel",
        "cutout",
    )
    hparams = {
        "translate_const": 100.0,
        "translate_frac": 0.45,
        "cutout_const": 40.0,
        "image_size": tf.constant([224.0, 200.0]),
    }
    choice = tf.range(len(names))
    level = tf.fill([len(names)], 9.0)
    sign = tf.constant([-1.0] * len(names))
    base_ids, args = levels.level_to_base_args(names, choice, level, sign, hparams)
    expected = [-27.0, 3, 1, 230, 26, 99, 1.72, -0.27, -90.0, -0.9 * 0.45 * 200, 36]
    np.testing.assert_allclose(args.numpy(), expected, rtol=1e-5)
    assert [ops.BASE_OPS[i] for i in base_ids.numpy()] == [
        "rotate",
        "posterize",
        "posterize",
        "solarize",
        "solarize",
        "solarize_add",
        "color",
        "shear_x",
        "translate_x",
        "translate_x",
        "cutout",
    ]


def test_op_chain_equals_ops_in_sequence():
    images = tf.constant(np.stack([IMAGE, IMAGE[::-1], IMAGE[:, ::-1]]), tf.float32)
    names = ("equalize", "solarize", "color", "translate_x", "posterize", "identity")
    ids = tf.constant([[0, 1], [2, 3], [4, 5]])
    args = tf.constant([[0.0, 100.0], [1.5, 3.0], [2.0, 0.0]])
    base_ids = tf.gather([ops.BASE_OPS.index(n) for n in names], ids)
    out = apply_op_chain(images, base_ids, args, tf.zeros([3, 2, 2]), names).numpy()
    one = lambda op, k, a: op(images[k : k + 1], tf.constant([a]))  # noqa: E731
    np.testing.assert_array_equal(out[0], ops.solarize(ops.equalize(images[0:1]), [100.0])[0])
    np.testing.assert_array_equal(
        out[1], ops.translate_x(tf.round(one(ops.color, 1, 1.5)), [3.0])[0]
    )
    np.testing.assert_array_equal(out[2], one(ops.posterize, 2, 2.0)[0])


def test_op_chain_composes_geometric_ops_into_one_warp():
    images = tf.constant(IMAGE[None], tf.float32)
    base_ids = tf.constant([[ops.BASE_OPS.index("translate_x"), ops.BASE_OPS.index("translate_y")]])
    out = apply_op_chain(
        images,
        base_ids,
        tf.constant([[3.0, -2.0]]),
        tf.zeros([1, 2, 2]),
        ("translate_x", "translate_y"),
    )
    expected = ops.translate_y(ops.translate_x(images, [3.0]), [-2.0])
    np.testing.assert_array_equal(out.numpy(), expected.numpy())


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_op_chain_warps_only_moved_images_like_the_pure_op(interpolation):
    images = tf.constant(np.stack([IMAGE, IMAGE[::-1], IMAGE[:, ::-1]]), tf.float32)
    rotate, identity = ops.BASE_OPS.index("rotate"), ops.BASE_OPS.index("identity")
    base_ids = tf.constant([[rotate], [identity], [rotate]])
    degrees = tf.constant([[17.0], [0.0], [-40.0]])
    names = ("identity", "rotate")
    out = apply_op_chain(images, base_ids, degrees, tf.zeros([3, 1, 2]), names, interpolation)
    expected = tf.round(ops.rotate(images, degrees[:, 0], interpolation)).numpy()
    np.testing.assert_array_equal(out.numpy()[1], images.numpy()[1])
    np.testing.assert_allclose(out.numpy(), expected, atol=0 if interpolation == "nearest" else 1)
    assert np.mean(out.numpy() != expected) < 0.01


def test_warp_rejects_unknown_interpolation():
    with pytest.raises(ValueError, match=r"'nearest' or 'bilinear'.*'bicubic'"):
        ops.warp(tf.zeros([1, 4, 4, 3]), tf.eye(3, batch_shape=[1]), "bicubic")


@pytest.mark.parametrize("name", sorted(ops.PIXEL_OPS))
def test_op_chain_pixel_ops_equal_pure_ops(name):
    """The chain's look-up-table / subset forms give the pure op's result, per image."""
    images = tf.constant(np.stack([IMAGE, IMAGE[::-1]]), tf.float32)
    args = (
        tf.constant([[1.6], [0.4]])
        if name not in ("posterize", "solarize")
        else tf.constant([[3.0], [120.0]])
    )
    centers = tf.constant([[[5.0, 6.0]], [[10.0, 2.0]]])
    base_ids = tf.fill([2, 1], ops.BASE_OPS.index(name))
    names = tuple(ops.PIXEL_OPS)
    out = apply_op_chain(images, base_ids, args, centers, names).numpy()
    expected = tf.round(ops.PIXEL_OPS[name](images, args[:, 0], centers[:, 0])).numpy()
    # Blends truncate; XLA's fused multiply-adds can move a value across an integer by 1 ulp.
    atol = 1 if name in ("color", "contrast", "sharpness") else 0
    np.testing.assert_allclose(out, expected, atol=atol)
    assert np.mean(out != expected) < 0.02
