"""Reflect padding on maps not wider than the pad (`pad_overflow`), checked against
`numpy.pad(mode="reflect")`: the padding function, BlurPool2D / MaxBlurPool2D with static and
unknown sizes, the fast path where the pad fits, tf.data, mixed_float16, old and new saved
models (fresh process), the JAX backend, and the argument errors of the layers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers import BlurPool2D, MaxBlurPool2D, antialias
from layers.padding import pad_spatial
from tests.test_layers import numpy_blurpool, numpy_max_pool_stride1

REPO = Path(__file__).resolve().parents[1]
# Heights 1..6, each with another width, so each axis meets every size 1..6 (1: replication).
SIZES = [(height, (height + 2) % 6 + 1) for height in range(1, 7)]
# Every (before, after) in 0..3 on the height; the width gets another pair each time, so with
# SIZES each axis meets every (size, before, after).
# Fewer for JAX, which compiles per shape: sizes 1, 2, 3 (narrower than pads) and 5, 6 (wider).
JAX_SIZES = [(1, 3), (2, 1), (3, 2), (5, 6)]
PAD_PAIRS = [(before, after) for before in range(4) for after in range(4)]
PAD_CASES = [
    (pair, PAD_PAIRS[(index + 5) % len(PAD_PAIRS)]) for index, pair in enumerate(PAD_PAIRS)
]


def _random(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _numpy_reflect(x: np.ndarray, pads) -> np.ndarray:
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)], mode="reflect")


def _op_types(function, spec) -> set[str]:
    graph = tf.function(function, autograph=False).get_concrete_function(spec).graph
    return {op.type for op in graph.get_operations()}


def test_pad_spatial_repeat_matches_numpy_static_and_unknown_size():
    unknown = tf.TensorSpec((None, None, None, 2))
    for pads in PAD_CASES:
        padded = tf.function(
            lambda x, pads=pads: pad_spatial(x, pads, "reflect"),
            input_signature=[unknown],
            autograph=False,
        )
        for height, width in SIZES:
            x = _random((2, height, width, 2), seed=height * 7 + width)
            expected = _numpy_reflect(x, pads)
            case = f"pads={pads} size={height}x{width}"
            np.testing.assert_array_equal(
                np.asarray(pad_spatial(x, pads, "reflect")), expected, err_msg=case
            )
            np.testing.assert_array_equal(padded(x).numpy(), expected, err_msg=case)


@pytest.mark.parametrize("stride", [2, 3])
def test_blurpool_any_size_matches_numpy_formula(stride):
    """numpy_blurpool pads with np.pad(mode="reflect"), which reflects on past the edge."""
    for k in range(1, 8):
        static = BlurPool2D(k, stride)
        unknown = tf.function(
            BlurPool2D(k, stride), input_signature=[tf.TensorSpec((None, None, None, 3))]
        )
        for height, width in SIZES:
            x = _random((2, height, width, 3), seed=10 * height + width)
            expected = numpy_blurpool(x, k, stride, "reflect")
            case = f"k={k} stride={stride} size={height}x{width}"
            np.testing.assert_allclose(np.asarray(static(x)), expected, atol=1e-6, err_msg=case)
            np.testing.assert_allclose(unknown(x).numpy(), expected, atol=1e-6, err_msg=case)


def test_max_blurpool_small_maps_match_numpy():
    for k in (4, 7):
        layer = MaxBlurPool2D(2, k, 2)
        for height, width in [(2, 2), (2, 5), (3, 3), (4, 2)]:
            x = _random((1, height, width, 2), seed=height + width)
            expected = numpy_blurpool(numpy_max_pool_stride1(x, 2), k, 2, "reflect")
            np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-6)


def test_fast_path_where_the_pad_fits():
    """One reflect pad op (Zhang's exactly) where the pad fits a static map; a gather where it
    does not or where the size is unknown."""
    pads = ((1, 2), (1, 2))
    fits = _op_types(lambda x: pad_spatial(x, pads, "reflect"), tf.TensorSpec((2, 3, 8, 4)))
    assert "MirrorPad" in fits and "GatherV2" not in fits
    too_small = _op_types(lambda x: pad_spatial(x, pads, "reflect"), tf.TensorSpec((2, 2, 2, 4)))
    assert "GatherV2" in too_small and "MirrorPad" not in too_small
    unknown = _op_types(
        lambda x: pad_spatial(x, pads, "reflect"), tf.TensorSpec((2, None, None, 4))
    )
    assert "GatherV2" in unknown and not {"If", "StatelessIf", "MirrorPad"} & unknown
    height_unknown = _op_types(
        lambda x: pad_spatial(x, pads, "reflect"), tf.TensorSpec((2, None, 8, 4))
    )
    assert {"GatherV2", "MirrorPad"} <= height_unknown
    blur = _op_types(BlurPool2D(7), tf.TensorSpec((2, 8, 8, 4)))
    assert "MirrorPad" in blur and "GatherV2" not in blur


def test_under_xla_static_and_unknown_size():
    """jit_compile (Keras' default on GPU) compiles each call for its actual shape."""
    x_small, x_large = _random((2, 3, 2, 4), seed=1), _random((2, 9, 8, 4), seed=2)
    for spec in (tf.TensorSpec((2, 3, 2, 4)), tf.TensorSpec((2, None, None, 4))):
        blur = tf.function(BlurPool2D(7), input_signature=[spec], jit_compile=True)
        inputs = [x_small] if spec.shape[1] is not None else [x_small, x_large]
        for x in inputs:
            expected = numpy_blurpool(x, 7, 2, "reflect")
            np.testing.assert_allclose(blur(x).numpy(), expected, atol=1e-6)


def test_pad_overflow_error_keeps_the_old_rule():
    x = _random((1, 2, 2, 1))
    with pytest.raises(ValueError, match="pad_mode='reflect' needs an input height larger"):
        BlurPool2D(filter_size=5, pad_overflow="error")(x)
    with pytest.raises(ValueError, match="pad_overflow='repeat'"):
        MaxBlurPool2D(filter_size=5, pad_overflow="error")(keras.Input((3, 8, 1)))
    strict = tf.function(
        BlurPool2D(5, pad_overflow="error"), input_signature=[tf.TensorSpec((1, None, None, 1))]
    )
    with pytest.raises(tf.errors.InvalidArgumentError):
        strict(x)
    # Where the pad fits, both rules give Zhang's output.
    wide = _random((1, 5, 6, 2))
    np.testing.assert_array_equal(
        np.asarray(BlurPool2D(5, pad_overflow="error")(wide)), np.asarray(BlurPool2D(5)(wide))
    )
    # Replicate and zero padding fit any map, whatever pad_overflow says.
    for mode in ("replicate", "zero"):
        np.testing.assert_allclose(
            np.asarray(BlurPool2D(5, pad_mode=mode, pad_overflow="error")(x)),
            numpy_blurpool(x, 5, 2, mode),
            atol=1e-6,
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"filter_size": 4.0}, r"filter_size must be one of \[1, 2, 3, 4, 5, 6, 7\].*4\.0"),
        ({"filter_size": "4"}, r"filter_size must be one of \[1, 2, 3, 4, 5, 6, 7\].*'4'"),
        ({"filter_size": True}, r"filter_size must be one of \[1, 2, 3, 4, 5, 6, 7\].*True"),
        ({"pad_overflow": "wrap"}, r"pad_overflow must be one of \['error', 'repeat'\]"),
        ({"pad_mode": None}, r"pad_mode must be one of \['reflect', 'replicate', 'zero'\]"),
        ({"data_format": "channels_first"}, r"only data_format='channels_last'.*'channels_first'"),
    ],
)
def test_bad_arguments_get_one_line(kwargs, message):
    for layer in (BlurPool2D, MaxBlurPool2D):
        with pytest.raises(ValueError, match=message) as caught:
            layer(**kwargs)
        assert "\n" not in str(caught.value)
    if "data_format" not in kwargs:
        with pytest.raises(ValueError, match=message):
            antialias(keras.Sequential([keras.Input((8, 8, 1))]), **kwargs)


