"""The custom loop's step, its objectives (cross-entropy, AugMix JSD, stability training) and the
replica input pipeline, against direct formulas on tiny models."""

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special

import augment
from recipes import pipeline
from recipes.loop import TrainingLoop
from recipes.objectives import Objective, Stability, noisy_copy, parse_stability
from recipes.progress import Progress


def _dense_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    return keras.Model(inputs, keras.layers.Dense(4, name="fc")(inputs))


def _batch(n: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    noisy = x + rng.normal(scale=0.3, size=(n, 6)).astype("float32")
    y = np.eye(4, dtype="float32")[rng.integers(0, 4, n)]
    return x, noisy, y


def _direct_loss(kernel, bias, x, noisy, y, alpha):
    """CE(clean) + alpha * mean KL(softmax(clean) || softmax(noisy)), float64 NumPy."""
    clean_logits, noisy_logits = x @ kernel + bias, noisy @ kernel + bias
    log_p = special.log_softmax(clean_logits, axis=1)
    log_q = special.log_softmax(noisy_logits, axis=1)
    ce = -np.sum(y * log_p, axis=1).mean()
    kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=1).mean()
    return ce + alpha * kl


def test_stability_step_minimises_cross_entropy_plus_alpha_kl():
    model = _dense_model()
    kernel, bias = (np.asarray(v, np.float64) for v in model.get_layer("fc").weights)
    x, noisy, y = _batch()
    alpha, lr = 0.5, 0.1
    optimizer = keras.optimizers.SGD(lr)
    model.compile(optimizer=optimizer)
    loop = TrainingLoop(
        tf.distribute.get_strategy(), model, optimizer, Objective(False, Stability(0.04, alpha)), 8
    )
    data = tf.data.Dataset.from_tensors(((x, noisy), y)).repeat()
    loss_sum, correct, count = loop.train_on(iter(data)).numpy()
    expected = _direct_loss(kernel, bias, x, noisy, y, alpha)
    assert count == 8
    assert loss_sum / count == pytest.approx(expected, rel=1e-5)
    assert correct == np.sum((x @ kernel + bias).argmax(1) == y.argmax(1))
    # SGD moved the weights by -lr * gradient of that loss (both branches carry gradient).
    gradient = np.zeros_like(kernel)
    step = 1e-4
    for index in np.ndindex(kernel.shape):
        shifted = kernel.copy()
        shifted[index] += step
        up = _direct_loss(shifted, bias, x, noisy, y, alpha)
        shifted[index] -= 2 * step
        down = _direct_loss(shifted, bias, x, noisy, y, alpha)
        gradient[index] = (up - down) / (2 * step)
    moved = np.asarray(model.get_layer("fc").kernel, np.float64)
    np.testing.assert_allclose(moved, kernel - lr * gradient, atol=2e-6)
    clean_only = Objective(False, None)(model, x, y)[0]
    assert float(Objective(False, Stability(0.04, alpha))(model, (x, noisy), y)[0]) > float(
        clean_only
    )


def test_jensen_shannon_objective_splits_the_replica_triplet_batch():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 4, 5)).astype("float32")
    labels = np.eye(5, dtype="float32")[[0, 1, 2, 3]]
    model = keras.Sequential([keras.Input((5,)), keras.layers.Identity()])
    loss, clean = Objective(True, None)(model, logits.reshape(12, 5), labels)
    direct = augment.jensen_shannon_loss(labels, logits[0], logits[1], logits[2])
    assert float(loss) == pytest.approx(float(direct), rel=1e-6)
    np.testing.assert_array_equal(np.asarray(clean), logits[0])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("gaussian:0.04", Stability(0.04, 0.01)), ("gaussian:0.1:0.5", Stability(0.1, 0.5))],
)
def test_stability_spec_parses(spec, expected):
    assert parse_stability(spec) == expected
    assert parse_stability(None) is None


