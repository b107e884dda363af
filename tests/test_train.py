"""The training engine's parts (optimizer, schedules, BatchNorm, configuration), checked against
hand-worked values."""

import keras
import numpy as np
import pytest

from recipes import train
from recipes.train import TrainConfig


def _tiny_model() -> keras.Model:
    inputs = keras.Input((6,))
    x = keras.layers.Dense(5, use_bias=False, name="layer1.0.conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    outputs = keras.layers.Dense(3, name="fc")(x)
    return keras.Model(inputs, outputs)


def _first_step_changes(config: TrainConfig) -> dict[str, float]:
    model = _tiny_model()
    model.compile(
        optimizer=train.make_optimizer(config, total_steps=10),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    before = {v.path: np.array(v) for v in model.trainable_variables}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 16)]
    model.train_on_batch(x, y)
    return {
        path: float(np.max(np.abs(np.array(v) - before[path])))
        for path, v in ((v.path, v) for v in model.trainable_variables)
    }


def test_pretrained_backbone_learns_ten_times_slower_than_head():
    # Adam's first step moves every weight by lr * sign(gradient) (bias-corrected m/sqrt(v) = +-1).
    config = TrainConfig("t", "tiny", pretrain="supervised", learning_rate=1e-3, weight_decay=0.0)
    changes = _first_step_changes(config)
    head = [c for path, c in changes.items() if "/fc/" in f"/{path}"]
    backbone = [c for path, c in changes.items() if "/fc/" not in f"/{path}"]
    assert len(head) == 2 and len(backbone) == 3
    np.testing.assert_allclose(head, 1e-3, rtol=1e-3)
    np.testing.assert_allclose(backbone, 1e-4, rtol=1e-3)


def test_from_scratch_every_variable_gets_the_same_learning_rate():
    config = TrainConfig("t", "tiny", pretrain="none", learning_rate=1e-3, weight_decay=0.0)
    np.testing.assert_allclose(list(_first_step_changes(config).values()), 1e-3, rtol=1e-3)


def test_step_and_cosine_schedules_follow_their_formulas():
    step = train.SCHEDULES["step"](1.0, 100)
    assert [float(step(s)) for s in (0, 50, 51, 75, 76)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01]
    )
    cosine = train.SCHEDULES["cosine"](1.0, 100)
    for s in (0, 25, 50, 100):
        assert float(cosine(s)) == pytest.approx(0.5 * (1 + np.cos(np.pi * s / 100)), abs=1e-6)
    assert train.SCHEDULES["constant"](0.3, 100) == 0.3


def test_freeze_batchnorm_freezes_only_batchnorm():
    model = _tiny_model()
    assert train.freeze_batchnorm(model) == 1
    assert not model.get_layer("bn1").trainable
    assert model.get_layer("fc").trainable
    assert len(model.trainable_variables) == 3


def test_synchronize_batchnorm_makes_every_batchnorm_synchronized():
    model = _tiny_model()
    assert train.synchronize_batchnorm(model) == 1
    assert model.get_layer("bn1").synchronized


def test_unknown_precision_is_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="got 'maybe'") as error:
        train.configure_precision("maybe")
    assert "['auto', 'on', 'off']" in str(error.value)


def test_half_precision_floatx_is_refused_without_mixed_precision():
    policy = keras.config.dtype_policy()
    keras.config.set_floatx("float16")
    try:
        with pytest.raises(ValueError, match="floatx must be one of \\['float32', 'float64'\\]"):
            train.configure_precision("off")
        assert train.configure_precision("on") == "mixed_float16"
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy(policy)
    assert train.configure_precision("off") == "float32"
    keras.config.set_dtype_policy(policy)


def test_unknown_schedule_is_refused():
    with pytest.raises(
        ValueError, match=r"schedule must be one of \['constant', 'cosine', 'step'\]"
    ):
        train.make_optimizer(TrainConfig("t", "tiny", schedule="linear"), 10)
