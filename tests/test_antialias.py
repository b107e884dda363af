"""antialias(model): placement of the blurs as Zhang places them, the original weights, and
filter_size=1 giving exactly the original function (tiny models and keras.applications)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from layers import BlurPool2D, MaxBlurPool2D, antialias
from tests.test_layers import numpy_blurpool, numpy_max_pool_stride1


def _random(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _numpy_conv_valid(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Stride-1 "valid" cross-correlation, NHWC x HWIO."""
    kh, kw = kernel.shape[:2]
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], h, w, kernel.shape[3])) + bias
    for a in range(kh):
        for b in range(kw):
            out += x[:, a : a + h, b : b + w] @ kernel[a, b]
    return out


def _randomise_batchnorm(model: keras.Model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.1, beta.shape),
                    rng.normal(0, 0.1, mean.shape),
                    rng.uniform(0.5, 1.5, var.shape),
                ]
            )


def _layer_types(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_strided_conv_bn_relu_matches_manual_formula():
    """Conv(s2) -> BN -> ReLU becomes Conv(s1) -> BN -> ReLU -> BlurPool(s2): checked against
    NumPy conv + BN formula + the direct blur formula."""
    inputs = keras.Input((9, 10, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, bias_initializer="random_normal", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    model = keras.Model(inputs, x)
    _randomise_batchnorm(model)
    new = antialias(model, filter_size=4, pad_mode="reflect")

    assert _layer_types(new)[1:] == ["Conv2D", "BatchNormalization", "ReLU", "BlurPool2D"]
    assert new.get_layer("conv").strides == (1, 1) and model.get_layer("conv").strides == (2, 2)
    for old_weight, new_weight in zip(model.weights, new.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(old_weight), np.asarray(new_weight))

    data = _random((2, 9, 10, 3))
    kernel, bias = (np.asarray(w) for w in model.get_layer("conv").weights)
    gamma, beta, mean, var = model.get_layer("bn").get_weights()
    hidden = _numpy_conv_valid(data, kernel, bias)
    hidden = np.maximum(gamma * (hidden - mean) / np.sqrt(var + 1e-3) + beta, 0.0)
    np.testing.assert_allclose(
        np.asarray(new(data)), numpy_blurpool(hidden, 4, 2, "reflect"), atol=1e-5
    )


def test_shortcut_1x1_conv_is_blurred_before_and_commutes():
    """A strided 1x1 conv with no activation after it (ResNet shortcut): blur -> conv1x1, which
    equals conv1x1(s1) -> blur for reflect padding."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(5, 1, strides=2, bias_initializer="random_normal", name="short")(inputs)
    x = keras.layers.BatchNormalization(name="short_bn")(x)
    model = keras.Model(inputs, x)
    _randomise_batchnorm(model)
    new = antialias(model, filter_size=3)
    assert _layer_types(new)[1:] == ["BlurPool2D", "Conv2D", "BatchNormalization"]
    data = _random((1, 8, 8, 3), seed=1)
    conv_s1 = keras.layers.Conv2D(5, 1, name="s1")
    conv_s1.build((None, 8, 8, 3))
    conv_s1.set_weights(model.get_layer("short").get_weights())
    bn = model.get_layer("short_bn")
    expected = numpy_blurpool(np.asarray(bn(conv_s1(data))), 3, 2, "reflect")
    np.testing.assert_allclose(np.asarray(new(data)), expected, atol=1e-5)


@pytest.mark.parametrize("size", [7, 8, 9, 10])
def test_same_padding_layers_keep_their_grid_with_filter_1(size):
    """'same' at stride s pads differently from 'same' at stride 1; the crop re-aligns them, so
    filter_size=1 reproduces the original for every kernel size and input parity."""
    inputs = keras.Input((size, size + 1, 2))
    outputs = [
        keras.layers.Conv2D(3, k, strides=2, padding="same", name=f"c{k}")(inputs)
        for k in (2, 3, 4, 5)
    ]
    outputs.append(keras.layers.DepthwiseConv2D(3, strides=3, padding="same")(inputs))
    outputs.append(keras.layers.MaxPooling2D(3, strides=2, padding="same")(inputs))
    outputs.append(keras.layers.SeparableConv2D(2, 3, strides=2, padding="same")(inputs))
    outputs.append(keras.layers.Conv2D(2, 3, strides=2, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    new = antialias(model, filter_size=1)
    data = _random((2, size, size + 1, 2), seed=size)
    for old, converted in zip(model(data), new(data), strict=True):
        np.testing.assert_allclose(np.asarray(converted), np.asarray(old), atol=1e-5)
    assert sum(isinstance(layer, BlurPool2D) for layer in new.layers) == len(outputs)


def test_pools_are_replaced_as_zhang_does():
    inputs = keras.Input((9, 8, 3))
    x = keras.layers.MaxPooling2D(2, name="max")(inputs)
    x = keras.layers.AveragePooling2D(2, name="avg")(x)
    new = antialias(keras.Model(inputs, x), filter_size=3, pad_mode="replicate")
    assert _layer_types(new)[1:] == ["MaxBlurPool2D", "BlurPool2D"]
    assert [layer.name for layer in new.layers[1:]] == ["max", "avg"]
    data = _random((1, 9, 8, 3))
    pooled = numpy_blurpool(numpy_max_pool_stride1(data, 2), 3, 2, "replicate")
    expected = numpy_blurpool(pooled, 3, 2, "replicate")
    np.testing.assert_allclose(np.asarray(new(data)), expected, atol=1e-5)


def test_nested_and_sequential_models_and_save(tmp_path):
    inner = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, strides=2, padding="same"),
            keras.layers.ReLU(),
        ],
        name="inner",
    )
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inner(inputs)))
    new = antialias(model, filter_size=2)
    nested = new.layers[1]
    assert isinstance(nested, keras.Model)
    assert _layer_types(nested)[1:] == ["Conv2D", "Cropping2D", "ReLU", "BlurPool2D"]
    data = _random((2, 8, 8, 3))
    path = tmp_path / "aa.keras"
    new.save(path)
    np.testing.assert_allclose(
        np.asarray(keras.models.load_model(path)(data)), np.asarray(new(data)), atol=0
    )
    sequential = antialias(inner, filter_size=1)
    assert _layer_types(sequential)[1:] == ["Conv2D", "Cropping2D", "ReLU", "BlurPool2D"]
    np.testing.assert_allclose(np.asarray(sequential(data)), np.asarray(inner(data)), atol=1e-5)


def test_unconvertible_layers_are_named():
    class Hidden(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = keras.layers.Conv2D(2, 3, strides=2)

        def call(self, x):
            return self.conv(x)

    inputs = keras.Input((16, 3))
    branch = keras.layers.Conv1D(2, 3, strides=2, name="conv1d")(inputs)
    image = keras.layers.Reshape((4, 4, 3))(inputs)
    hidden = Hidden(name="hidden")(image)
    model = keras.Model(inputs, [branch, hidden])
    with pytest.warns(UserWarning, match="conv1d: Conv1D is not 2-D") as caught:
        antialias(model)
    assert "hidden/" in str(caught[0].message)

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed"):
        antialias(Subclassed())
    with pytest.raises(ValueError, match="filter_size must be one of"):
        antialias(model, filter_size=8)


@pytest.fixture(scope="module")
def applications():
    """keras.applications models built once for the module (ResNet50 is slow on CPU)."""
    kwargs = {"weights": None, "input_shape": (64, 64, 3), "classifier_activation": None}
    models = {
        "ResNet50": keras.applications.ResNet50(**kwargs),
        "MobileNetV2": keras.applications.MobileNetV2(**kwargs),
    }
    for model in models.values():
        _randomise_batchnorm(model)
    return models


# Feature maps checked besides the logits: the outputs of the blocks that downsample.
TAPS = {
    "ResNet50": ["pool1_pool", "conv3_block1_out", "conv5_block1_out", "predictions"],
    "MobileNetV2": [
        "expanded_conv_project_BN",
        "block_3_project_BN",
        "block_13_project_BN",
        "predictions",
    ],
}


@pytest.mark.parametrize("name", ["ResNet50", "MobileNetV2"])
def test_applications_filter_1_is_the_original_function(applications, name):
    model = applications[name]
    new = antialias(model, filter_size=1)
    data = _random((2, 64, 64, 3), seed=7)
    old_taps = keras.Model(model.input, [model.get_layer(t).output for t in TAPS[name]])(data)
    new_taps = keras.Model(new.input, [new.get_layer(t).output for t in TAPS[name]])(data)
    for tap, old, converted in zip(TAPS[name], old_taps, new_taps, strict=True):
        old, converted = np.asarray(old), np.asarray(converted)
        scale = np.abs(old).max()
        assert scale > 0
        assert np.abs(converted - old).max() <= 1e-5 * scale, tap


def test_applications_filter_4_structure_and_weights(applications):
    resnet = applications["ResNet50"]
    new = antialias(resnet, filter_size=4)
    blurs = {
        layer.name: layer._inbound_nodes[0].input_tensors[0]._keras_history[0].name
        for layer in new.layers
        if isinstance(layer, BlurPool2D)
    }
    # Main path: blur after the ReLU that follows the (formerly strided) 1x1 conv; shortcut:
    # blur before the 1x1 conv; stem: after conv1's ReLU; max-pool -> MaxBlurPool2D.
    assert blurs["conv1_conv_blurpool"] == "conv1_relu"
    for stage, previous in (
        (3, "conv2_block3_out"),
        (4, "conv3_block4_out"),
        (5, "conv4_block6_out"),
    ):
        assert blurs[f"conv{stage}_block1_1_conv_blurpool"] == f"conv{stage}_block1_1_relu"
        assert blurs[f"conv{stage}_block1_0_conv_blurpool"] == previous
    assert len(blurs) == 7
    assert isinstance(new.get_layer("pool1_pool"), MaxBlurPool2D)
    assert all(
        getattr(layer, "strides", (1, 1)) == (1, 1) or isinstance(layer, BlurPool2D | MaxBlurPool2D)
        for layer in new.layers
    )
    assert new.count_params() == resnet.count_params()
    for old_weight, new_weight in zip(resnet.weights, new.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(old_weight), np.asarray(new_weight))
    data = _random((1, 64, 64, 3), seed=8)
    assert new(data).shape == resnet(data).shape
    assert np.abs(np.asarray(new(data)) - np.asarray(resnet(data))).max() > 1e-3
