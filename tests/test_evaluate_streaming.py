"""evaluation.evaluate's compiled, streamed pipeline: same numbers as the eager loop it replaced."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import evaluation
from evaluation import consistency

RNG = np.random.default_rng(1)
# one colour per image plus noise, so that the tiny model's confidences spread over the bins
IMAGES = np.clip(
    RNG.uniform(0, 255, (37, 1, 1, 3)) + RNG.normal(0, 30, (37, 28, 28, 3)), 0, 255
).astype(np.uint8)
LABELS = RNG.integers(0, 3, 37)
REFERENCE = pathlib.Path(__file__).parent / "reference" / "evaluate_study_before.json"


def tiny_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((28, 28, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
            keras.layers.Rescaling(3.0),
        ],
        name="tiny",
    )


def _data(batch, images=IMAGES, labels=LABELS):
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)


def _assert_same_report(a, b, atol):
    """Counts (and every non-float) exactly, floats to `atol`."""

    def walk(x, y, path):
        if isinstance(x, dict):
            assert x.keys() == y.keys(), path
            for key in x:
                walk(x[key], y[key], f"{path}/{key}")
        elif isinstance(x, list):
            assert len(x) == len(y), path
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                walk(u, v, f"{path}[{i}]")
        elif isinstance(x, float):
            assert abs(x - y) <= atol, (path, x, y)
        else:
            assert x == y, (path, x, y)

    walk(a, b, "")


def test_study_suite_equals_the_eager_loops_numbers():
    """The numbers recorded from the eager, batch-by-batch runner before the pipeline (same data,
    same batches): counts and bins exactly, floats to 1e-6 (they were recorded on another CPU,
    whose float32 kernels round differently: up to 5e-7 apart here, bit-equal there)."""
    before = json.loads(REFERENCE.read_text())["results"]
    report = evaluation.evaluate(
        tiny_model(), _data(8), "study", from_logits=True, verbose=0, bootstrap=0
    )
    _assert_same_report(report.results, before, atol=1e-6)
    assert report.meta["image_size"] == 28 and report.meta["num_examples"] == 37
    assert all("ci95" not in row for row in report.results)


def test_batch_size_and_input_kind_do_not_change_results():
    """Corruption noise, consistency views and bootstrap weights are keyed per example: another
    batching (or a plain iterable of NumPy batches) gives the same report, up to the model's own
    float32 batch-size noise."""
    kwargs = dict(
        suite="imagenet-c,consistency",
        corruptions=["gaussian_noise", "contrast"],
        severities=(3,),
        from_logits=True,
        verbose=0,
        bootstrap=30,
        seed=4,
    )
    model = tiny_model()
    a = evaluation.evaluate(model, _data(8), **kwargs)
    numpy_batches = [(IMAGES[i : i + 5], LABELS[i : i + 5]) for i in range(0, 37, 5)]
    b = evaluation.evaluate(model, numpy_batches, **kwargs)
    _assert_same_report(a.results, b.results, atol=1e-6)
    _assert_same_report(a.consistency, b.consistency, atol=1e-6)
    assert a.results[1]["ci95"]["accuracy"][0] < a.results[1]["accuracy"]
    other_seed = evaluation.evaluate(model, _data(8), **{**kwargs, "seed": 5})
    noisy = [r["shift"] == "gaussian_noise" for r in a.results].index(True)
    assert other_seed.results[noisy]["nll"] != a.results[noisy]["nll"]
    assert other_seed.results[0]["ci95"] != a.results[0]["ci95"]


def test_consistency_sums_equal_the_reference_functions():
    """The streamed per-example consistency counts equal the NumPy definitions applied to all
    examples' predictions of the same views at once."""
    model = tiny_model()
    report = evaluation.evaluate(model, _data(8), "consistency", from_logits=True, verbose=0)
    views = consistency.views(IMAGES, np.arange(37), seed=0).numpy()
    assert views.shape == (37, consistency.NUM_VIEWS, 28, 28, 3)
    np.testing.assert_array_equal(views[:, 2], IMAGES)  # diagonal shift 0 is the image
    noise = views[:, 3 + consistency.TRANSLATION_STEPS :].astype(float) - IMAGES[:, None]
    assert abs(noise.std() - 255 * consistency.NOISE_SIGMA) < 1.0
    flat = views.reshape(-1, 28, 28, 3)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(model(flat.astype(np.float32))))
    probs = probs.reshape(37, consistency.NUM_VIEWS, -1).astype(np.float64)
    top = probs.argmax(-1)
    seq = probs[:, 2 : 3 + consistency.TRANSLATION_STEPS].transpose(1, 0, 2)
    frames = np.concatenate([top[:, 2:3], top[:, 3 + consistency.TRANSLATION_STEPS :]], 1)
    expected = {
        "shift_consistency": np.mean(top[:, 0] == top[:, 1]),
        **consistency.translation_sensitivity(seq),
        "flip_probability_noise": consistency.flip_probability(frames, "noise"),
    }
    for key, value in expected.items():
        assert report.consistency[key] == pytest.approx(value, abs=1e-6), key


def test_bad_bootstrap_and_images():
    with pytest.raises(ValueError, match="bootstrap must be"):
        evaluation.evaluate(tiny_model(), _data(8), bootstrap=-1, verbose=0)
    floats = tf.data.Dataset.from_tensor_slices((IMAGES.astype(np.float32), LABELS)).batch(8)
    with pytest.raises(ValueError, match="uint8"):
        evaluation.evaluate(tiny_model(), floats, verbose=0)
    with pytest.raises(ValueError, match="one-shot"):
        evaluation.evaluate(tiny_model(), iter([(IMAGES, LABELS)]), verbose=0)
