"""Temperature scaling of whole models: probability models, perturbed fits, reports, the CLI."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from evaluation import __main__ as evaluation_cli
from evaluation import recalibration
from evaluation.calibration import fit_temperature


def _models(num_classes: int = 3, sharpness: float = 4.0):
    """A logits model and the same model with a softmax (probabilities), on 8x8 RGB images."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(sharpness / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=keras.initializers.RandomNormal(seed=1), name="fc"
    )(x)
    logits_model = keras.Model(inputs, logits)
    probs = keras.layers.Softmax()(logits_model(inputs))
    return logits_model, keras.Model(inputs, probs)


def _batches(n: int = 96, seed: int = 0, num_classes: int = 3):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, n)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(32)


def test_a_probability_model_gets_the_temperature_of_its_logits():
    logits_model, probability_model = _models()
    batches = _batches()
    from_probs, note = recalibration.fit_model_temperature(
        recalibration.logits_of(probability_model), batches, "clean"
    )
    assert note is None
    logits = np.concatenate([logits_model(x).numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert from_probs == pytest.approx(fit_temperature(logits, labels), rel=1e-5)
    direct, _ = recalibration.fit_model_temperature(
        recalibration.logits_of(logits_model, from_logits=True), batches, "clean"
    )
    assert direct == pytest.approx(fit_temperature(logits, labels), rel=1e-9)


def test_with_temperature_divides_logits_and_keeps_every_prediction():
    logits_model, probability_model = _models()
    images = next(iter(_batches()))[0]
    for model, from_logits in ((probability_model, False), (logits_model, True)):
        scaled = recalibration.with_temperature(model, 2.5, from_logits=from_logits)
        out = scaled(tf.cast(images, tf.float32)).numpy()
        z = logits_model(images).numpy()
        expected = z / 2.5 if from_logits else tf.nn.softmax(z / 2.5).numpy()
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(out.argmax(-1), z.argmax(-1))


def test_perturbed_fit_never_touches_a_test_condition(monkeypatch):
    import evaluation.corruptions
    import evaluation.shifts

    def forbidden(*args, **kwargs):
        raise AssertionError("a test-suite shift was used to fit the temperature")

    for module, name in ((evaluation.shifts, "gaussian_blur"), (evaluation.shifts, "brightness"),
                         (evaluation.corruptions, "corrupt")):  # fmt: skip
        monkeypatch.setattr(module, name, forbidden)
    _, probability_model = _models()
    logits = recalibration.logits_of(probability_model)
    clean = recalibration.fit_model_temperature(logits, _batches(), "clean")
    perturbed = recalibration.fit_model_temperature(logits, _batches(), "perturbed", seed=3)
    assert perturbed[0] != clean[0]
    assert perturbed == recalibration.fit_model_temperature(logits, _batches(), "perturbed", 3)
    with pytest.raises(ValueError, match=r"one of \['none', 'clean', 'perturbed'\]"):
        recalibration.fit_model_temperature(logits, _batches(), "noisy")


def test_validation_without_information_leaves_the_model_uncalibrated():
    # Every example right with a growing margin: the NLL falls without end as T -> 0.
    logits_model, _ = _models()
    images = next(iter(_batches()))[0]
    labels = logits_model(images).numpy().argmax(-1)
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    logits = recalibration.logits_of(logits_model, from_logits=True)
    temperature, note = recalibration.fit_model_temperature(logits, batches, "clean")
    assert temperature == 1.0 and "left uncalibrated" in note


def test_cli_calibrates_on_validation_data_and_reports_before_and_after(tmp_path, capsys):
    _, probability_model = _models(2, sharpness=40.0)  # over-confident on random labels
    inputs = keras.Input((28, 28, 3))
    pooled = keras.layers.AveragePooling2D(3, strides=3, padding="same")(inputs)  # 10x10
    model = keras.Model(inputs, probability_model(keras.layers.Cropping2D(1)(pooled)))
    model.save(tmp_path / "m.keras")
    rng = np.random.default_rng(0)
    for name, n in (("val", 64), ("test", 48)):
        images = rng.integers(0, 256, (n, 28, 28, 3), np.uint8)
        # The model's own class 3 times in 4: right often, but far less than it believes.
        labels = np.asarray(model(images.astype("float32"))).argmax(-1)
        labels = np.where(rng.random(n) < 0.25, 1 - labels, labels)
        np.savez(tmp_path / f"{name}.npz", x_test=images, y_test=labels)
    out = tmp_path / "eval"
    code = evaluation_cli.main(
        [str(tmp_path / "m.keras"), "--data", f"npz:{tmp_path / 'test.npz'}", "--calibrate-on",
         f"npz:{tmp_path / 'val.npz'}", "--calibrate", "clean", "--out", str(out), "-q"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    calibration = report["meta"]["calibration"]
    assert calibration["mode"] == "clean" and calibration["temperature"] > 1
    clean = report["results"][0]
    assert clean["uncalibrated"]["nll"] > clean["nll"]
    markdown = (out / "report.md").read_text()
    assert "## Temperature scaling" in markdown
    assert f"T = {calibration['temperature']:.4f}" in markdown
