"""Anti-aliased models on small inputs (issue 11 item 4): `recipes.resnet18/50(antialias=k)` and
`antialias(keras.applications...)` build, train a step and run from 28 px up, where the deepest
maps (2x2, 1x1) are narrower than the blur's reflect pad; those blurs compute the
`numpy.pad(mode="reflect")` rule (`pad_overflow="repeat"`). Kept cheap: batch 2, one step,
eager steps (the traced paths are checked on the layer in tests/test_pad_overflow.py), except
one traced `fit` with unknown image size."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import recipes
from layers import BlurPool2D, antialias
from tests.test_layers import numpy_blurpool


def _images(size: int, n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, size, size, 3)).astype(np.float32)


def _check_blurs(model: keras.Model, names: list[str], x: np.ndarray) -> None:
    """The named BlurPool2D layers, fed from `x`, against the NumPy formula on their input;
    at least one of them must be on a map not wider than its pad (the case under test)."""
    blurs = [model.get_layer(name) for name in names]
    taps = keras.Model(model.input, [t for blur in blurs for t in (blur.input, blur.output)])
    values = [np.asarray(value, np.float64) for value in taps(x)]
    overflowed = False
    for blur, source, out in zip(blurs, values[::2], values[1::2], strict=True):
        assert isinstance(blur, BlurPool2D) and blur.pad_overflow == "repeat"
        overflowed |= min(source.shape[1:3]) <= max(blur.pads[0])
        expected = numpy_blurpool(source, blur.filter_size, blur.strides[0], blur.pad_mode)
        scale = max(np.abs(expected).max(), 1.0)
        np.testing.assert_allclose(out, expected, atol=1e-5 * scale, err_msg=blur.name)
    assert overflowed or max(blurs[0].pads[0]) <= 1, [v.shape for v in values]


def _train_one_step(model: keras.Model, x: np.ndarray, run_eagerly: bool = True) -> None:
    """One SGD step: finite loss, the first conv's kernel moves, no NaN anywhere."""
    kernel = next(w for w in model.trainable_weights if len(w.shape) == 4)
    before = np.asarray(kernel).copy()
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=run_eagerly,
    )
    loss = model.train_on_batch(x, np.arange(len(x)) % 3)
    assert np.isfinite(loss)
    assert not np.array_equal(np.asarray(kernel), before)
    assert all(np.isfinite(np.asarray(w)).all() for w in model.weights)


# At 28 px a torchvision ResNet's maps are 14 (conv1), 13 (2x2 max-pool at stride 1), 7, 4, 2:
# layer4's blurs see 2x2 maps, narrower than the pads of filters 4..7.
DEEPEST_BLURS = ["layer4.0.blur", "layer4.0.downsample_blur", "layer3.0.blur"]


@pytest.mark.parametrize("k", range(1, 8))
def test_resnet18_every_filter_size_at_28px(k):
    model = recipes.resnet18(3, input_shape=(28, 28, 3), antialias=k, classifier_activation=None)
    x = _images(28)
    _train_one_step(model, x)
    assert np.isfinite(np.asarray(model(x))).all()
    _check_blurs(model, DEEPEST_BLURS, x)


@pytest.mark.parametrize("k", [4, 7])
def test_resnet50_at_28px(k):
    """Same maps and blur places as ResNet-18 (resnet18 covers every k)."""
    model = recipes.resnet50(3, input_shape=(28, 28, 3), antialias=k, classifier_activation=None)
    x = _images(28, seed=1)
    _train_one_step(model, x)
    _check_blurs(model, DEEPEST_BLURS, x)


def test_resnet18_unknown_size_traced_fit_and_any_size():
    """(None, None, 3): model.fit traces one graph with unknown H, W (the run-time choice
    between pad and gather), fed 28 and 33 px batches; then runs at 32 and 64 px."""
    model = recipes.resnet18(
        3, input_shape=(None, None, 3), antialias=4, classifier_activation=None
    )
    batches = [(_images(size, seed=size), np.array([0, 1])) for size in (28, 33)]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=(
            tf.TensorSpec((None, None, None, 3)),
            tf.TensorSpec((None,), tf.int64),
        ),
    )
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(dataset, epochs=1, steps_per_epoch=len(batches), shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    for size in (28, 32, 33, 64):
        x = _images(size, n=1, seed=size)
        assert np.isfinite(np.asarray(model(x))).all()
        if size < 64:
            _check_blurs(model, DEEPEST_BLURS, x)


def test_applications_resnet50_at_32px():
    """The issue's case: antialias(ResNet50(input_shape=(32, 32, 3))) failed to build."""
    model = keras.applications.ResNet50(
        weights=None, input_shape=(32, 32, 3), classes=3, classifier_activation=None
    )
    new = antialias(model, filter_size=4)
    x = _images(32, seed=2)
    _train_one_step(new, x)
    # conv5's first block: 2x2 maps (the shortcut blur sees conv4's 2x2 output).
    _check_blurs(new, ["conv5_block1_1_conv_blurpool", "conv5_block1_0_conv_blurpool"], x)


def test_applications_mobilenetv2_unknown_size():
    """MobileNetV2 with unknown H, W at 32, 33, 64 px (Keras' own MobileNetV2 needs >= 32 px);
    its last strided block blurs a 1x1 map at 32 px."""
    backbone = keras.applications.MobileNetV2(
        weights=None, input_shape=(None, None, 3), include_top=False, pooling="avg"
    )
    model = keras.Model(backbone.input, keras.layers.Dense(3)(backbone.output))
    with pytest.warns(UserWarning, match="Conv1: padding='same' with unknown input"):
        new = antialias(model, filter_size=7)
    for size in (32, 33, 64):
        x = _images(size, n=1, seed=size)
        assert np.isfinite(np.asarray(new(x))).all()
        if size < 64:
            _check_blurs(new, ["block_13_depthwise_blurpool", "block_6_depthwise_blurpool"], x)
    _train_one_step(new, _images(33, seed=3))