@pytest.mark.parametrize(
    "spec", ["gauss:0.04", "gaussian", "gaussian:x", "gaussian:-0.1", "gaussian:0.1:0:1"]
)
def test_bad_stability_spec_is_one_line_with_the_allowed_form(spec):
    with pytest.raises(ValueError, match=r"allowed: gaussian:SIGMA\[:ALPHA\]") as error:
        parse_stability(spec)
    assert "\n" not in str(error.value) and repr(spec) in str(error.value)


def test_noise_is_keyed_to_each_example_not_to_the_batch():
    images = np.random.default_rng(2).uniform(50, 200, (6, 8, 8, 3)).astype("float32")
    indices = tf.range(100, 106, dtype=tf.int64)
    whole = noisy_copy(images, indices, 0.04, seed=3).numpy()
    halves = [noisy_copy(images[i : i + 3], indices[i : i + 3], 0.04, 3).numpy() for i in (0, 3)]
    np.testing.assert_array_equal(whole, np.concatenate(halves))
    assert np.std(whole - images) == pytest.approx(255 * 0.04, rel=0.1)
    assert not np.array_equal(whole[0] - images[0], whole[1] - images[1])


def _replica_rows(global_batches, replicas, pipelines, global_batch=8):
    """Every replica's rows, per pipeline (worker), as the engine's input function yields them."""
    out = []
    for worker in range(pipelines):
        context = tf.distribute.InputContext(pipelines, worker, replicas)
        data = pipeline.replica_dataset(
            global_batches, context, global_batch, lambda first, x, y: (first, x, y)
        )
        out.append(list(data.as_numpy_iterator()))
    return out


def test_each_replica_gets_its_rows_of_every_global_batch():
    rows = tf.range(20, dtype=tf.int64)
    batches = tf.data.Dataset.from_tensor_slices((rows, rows)).batch(8).enumerate()
    # 4 replicas on 2 workers; the last batch (4 rows) leaves one row per replica.
    per_worker = _replica_rows(batches, replicas=4, pipelines=2)
    assert [len(w) for w in per_worker] == [6, 6]
    for batch in range(3):
        pieces = [per_worker[r // 2][batch * 2 + r % 2] for r in range(4)]
        gathered = np.concatenate([images for _, images, _ in pieces])
        np.testing.assert_array_equal(gathered, np.arange(batch * 8, min(batch * 8 + 8, 20)))
        for first, images, labels in pieces:
            np.testing.assert_array_equal(images, labels)
            assert first == images[0]  # the global index of the replica's first row


def test_augmix_triplets_stay_whole_on_every_replica():
    clean = tf.range(8, dtype=tf.int64)
    batches = tf.data.Dataset.from_tensors(((clean, clean + 100, clean + 200), clean)).enumerate()
    per_worker = _replica_rows(batches, replicas=4, pipelines=1)[0]
    for replica, (_, (c, a1, a2), labels) in enumerate(per_worker):
        np.testing.assert_array_equal(c, [2 * replica, 2 * replica + 1])
        np.testing.assert_array_equal(a1, c + 100)
        np.testing.assert_array_equal(a2, c + 200)
        np.testing.assert_array_equal(labels, c)


def test_redirected_progress_is_one_plain_line_per_epoch():
    stream = io.StringIO()
    progress = Progress(epochs=3, steps=5, stream=stream)
    assert not progress.live
    progress.start_epoch(1)
    for step in range(5):
        progress.step(step + 1, {"accuracy": 0.5, "loss": 1.0})
    progress.end_epoch(1, {"accuracy": 0.5, "loss": 1.0, "val_accuracy": 0.25, "val_loss": 2e-4})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "\x1b" not in stream.getvalue()
    assert lines[0].startswith("Epoch 2/3 - 5 steps - ")
    assert lines[0].endswith("accuracy: 0.5000 - loss: 1.0000 - val_accuracy: 0.2500 - "
                             "val_loss: 2.0000e-04")  # fmt: skip
