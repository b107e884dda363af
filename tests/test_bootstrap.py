"""evaluation.bootstrap: Poisson weights keyed per example, replicate sums equal explicit
resamples, and the intervals' coverage on a simulated model whose truth is known."""

import numpy as np
import pytest

from evaluation import bootstrap, metrics


def _two_class(conf, correct):
    probs = np.stack([conf, 1 - conf], axis=1)
    return probs, np.where(correct, 0, 1)


def test_poisson_weights_keyed_per_example_and_poisson_1():
    one = bootstrap.poisson_weights(3, [9], 40).numpy()
    both = bootstrap.poisson_weights(3, [5, 9], 40).numpy()
    np.testing.assert_array_equal(both[1], one[0])
    assert not np.array_equal(both[0], both[1])
    assert not np.array_equal(bootstrap.poisson_weights(4, [9], 40).numpy(), one)
    w = bootstrap.poisson_weights(0, np.arange(5000), 200).numpy().astype(np.float64)
    assert w.mean() == pytest.approx(1.0, abs=0.01) and w.var() == pytest.approx(1.0, abs=0.02)
    freq = np.bincount(w.astype(int).ravel(), minlength=4)[:4] / w.size
    np.testing.assert_allclose(
        freq, [np.exp(-1), np.exp(-1), np.exp(-1) / 2, np.exp(-1) / 6], atol=2e-3
    )
    assert bootstrap.poisson_weights(0, [1, 2], 0).shape == (2, 0)


def test_replicates_equal_explicit_resamples_and_merge():
    """Replicate r's metrics equal the point metrics on the data set in which example n appears
    weights[n, r] times; two halves' states add up to the whole's."""
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, 120)
    probs, labels = _two_class(conf, rng.random(120) < conf)
    weights = bootstrap.poisson_weights(1, np.arange(120), 5).numpy()
    whole = metrics.StreamingMetrics(bootstrap=5)
    whole.update(probs, labels, np.arange(120), weights)
    stats = bootstrap.binned_errors(
        whole.bootstrap.count, whole.bootstrap.conf_sum, whole.bootstrap.correct_sum
    )
    for r in range(5):
        p, y = np.repeat(probs, weights[:, r], 0), np.repeat(labels, weights[:, r])
        assert stats["accuracy"][r] == pytest.approx(metrics.accuracy(p, y))
        assert stats["rms_calibration_error"][r] == pytest.approx(
            metrics.rms_calibration_error(p, y)
        )
        assert stats["expected_calibration_error"][r] == pytest.approx(
            metrics.expected_calibration_error(p, y)
        )
    halves = [metrics.StreamingMetrics(bootstrap=5) for _ in range(2)]
    order = rng.permutation(120)
    for half, part in zip(halves, np.array_split(order, 2), strict=True):
        half.update(probs[part], labels[part], part, weights[part])
    merged = metrics.StreamingMetrics(bootstrap=5)
    a, b = (h.state(120) for h in halves)
    merged.load_state({k: a[k] + b[k] for k in a})
    expected, got = whole.result(), merged.result()
    for name, interval in expected["ci95"].items():
        assert got["ci95"][name] == pytest.approx(interval, abs=1e-12)
    assert got["adaptive_rms_calibration_error"] == expected["adaptive_rms_calibration_error"]
    assert got["reliability"]["count"] == expected["reliability"]["count"]


TRUE_GAP = 0.1  # the simulated model is over-confident by 0.1 at every confidence


def test_coverage_on_a_simulated_model():
    """Confidence ~ U(0.5, 1), correct ~ Bernoulli(confidence - 0.1): true accuracy 0.65, and in
    every equal-width bin the gap is exactly 0.1, so the true RMS and expected calibration errors
    are 0.1. Over 200 simulated test sets of 1000 examples, about 95% of the intervals should
    cover the truth (measured: see COVERAGE in the report)."""
    sets, n, reps = 200, 1000, 200
    truth = {
        "accuracy": 0.65,
        "rms_calibration_error": TRUE_GAP,
        "expected_calibration_error": TRUE_GAP,
    }
    rng = np.random.default_rng(7)
    # every test set is evaluated as a user would, with indices 0..n-1 and the same seed
    weights = bootstrap.poisson_weights(0, np.arange(n), reps).numpy()
    covered = dict.fromkeys(truth, 0)
    for _ in range(sets):
        conf = rng.uniform(0.5, 1.0, n)
        probs, labels = _two_class(conf, rng.random(n) < conf - TRUE_GAP)
        acc = metrics.StreamingMetrics(bootstrap=reps)
        acc.update(probs, labels, np.arange(n), weights)
        ci = acc.result()["ci95"]
        for name, value in truth.items():
            covered[name] += ci[name][0] <= value <= ci[name][1]
    coverage = {name: c / sets for name, c in covered.items()}
    print("COVERAGE", coverage)
    for name, c in coverage.items():
        assert 0.88 <= c <= 0.99, (name, coverage)
