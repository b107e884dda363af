"""BlurPool2D / MaxBlurPool2D against hand-worked cases, a direct NumPy formula and a minimal
PyTorch formulation of antialiased-cnns' BlurPool (Zhang, ICML 2019); serialisation, mixed
precision, tf.data and the JAX backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers import BlurPool2D, MaxBlurPool2D, binomial_kernel_2d, binomial_row, blur_padding

PAD_MODES = ("reflect", "replicate", "zero")
NUMPY_PAD = {"reflect": "reflect", "replicate": "edge", "zero": "constant"}
FILTER_SIZES = range(1, 8)
REPO = Path(__file__).resolve().parents[1]


def _pascal_row(k: int) -> np.ndarray:
    """Row k-1 of Pascal's triangle by repeated convolution with [1, 1] (not math.comb)."""
    row = np.array([1.0])
    for _ in range(k - 1):
        row = np.convolve(row, [1.0, 1.0])
    return row


def numpy_blurpool(x: np.ndarray, k: int, stride: int, pad_mode: str) -> np.ndarray:
    """Direct formula: out[i, j] = sum_ab K[a, b] * xpad[s*i + a, s*j + b], K = outer(p, p)/sum."""
    row = _pascal_row(k)
    kernel = np.outer(row, row) / np.outer(row, row).sum()
    before, after = (k - 1) // 2, k // 2  # floor((k-1)/2), ceil((k-1)/2)
    xp = np.pad(
        x.astype(np.float64),
        [(0, 0), (before, after), (before, after), (0, 0)],
        mode=NUMPY_PAD[pad_mode],
    )
    h_out, w_out = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    out = np.zeros((x.shape[0], h_out, w_out, x.shape[3]))
    for a in range(k):
        for b in range(k):
            window = xp[:, a : a + stride * h_out : stride, b : b + stride * w_out : stride]
            out += kernel[a, b] * window[:, :h_out, :w_out]
    return out


def numpy_max_pool_stride1(x: np.ndarray, pool: int) -> np.ndarray:
    h, w = x.shape[1] - pool + 1, x.shape[2] - pool + 1
    windows = [x[:, a : a + h, b : b + w] for a in range(pool) for b in range(pool)]
    return np.max(windows, axis=0)


