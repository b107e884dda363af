"""evaluation.metrics / consistency: hand-worked examples and a torch version of torchmetrics."""

import numpy as np
import pytest

from evaluation import consistency, metrics

torch = pytest.importorskip("torch")


def _two_class(conf, correct):
    """Probabilities whose top-label confidence is `conf`, label right where `correct`."""
    conf = np.asarray(conf, np.float64)
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.where(np.asarray(correct, bool), 0, 1)
    return probs, labels


def test_hand_worked_rms_and_ece():
    # bins (0.5,0.6]: conf .6, acc 1 ; (0.7,0.8]: conf .8 x2, acc .5 ; (0.9,1]: conf 1, acc 1
    probs, labels = _two_class([0.6, 0.8, 0.8, 1.0], [1, 0, 1, 1])
    assert metrics.rms_calibration_error(probs, labels) == pytest.approx(np.sqrt(0.085))
    assert metrics.expected_calibration_error(probs, labels) == pytest.approx(0.25)
    assert metrics.accuracy(probs, labels) == 0.75


def test_bin_edges_are_right_closed_with_float32_edges():
    # exactly 0.3 goes to (0.2, 0.3]; 1.0 to the last bin; 0 to the first
    assert metrics.bin_indices([0.3, 0.30001, 1.0, 0.0, 0.1, 0.05]).tolist() == [2, 3, 9, 0, 0, 0]


def _torchmetrics_0_11_rms(probs, labels, n_bins=10):
    """torchmetrics <= 0.11 CalibrationError(norm='l2'), written with torch ops."""
    p, y = torch.tensor(probs, dtype=torch.float32), torch.tensor(labels)
    conf, pred = p.max(dim=1)
    acc = (pred == y).float()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float32)
    idx = torch.bucketize(conf, edges) - 1
    idx = idx.clamp(min=0)
    count = torch.zeros(n_bins).scatter_add_(0, idx, torch.ones_like(conf))
    cs = torch.zeros(n_bins).scatter_add_(0, idx, conf)
    accs = torch.zeros(n_bins).scatter_add_(0, idx, acc)
    nz = count > 0
    gap = torch.zeros(n_bins)
    gap[nz] = cs[nz] / count[nz] - accs[nz] / count[nz]
    return float(torch.sqrt(torch.sum(gap**2 * count / count.sum())))


def test_rms_matches_torchmetrics_rule_with_edge_ties():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 5)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    # put many top confidences exactly on bin edges and at 1.0
    edge_rows = rng.choice(500, 120, replace=False)
    for k, r in enumerate(edge_rows):
        top = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0][k % 7]
        probs[r] = (1 - top) / 4
        probs[r, k % 5] = top
    labels = rng.integers(0, 5, 500)
    ours = metrics.rms_calibration_error(probs.astype(np.float32), labels)
    assert ours == pytest.approx(_torchmetrics_0_11_rms(probs.astype(np.float32), labels), abs=1e-6)


def test_adaptive_rms_counts_every_bin_and_remainder():
    rng = np.random.default_rng(1)
    conf = np.sort(rng.uniform(0.5, 1.0, 250))
    correct = rng.random(250) < conf
    probs, labels = _two_class(conf, correct)
    # bins [0,100) and [100,250): the remainder joins the last bin, which is counted
    gaps = [conf[:100].mean() - correct[:100].mean(), conf[100:].mean() - correct[100:].mean()]
    expected = np.sqrt(0.4 * gaps[0] ** 2 + 0.6 * gaps[1] ** 2)
    assert metrics.adaptive_rms_calibration_error(probs, labels) == pytest.approx(expected)


def test_adaptive_rms_small_n_is_one_bin():
    probs, labels = _two_class([0.9, 0.7, 0.6], [1, 1, 0])
    expected = abs(np.mean([0.9, 0.7, 0.6]) - 2 / 3)
    assert metrics.adaptive_rms_calibration_error(probs, labels) == pytest.approx(expected)


def test_nll_brier_single_class_and_errors():
    probs = np.array([[0.7, 0.2, 0.1]])
    assert metrics.negative_log_likelihood(probs, [0]) == pytest.approx(-np.log(0.7))
    assert metrics.brier_score(probs, [0]) == pytest.approx(0.14)
    one = np.ones((5, 1))
    labels = np.zeros(5, int)
    assert metrics.accuracy(one, labels) == 1.0
    assert metrics.rms_calibration_error(one, labels) == 0.0
    assert metrics.brier_score(one, labels) == 0.0
    with pytest.raises(ValueError, match="labels must lie"):
        metrics.accuracy(probs, [3])
    with pytest.raises(ValueError, match="N x C"):
        metrics.accuracy(np.ones(3), [0, 0, 0])


def test_streaming_equals_batch():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(4), size=333)
    labels = rng.integers(0, 4, 333)
    acc = metrics.StreamingMetrics()
    for start in range(0, 333, 50):
        acc.update(probs[start : start + 50], labels[start : start + 50])
    res = acc.result()
    assert res["accuracy"] == pytest.approx(metrics.accuracy(probs, labels))
    assert res["rms_calibration_error"] == pytest.approx(
        metrics.rms_calibration_error(probs, labels)
    )
    assert res["adaptive_rms_calibration_error"] == pytest.approx(
        metrics.adaptive_rms_calibration_error(probs, labels), abs=1e-6
    )
    assert res["nll"] == pytest.approx(metrics.negative_log_likelihood(probs, labels))
    assert res["brier"] == pytest.approx(metrics.brier_score(probs, labels))


def test_mce_against_alexnet():
    errs = {n: [e] * 5 for n, e in metrics.ALEXNET_ERRORS.items() if n != "saturate"}
    out = metrics.mean_corruption_error(errs, clean_error=0.435)
    assert out["mce"] == pytest.approx(1.0)
    assert out["relative_mce"] == pytest.approx(1.0)
    # hand-worked: half AlexNet's gaussian-noise error, clean error 0.2
    out = metrics.mean_corruption_error({"gaussian_noise": [0.4, 0.5, 0.3, 0.4, 0.4]}, 0.2)
    assert out["ce"]["gaussian_noise"] == pytest.approx(0.4 / 0.886428)
    assert out["relative_ce"]["gaussian_noise"] == pytest.approx(0.2 / (0.886428 - 0.435))


def test_flip_probability_and_translation_sensitivity():
    pred = np.array([[0, 0, 1, 1], [2, 2, 2, 2]])
    assert consistency.flip_probability(pred, "temporal") == pytest.approx((1 / 3 + 0) / 2)
    assert consistency.flip_probability(pred, "noise") == pytest.approx((2 / 3 + 0) / 2)
    seq = np.array([[[0.9, 0.1]], [[0.6, 0.4]], [[0.3, 0.7]]])  # T=3, N=1, C=2
    out = consistency.translation_sensitivity(seq)
    assert out["p_top1_change"] == pytest.approx(0.5)
    # |0.9-0.6| with k*=0, then |0.6-0.3| with k*=0
    assert out["mean_abs_change"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="flip mode"):
        consistency.flip_probability(pred, "video")


def test_shift_windows():
    img = np.arange(2 * 6 * 5 * 1, dtype=np.uint8).reshape(2, 6, 5, 1)
    out = consistency.shift_windows(img, [0, 1], [0, 2], 2).numpy()
    np.testing.assert_array_equal(out[0], img[0])
    np.testing.assert_array_equal(out[1, :5, :3], img[1, 1:, 2:])
    np.testing.assert_array_equal(out[1, 5, :3], img[1, 5, 2:])  # symmetric padding repeats edge