def test_numpy_integer_filter_size_is_an_int():
    layer = BlurPool2D(np.int64(4))
    assert layer.filter_size == 4 and type(layer.get_config()["filter_size"]) is int


def test_keras_default_channels_first_is_refused():
    keras.config.set_image_data_format("channels_first")
    try:
        for layer in (BlurPool2D, MaxBlurPool2D):
            with pytest.raises(ValueError, match=r"image_data_format\(\) 'channels_first'"):
                layer()
            # An explicit channels_last layer still computes on NHWC.
            x = _random((1, 3, 3, 2))
            explicit = layer(data_format="channels_last")
            assert explicit.get_config()["data_format"] == "channels_last"
            assert np.asarray(explicit(x)).shape[-1] == 2
    finally:
        keras.config.set_image_data_format("channels_last")


def test_config_has_pad_overflow_and_old_configs_load(tmp_path):
    for layer in (BlurPool2D(5, pad_overflow="error"), MaxBlurPool2D(pad_overflow="error")):
        config = layer.get_config()
        assert config["pad_overflow"] == "error" and config["data_format"] == "channels_last"
        assert type(layer).from_config(config).pad_overflow == "error"

    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, [BlurPool2D(6)(inputs), MaxBlurPool2D(2, 4)(inputs)])
    path = tmp_path / "new.keras"
    model.save(path)
    # A file written before pad_overflow and data_format existed: the same, without the keys.
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(old, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                text = data.decode()
                assert text.count('"pad_overflow": "repeat"') == 2
                config = json.loads(text)
                for layer in config["config"]["layers"]:
                    layer["config"].pop("pad_overflow", None)
                    layer["config"].pop("data_format", None)
                data = json.dumps(config).encode()
                assert b"pad_overflow" not in data
            target.writestr(item, data)
    loaded = keras.models.load_model(old)
    assert [layer.pad_overflow for layer in loaded.layers[1:]] == ["repeat", "repeat"]
    x = _random((2, 3, 2, 2), seed=4)
    blurred, max_blurred = (np.asarray(out) for out in loaded(x))
    np.testing.assert_allclose(blurred, numpy_blurpool(x, 6, 2, "reflect"), atol=1e-6)
    expected = numpy_blurpool(numpy_max_pool_stride1(x, 2), 4, 2, "reflect")
    np.testing.assert_allclose(max_blurred, expected, atol=1e-6)


def _unknown_size_dataset(images: list[np.ndarray]) -> tf.data.Dataset:
    return tf.data.Dataset.from_generator(
        lambda: iter(images), output_signature=tf.TensorSpec((1, None, None, 2))
    )


def test_inside_tf_data_static_and_unknown_size():
    sizes = [(2, 2), (2, 3), (3, 2), (5, 4)]
    images = [_random((1, h, w, 2), seed=h * w) for h, w in [(1, 1), *sizes]]
    outputs = _unknown_size_dataset(images).map(BlurPool2D(6))
    for image, out in zip(images, outputs, strict=True):
        np.testing.assert_allclose(out, numpy_blurpool(image, 6, 2, "reflect"), atol=1e-6)
    outputs = _unknown_size_dataset(images[1:]).map(MaxBlurPool2D(2, 7))
    for image, out in zip(images[1:], outputs, strict=True):
        expected = numpy_blurpool(numpy_max_pool_stride1(image, 2), 7, 2, "reflect")
        np.testing.assert_allclose(out, expected, atol=1e-6)
    static = tf.data.Dataset.from_tensor_slices(_random((4, 2, 3, 2))).batch(2).map(BlurPool2D(7))
    np.testing.assert_allclose(
        np.concatenate([batch.numpy() for batch in static]),
        numpy_blurpool(_random((4, 2, 3, 2)), 7, 2, "reflect"),
        atol=1e-6,
    )


def test_mixed_float16_small_maps():
    x = _random((2, 3, 2, 3))
    layer = BlurPool2D(7, dtype="mixed_float16")
    for spec in (tf.TensorSpec((2, 3, 2, 3)), tf.TensorSpec((2, None, None, 3))):
        graph = tf.function(layer).get_concrete_function(spec).graph
        assert tf.float64 not in {t.dtype for op in graph.get_operations() for t in op.outputs}
        out = tf.function(layer, input_signature=[spec])(x)
        assert out.dtype == tf.float16
        # The fp16 kernel values are exact (binomial / 4^(k-1)); the error is fp16 rounding.
        expected = numpy_blurpool(x, 7, 2, "reflect")
        np.testing.assert_allclose(out.numpy().astype(np.float32), expected, atol=5e-3)
    out = MaxBlurPool2D(2, 5, dtype="mixed_float16")(x)
    assert out.dtype == "float16"


def test_gradient_through_repeated_reflection():
    """The gradient of sum(w * pad(x)) w.r.t. x adds up w over every copy of each pixel."""
    pads = ((2, 3), (3, 1))
    x = _random((1, 2, 3, 1))
    weights = _random(_numpy_reflect(x, pads).shape, seed=1)
    sources = _numpy_reflect(np.arange(6, dtype=np.float64).reshape(1, 2, 3, 1), pads)
    expected = np.array([weights[sources == i].sum() for i in range(6)]).reshape(x.shape)
    spec = tf.TensorSpec((1, None, None, 1))
    for padding in (
        lambda t: pad_spatial(t, pads, "reflect"),
        tf.function(
            lambda t: pad_spatial(t, pads, "reflect"), input_signature=[spec], autograph=False
        ),
    ):
        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(weights * padding(variable))
        np.testing.assert_allclose(tape.gradient(loss, variable).numpy(), expected, atol=1e-5)


FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    import layers  # registers the package's layers
    keras.config.set_image_data_format("channels_first")  # saved layers say channels_last
    model = keras.models.load_model(sys.argv[1])
    outputs = {}
    for name in ("x33", "x25"):
        x = np.load(f"{sys.argv[2]}/{name}.npy")
        for index, out in enumerate(model(x)):
            outputs[f"{name}_{index}"] = np.asarray(out)
    np.savez(f"{sys.argv[2]}/out.npz", **outputs)
    print(json.dumps([layer.get_config().get("pad_overflow") for layer in model.layers]))
    """
)


def test_save_and_load_in_a_fresh_process(tmp_path):
    inputs = keras.Input((None, None, 2))
    model = keras.Model(
        inputs,
        [
            BlurPool2D(6, name="repeat6")(inputs),
            MaxBlurPool2D(2, 7, name="max7")(inputs),
            BlurPool2D(3, pad_overflow="error", name="strict3")(inputs),
        ],
    )
    model.save(tmp_path / "model.keras")
    inputs_by_name = {"x33": _random((2, 3, 3, 2), seed=1), "x25": _random((2, 2, 5, 2), seed=2)}
    for name, x in inputs_by_name.items():
        np.save(tmp_path / f"{name}.npy", x)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    run = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, str(tmp_path / "model.keras"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [None, "repeat", "repeat", "error"]
    outputs = np.load(tmp_path / "out.npz")
    for name, x in inputs_by_name.items():
        expected = [
            numpy_blurpool(x, 6, 2, "reflect"),
            numpy_blurpool(numpy_max_pool_stride1(x, 2), 7, 2, "reflect"),
            numpy_blurpool(x, 3, 2, "reflect"),
        ]
        for index, want in enumerate(expected):
            np.testing.assert_allclose(outputs[f"{name}_{index}"], want, atol=1e-6)


JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    import jax
    from layers import BlurPool2D
    from layers.padding import pad_spatial
    pad_cases, sizes = json.loads(sys.argv[2])
    full = np.load(sys.argv[1])

    # One jitted program per input size (JAX compiles per shape; op by op would take minutes).
    @jax.jit
    def everything(x):
        pads = [pad_spatial(x, case, "reflect") for case in pad_cases]
        return pads, [BlurPool2D(k)(x) for k in range(1, 8)]

    outputs = {}
    for height, width in sizes:
        pads, blurs = everything(full[:, :height, :width])
        for index, out in enumerate(pads):
            outputs[f"pad_{height}_{width}_{index}"] = np.asarray(out)
        for k, out in enumerate(blurs, start=1):
            outputs[f"blur_{height}_{width}_{k}"] = np.asarray(out)
    eager = BlurPool2D(7)(full[:, :2, :3])  # and once op by op
    outputs["eager_7"] = np.asarray(eager)
    np.savez(sys.argv[3], **outputs)
    """
)