def _random(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_binomial_rows_and_padding_match_the_paper_table():
    rows = {
        1: [1],
        2: [1, 1],
        3: [1, 2, 1],
        4: [1, 3, 3, 1],
        5: [1, 4, 6, 4, 1],
        6: [1, 5, 10, 10, 5, 1],
        7: [1, 6, 15, 20, 15, 6, 1],
    }
    pads = {1: (0, 0), 2: (0, 1), 3: (1, 1), 4: (1, 2), 5: (2, 2), 6: (2, 3), 7: (3, 3)}
    for k in FILTER_SIZES:
        assert binomial_row(k).tolist() == rows[k]
        assert blur_padding(k) == pads[k]
        kernel = binomial_kernel_2d(k)
        assert kernel.dtype == np.float32
        np.testing.assert_array_equal(kernel, np.outer(rows[k], rows[k]) / 4.0 ** (k - 1))


@pytest.mark.parametrize(
    ("pad_mode", "expected"),
    [
        # 3x3 ramp x[i, j] = 3i + j, filter 2 ([1 1]/2 each way), pads (0, 1), stride 2:
        # each output is the mean of a 2x2 block; the block past the edge reads the pad.
        ("reflect", [[2.0, 3.0], [5.0, 6.0]]),  # pad row/col 3 = row/col 1
        ("replicate", [[2.0, 3.5], [6.5, 8.0]]),  # pad row/col 3 = row/col 2
        ("zero", [[2.0, 1.75], [3.25, 2.0]]),  # pad row/col 3 = 0
    ],
)
def test_filter2_on_3x3_ramp_by_hand(pad_mode, expected):
    ramp = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    out = BlurPool2D(filter_size=2, pad_mode=pad_mode)(ramp)
    np.testing.assert_allclose(np.asarray(out)[0, :, :, 0], expected, atol=1e-6)


def test_filter3_on_4x4_ramp_by_hand():
    # x[i, j] = 4i + j; [1 2 1]/4 keeps a ramp inside; at i = 0 reflection reads row 1 twice:
    # (4 + 0 + 4)/4 = 2 (rows), (1 + 0 + 1)/4 = 0.5 (cols). Samples at (0|2, 0|2).
    ramp = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    out = BlurPool2D(filter_size=3, pad_mode="reflect")(ramp)
    np.testing.assert_allclose(np.asarray(out)[0, :, :, 0], [[2.5, 4.0], [8.5, 10.0]], atol=1e-6)


def test_filter4_on_even_input_samples_top_left_grid():
    # A single impulse at (2, 2) of an 8x8 zero image, filter 4 ([1 3 3 1]/8), pads (1, 2):
    # output (1, 1) reads padded rows 2..5 = input rows 1..4, so it sees tap 1 of [1 3 3 1].
    x = np.zeros((1, 8, 8, 1), np.float32)
    x[0, 2, 2, 0] = 64.0
    out = np.asarray(BlurPool2D(filter_size=4, pad_mode="zero")(x))[0, :, :, 0]
    expected = np.zeros((4, 4))
    expected[1, 1] = 64.0 * 3 * 3 / 64  # taps (1, 1) of outer([1 3 3 1])/64
    expected[0, 0] = 64.0 * 1 * 1 / 64  # output (0, 0) reads rows -1..2: tap 3
    expected[0, 1] = expected[1, 0] = 64.0 * 1 * 3 / 64
    np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("pad_mode", PAD_MODES)
def test_matches_numpy_formula_all_sizes(pad_mode):
    for size in (7, 8):
        x = _random((2, size, size + 3, 3), seed=size)
        for k in FILTER_SIZES:
            for stride in (2, 3):
                out = np.asarray(BlurPool2D(k, stride, pad_mode)(x))
                np.testing.assert_allclose(
                    out,
                    numpy_blurpool(x, k, stride, pad_mode),
                    atol=1e-6,
                    err_msg=f"k={k} stride={stride} size={size}",
                )


def test_matches_torch_reference_formulation():
    """antialiased-cnns' BlurPool, restated minimally in torch: explicit F.pad (reflect /
    replicate / constant) by [floor((k-1)/2), ceil((k-1)/2)], then a grouped conv2d with the
    normalised binomial kernel repeated per channel at stride s (k=1: x[..., ::s, ::s])."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    torch_mode = {"reflect": "reflect", "replicate": "replicate", "zero": "constant"}

    def reference(x_nchw, k, pad_mode, stride=2):
        if k == 1:
            return x_nchw[:, :, ::stride, ::stride]
        taps = torch.tensor(_pascal_row(k), dtype=torch.float32)
        kernel = taps[:, None] * taps[None, :]
        kernel = (kernel / kernel.sum())[None, None].repeat(x_nchw.shape[1], 1, 1, 1)
        before, after = (k - 1) // 2, k // 2
        padded = functional.pad(x_nchw, (before, after, before, after), mode=torch_mode[pad_mode])
        return functional.conv2d(padded, kernel, stride=stride, groups=x_nchw.shape[1])

    worst = 0.0
    for size in (7, 8):
        x = _random((2, size, size, 4), seed=10 + size)
        x_nchw = torch.from_numpy(x).permute(0, 3, 1, 2)
        for k in FILTER_SIZES:
            for pad_mode in PAD_MODES:
                ours = np.asarray(BlurPool2D(k, 2, pad_mode)(x))
                ref = reference(x_nchw, k, pad_mode).permute(0, 2, 3, 1).numpy()
                assert ours.shape == ref.shape
                worst = max(worst, float(np.abs(ours - ref).max()))
                # MaxBlurPool2D = max_pool2d(kernel 2, stride 1) then the same blur.
                pooled = functional.max_pool2d(x_nchw, kernel_size=2, stride=1)
                ref_max = reference(pooled, k, pad_mode).permute(0, 2, 3, 1).numpy()
                ours_max = np.asarray(MaxBlurPool2D(2, k, 2, pad_mode)(x))
                worst = max(worst, float(np.abs(ours_max - ref_max).max()))
    assert worst <= 1e-6


def test_max_blur_pool_matches_numpy():
    x = _random((1, 9, 8, 2))
    for pool in (2, 3):
        out = np.asarray(MaxBlurPool2D(pool_size=pool, filter_size=3, pad_mode="replicate")(x))
        expected = numpy_blurpool(numpy_max_pool_stride1(x, pool), 3, 2, "replicate")
        np.testing.assert_allclose(out, expected, atol=1e-6)
        assert out.shape == (1, -(-(9 - pool + 1) // 2), -(-(8 - pool + 1) // 2), 2)


def test_output_shape_and_no_weights():
    inputs = keras.Input((None, 13, 5))
    layer = BlurPool2D(filter_size=5, strides=2)
    out = layer(inputs)
    assert out.shape == (None, None, 7, 5)
    assert layer.weights == [] and MaxBlurPool2D().weights == []
    assert tuple(MaxBlurPool2D()(keras.Input((9, 8, 3))).shape) == (None, 4, 4, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"filter_size": 0}, "filter_size must be one of \\[1, 2, 3, 4, 5, 6, 7\\]"),
        ({"filter_size": 8}, "filter_size must be one of"),
        ({"pad_mode": "edge"}, "pad_mode must be one of \\['reflect', 'replicate', 'zero'\\]"),
        ({"strides": 0}, "strides must be a positive int"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BlurPool2D(**kwargs)
    with pytest.raises(ValueError, match=message.split(" ")[0]):
        MaxBlurPool2D(**kwargs)


def test_reflect_wider_than_input_raises_and_zero_works():
    """With pad_overflow="error" (the default "repeat" is in tests/test_pad_overflow.py)."""
    x = _random((1, 2, 2, 1))
    with pytest.raises(ValueError, match="pad_mode='reflect' needs an input height larger"):
        BlurPool2D(filter_size=5, pad_mode="reflect", pad_overflow="error")(x)
    with pytest.raises(ValueError, match="reflect"):
        BlurPool2D(filter_size=5, pad_overflow="error")(keras.Input((2, 8, 1)))
    np.testing.assert_allclose(
        np.asarray(BlurPool2D(filter_size=5, pad_mode="zero")(x)),
        numpy_blurpool(x, 5, 2, "zero"),
        atol=1e-6,
    )


def test_config_round_trip_and_keras_file(tmp_path):
    layer = BlurPool2D(filter_size=5, strides=(2, 3), pad_mode="replicate", name="blur")
    clone = BlurPool2D.from_config(layer.get_config())
    assert (clone.filter_size, clone.strides, clone.pad_mode) == (5, (2, 3), "replicate")
    max_clone = MaxBlurPool2D.from_config(MaxBlurPool2D(3, 2, 2, "zero").get_config())
    assert (max_clone.pool_size, max_clone.filter_size, max_clone.pad_mode) == ((3, 3), 2, "zero")

    inputs = keras.Input((12, 11, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = MaxBlurPool2D(filter_size=3)(x)
    x = BlurPool2D(filter_size=4, pad_mode="zero")(x)
    model = keras.Model(inputs, x)
    path = tmp_path / "blur.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    data = _random((2, 12, 11, 3))
    np.testing.assert_array_equal(np.asarray(model(data)), np.asarray(loaded(data)))
    assert [type(layer).__name__ for layer in loaded.layers][-2:] == ["MaxBlurPool2D", "BlurPool2D"]


def test_mixed_float16_outputs_float16_without_float64():
    x = _random((2, 8, 8, 3))
    cases = [
        (BlurPool2D(4, dtype="mixed_float16"), numpy_blurpool(x, 4, 2, "reflect")),
        (
            MaxBlurPool2D(dtype="mixed_float16"),
            numpy_blurpool(numpy_max_pool_stride1(x, 2), 4, 2, "reflect"),
        ),
    ]
    for layer, expected in cases:
        graph = tf.function(layer).get_concrete_function(tf.TensorSpec((2, 8, 8, 3))).graph
        dtypes = {t.dtype for op in graph.get_operations() for t in op.outputs}
        assert tf.float64 not in dtypes
        out = layer(x)
        assert out.dtype == "float16"
        # The fp16 kernel values are exact (binomial / 4^(k-1)); the error is fp16 rounding.
        np.testing.assert_allclose(np.asarray(out, np.float32), expected, atol=5e-3)


def test_inside_tf_data():
    images = _random((4, 8, 7, 3))
    for layer, expected in [
        (BlurPool2D(5, 2, "replicate"), numpy_blurpool(images, 5, 2, "replicate")),
        (
            MaxBlurPool2D(2, 3, 2, "reflect"),
            numpy_blurpool(numpy_max_pool_stride1(images, 2), 3, 2, "reflect"),
        ),
    ]:
        dataset = tf.data.Dataset.from_tensor_slices(images).batch(2).map(layer)
        out = np.concatenate([batch.numpy() for batch in dataset])
        np.testing.assert_allclose(out, expected, atol=1e-6)


JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    import jax
    from layers import BlurPool2D, MaxBlurPool2D
    x = np.load(sys.argv[1])
    results = {}
    for k in range(1, 8):
        for mode in ("reflect", "replicate", "zero"):
            results[f"blur_{k}_{mode}"] = np.asarray(BlurPool2D(k, 2, mode)(x)).tolist()
            results[f"max_{k}_{mode}"] = np.asarray(MaxBlurPool2D(2, k, 2, mode)(x)).tolist()
    jitted = jax.jit(lambda a: BlurPool2D(4, 2, "replicate")(a))
    results["jit_4_replicate"] = np.asarray(jitted(x)).tolist()
    print(json.dumps(results))
    """
)


def test_jax_backend_matches_numpy(tmp_path):
    """Keras fixes its backend at import, so the JAX run is a subprocess with KERAS_BACKEND=jax."""
    pytest.importorskip("jax")
    x = _random((2, 9, 8, 3), seed=3)
    np.save(tmp_path / "x.npy", x)
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    )
    run = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(results) == 43
    for k in FILTER_SIZES:
        for mode in PAD_MODES:
            np.testing.assert_allclose(
                results[f"blur_{k}_{mode}"],
                numpy_blurpool(x, k, 2, mode),
                atol=1e-6,
                err_msg=f"jax blur k={k} {mode}",
            )
            expected_max = numpy_blurpool(numpy_max_pool_stride1(x, 2), k, 2, mode)
            np.testing.assert_allclose(
                results[f"max_{k}_{mode}"], expected_max, atol=1e-6, err_msg=f"jax max k={k} {mode}"
            )
    np.testing.assert_allclose(
        results["jit_4_replicate"], numpy_blurpool(x, 4, 2, "replicate"), atol=1e-6
    )
