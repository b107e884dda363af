"""recipes.resnet: architecture facts, serialization, mixed precision, backbone options.

Numerical equivalence with a torch ResNet (plain and anti-aliased) is in tests/test_weights.py.
"""

import keras
import numpy as np
import pytest

import recipes
from layers import BlurPool2D
from recipes import resnet

RNG = np.random.default_rng(1)


def _images(n=2, size=32):
    return RNG.normal(size=(n, size, size, 3)).astype(np.float32)


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@pytest.mark.parametrize(
    ("constructor", "antialias", "expected"),
    [
        # torchvision's parameter counts (BN running statistics are buffers there, not parameters).
        (recipes.resnet18, None, 11_689_512),
        (recipes.resnet50, None, 25_557_032),
        (recipes.resnet50, 4, 25_557_032),  # antialiased-cnns: blur adds no parameters
    ],
)
def test_parameter_counts_match_torchvision(constructor, antialias, expected):
    model = constructor(1000, input_shape=(64, 64, 3), antialias=antialias)
    assert _trainable(model) == expected
    assert model.get_layer("fc").dtype_policy.name == "float32"


def test_antialiased_layout_follows_zhang():
    """Blur after the strided conv's ReLU, before the shortcut's 1x1 conv, after a 2x2/1 max."""
    model = recipes.resnet50(10, input_shape=(64, 64, 3), antialias=4)
    blurs = [layer for layer in model.layers if isinstance(layer, BlurPool2D)]
    expected = ["maxpool_blur"] + [
        f"layer{i}.0.{n}" for i in (2, 3, 4) for n in ("blur", "downsample_blur")
    ]
    assert sorted(b.name for b in blurs) == sorted(expected)  # 7 blurs, as in antialiased-cnns
    assert all(b.get_config()["filter_size"] == 4 for b in blurs)
    assert model.get_layer("maxpool").get_config()["pool_size"] == (2, 2)
    assert model.get_layer("maxpool").get_config()["strides"] == (1, 1)
    for stage in (2, 3, 4):
        block = f"layer{stage}.0"
        assert model.get_layer(f"{block}.conv2").strides == (1, 1)
        assert model.get_layer(f"{block}.downsample.0").strides == (1, 1)
        assert model.get_layer(f"{block}.blur").input is model.get_layer(f"{block}.relu2").output
        assert (
            model.get_layer(f"{block}.downsample.0").input
            is model.get_layer(f"{block}.downsample_blur").output
        )
    plain = recipes.resnet50(10, input_shape=(64, 64, 3))
    assert plain.get_layer("layer2.0.conv2").strides == (2, 2)  # v1.5: stride on the 3x3 conv
    assert plain.get_layer("layer2.0.conv1").strides == (1, 1)
    assert plain.get_layer("bn1").epsilon == 1e-5 and plain.get_layer("bn1").momentum == 0.9
    assert plain.get_layer("layer2.0.conv2_pad").padding == ((1, 1), (1, 1))  # explicit, not "same"


@pytest.mark.parametrize("antialias", [None, 4])
def test_saved_model_reloads_with_identical_outputs(tmp_path, antialias):
    # 64 px: reflect padding needs the 4x4 blur's pad (1, 2) < layer4's input size.
    model = recipes.resnet18(7, input_shape=(64, 64, 3), antialias=antialias)
    x = _images(size=64)
    expected = np.asarray(model(x, training=False))
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(np.asarray(reloaded(x, training=False)), expected)
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]


def test_mixed_precision_builds_runs_and_keeps_float32_output():
    reference = recipes.resnet18(5, input_shape=(32, 32, 3), antialias=3)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = recipes.resnet18(5, input_shape=(32, 32, 3), antialias=3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.set_weights(reference.get_weights())
    assert model.get_layer("layer1.0.conv1").compute_dtype == "float16"
    assert all(v.dtype == "float32" for v in model.weights)
    x = _images()
    output = model(x, training=False)
    assert keras.backend.standardize_dtype(output.dtype) == "float32"
    expected = np.asarray(reference(x, training=False))
    assert np.max(np.abs(np.asarray(output) - expected)) < 1e-2
    np.testing.assert_allclose(np.asarray(output).sum(axis=-1), 1.0, rtol=1e-5)


def test_backbone_pooling_options():
    x = _images(size=64)
    features = recipes.resnet18(None, input_shape=(64, 64, 3), include_top=False)
    maps = np.asarray(features(x, training=False))
    assert maps.shape == (2, 2, 2, 512)
    for pooling, reduce in (("avg", np.mean), ("max", np.max)):
        pooled = recipes.resnet18(None, input_shape=(64, 64, 3), include_top=False, pooling=pooling)
        pooled.set_weights(features.get_weights())
        np.testing.assert_allclose(
            np.asarray(pooled(x, training=False)), reduce(maps, axis=(1, 2)), rtol=1e-5, atol=1e-6
        )
    logits = recipes.resnet50(3, input_shape=(None, None, 3), classifier_activation=None, name="x")
    assert logits.name == "x"
    assert np.asarray(logits(_images(size=48), training=False)).shape == (2, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0}, "num_classes must be a positive int"),
        ({"num_classes": None}, "num_classes must be a positive int"),
        ({"num_classes": 3, "antialias": 0}, "antialias must be None or a blur filter size"),
        ({"num_classes": 3, "antialias": True}, "antialias must be None or a blur filter size"),
        ({"num_classes": 3, "include_top": False, "pooling": "sum"}, "pooling must be one of"),
    ],
)
def test_invalid_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        recipes.resnet18(input_shape=(32, 32, 3), **kwargs)
    with pytest.raises(ValueError, match="architecture must be one of"):
        resnet.build_resnet("resnet34", 3)