def test_jax_backend_matches_numpy(tmp_path):
    """Keras fixes its backend at import, so the JAX run is a subprocess with KERAS_BACKEND=jax."""
    pytest.importorskip("jax")
    x = _random((2, 6, 6, 2), seed=5)
    np.save(tmp_path / "x.npy", x)
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    )
    arguments = json.dumps([PAD_CASES, JAX_SIZES])
    run = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, tmp_path / "x.npy", arguments, tmp_path / "out.npz"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    outputs = np.load(tmp_path / "out.npz")
    assert len(outputs.files) == len(JAX_SIZES) * (len(PAD_CASES) + 7) + 1
    for height, width in JAX_SIZES:
        crop = x[:, :height, :width]
        for index, pads in enumerate(PAD_CASES):
            np.testing.assert_array_equal(
                outputs[f"pad_{height}_{width}_{index}"], _numpy_reflect(crop, pads)
            )
        for k in range(1, 8):
            np.testing.assert_allclose(
                outputs[f"blur_{height}_{width}_{k}"],
                numpy_blurpool(crop, k, 2, "reflect"),
                atol=1e-6,
                err_msg=f"jax k={k} size={height}x{width}",
            )
    np.testing.assert_allclose(
        outputs["eager_7"], numpy_blurpool(x[:, :2, :3], 7, 2, "reflect"), atol=1e-6
    )
