"""Accuracy, calibration and corruption-robustness metrics on probabilities.

Bin rules (documented because implementations disagree exactly on them):

- `rms_calibration_error` / `expected_calibration_error`: top-label confidence, `num_bins`
  equal-width bins with float32 edges linspace(0, 1, B+1), closed on the right, (a, b], and a
  confidence of 0 in the first bin. This is torchmetrics <= 0.11 `CalibrationError(norm="l2" /
  "l1")`, the reference study's metric: a confidence exactly on an edge goes to the lower bin, 1.0
  to the last bin.
- `adaptive_rms_calibration_error`: Hendrycks' `calib_err`: examples sorted by confidence (stable
  sort), consecutive bins of `bin_size`, the remainder joins the last bin; unlike the original every
  bin counts (it drops its last one) and N < bin_size gives one bin.
- bin weights are n_b / N; RMS = sqrt(sum_b w_b (mean confidence_b - accuracy_b)^2).
"""

from __future__ import annotations

import numpy as np

from evaluation.bootstrap import BootstrapSums

ALEXNET_CLEAN_ERROR = 0.435
# AlexNet's mean error over severities 1-5 (Hendrycks & Dietterich 2019, appendix; keyed by name).
# The 15 common corruptions to 6 digits (augmix / mmcls); the 4 extra to 3 digits (paper only).
ALEXNET_ERRORS = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
    "speckle_noise": 0.845,
    "gaussian_blur": 0.787,
    "spatter": 0.718,
    "saturate": 0.658,
}
ALEXNET_BASELINE = {"clean": ALEXNET_CLEAN_ERROR, "corruptions": ALEXNET_ERRORS}
EPS = 1e-12


def _check(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if probs.ndim != 2:
        raise ValueError(f"probs must be N x C, got shape {probs.shape}")
    if probs.shape[0] != labels.shape[0]:
        raise ValueError(f"{probs.shape[0]} probability rows but {labels.shape[0]} labels")
    if probs.shape[0] == 0:
        raise ValueError("no examples")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in [0, {probs.shape[1] - 1}]")
    return probs, labels


def confidence_and_correct(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence (float64) and whether the top label is right (first argmax on ties)."""
    probs, labels = _check(probs, labels)
    return probs.max(axis=1), probs.argmax(axis=1) == labels


def bin_indices(confidence, num_bins: int = 10) -> np.ndarray:
    """Equal-width (a, b] bin of each confidence, float32 edges, 0 in the first bin."""
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    edges = np.linspace(0, 1, num_bins + 1, dtype=np.float32)
    conf = np.asarray(confidence, dtype=np.float32)
    return np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, num_bins - 1)


def _binned_error(count, conf_sum, correct_sum, norm: str) -> float:
    count = np.asarray(count, np.float64)
    nonzero = count > 0
    gap = np.zeros_like(count)
    gap[nonzero] = (conf_sum[nonzero] - correct_sum[nonzero]) / count[nonzero]
    weight = count / count.sum()
    if norm == "l2":
        return float(np.sqrt(np.sum(weight * gap**2)))
    return float(np.sum(weight * np.abs(gap)))


def _bin_sums(probs, labels, num_bins):
    conf, correct = confidence_and_correct(probs, labels)
    idx = bin_indices(conf, num_bins)
    count = np.bincount(idx, minlength=num_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=num_bins)
    correct_sum = np.bincount(idx, weights=correct.astype(np.float64), minlength=num_bins)
    return count, conf_sum, correct_sum


def accuracy(probs, labels) -> float:
    """Fraction of examples whose argmax is the label."""
    return float(confidence_and_correct(probs, labels)[1].mean())


def rms_calibration_error(probs, labels, num_bins: int = 10) -> float:
    """Equal-width RMS calibration error (torchmetrics CalibrationError(norm="l2"); module doc)."""
    return _binned_error(*_bin_sums(probs, labels, num_bins), norm="l2")


def expected_calibration_error(probs, labels, num_bins: int = 10) -> float:
    """Equal-width ECE (L1), same bins as `rms_calibration_error`."""
    return _binned_error(*_bin_sums(probs, labels, num_bins), norm="l1")


def adaptive_rms_from_confidence(confidence, correct, bin_size: int = 100) -> float:
    """Sorted-bin RMS calibration error from confidences and correctness (see module doc)."""
    if bin_size < 1:
        raise ValueError(f"bin_size must be >= 1, got {bin_size}")
    conf = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, np.float64)
    n = len(conf)
    if n == 0:
        raise ValueError("no examples")
    order = np.argsort(conf, kind="stable")
    conf, correct = conf[order], correct[order]
    num_bins = max(n // bin_size, 1)
    starts = np.arange(num_bins) * bin_size
    count = np.diff(np.append(starts, n))
    conf_sum = np.add.reduceat(conf, starts)
    correct_sum = np.add.reduceat(correct, starts)
    return _binned_error(count, conf_sum, correct_sum, norm="l2")


def adaptive_rms_calibration_error(probs, labels, bin_size: int = 100) -> float:
    """Hendrycks' sorted-bins RMS calibration error with every bin counted (see module doc)."""
    return adaptive_rms_from_confidence(*confidence_and_correct(probs, labels), bin_size=bin_size)


def negative_log_likelihood(probs, labels) -> float:
    """Mean -log p(label), probabilities clipped below at 1e-12."""
    probs, labels = _check(probs, labels)
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], EPS))))


def brier_score(probs, labels) -> float:
    """Multiclass Brier score: mean over examples of sum_c (p_c - 1[c = label])^2 (range 0..2)."""
    probs, labels = _check(probs, labels)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


class StreamingMetrics:
    """All the metrics above from per-bin sums, updated batch by batch (never holds N x C).

    The adaptive RMS needs a sort, so it keeps one float32 confidence and one bool per example,
    with the example's index (its position in the data set) so that shards seen out of order, or
    by other workers, sort exactly as one pass in order would. With `bootstrap` > 0 it also keeps
    per-replicate weighted bin sums (`evaluation.bootstrap`) and reports their 95% intervals.
    """

    def __init__(self, num_bins: int = 10, bin_size: int = 100, bootstrap: int = 0):
        self.num_bins, self.bin_size = num_bins, bin_size
        self.count = np.zeros(num_bins, np.int64)
        self.conf_sum = np.zeros(num_bins)
        self.correct_sum = np.zeros(num_bins)
        self.nll_sum = 0.0
        self.brier_sum = 0.0
        self.bootstrap = BootstrapSums(bootstrap, num_bins) if bootstrap else None
        self._conf: list[np.ndarray] = []
        self._correct: list[np.ndarray] = []
        self._index: list[np.ndarray] = []

    @property
    def n(self) -> int:
        return int(self.count.sum())

    def update(self, probs, labels, indices=None, weights=None) -> None:
        """Adds a batch of N x C probabilities and N integer labels.

        Args:
            indices: the examples' positions in the data set (default: in order after the
                examples added so far).
            weights: uint8 [N, R] Poisson bootstrap weights (`bootstrap.poisson_weights`);
                required when the accumulator bootstraps.
        """
        probs, labels = _check(probs, labels)
        n = len(labels)
        conf, correct = confidence_and_correct(probs, labels)
        idx = bin_indices(conf, self.num_bins)
        self.count += np.bincount(idx, minlength=self.num_bins)
        self.conf_sum += np.bincount(idx, weights=conf, minlength=self.num_bins)
        self.correct_sum += np.bincount(
            idx, weights=correct.astype(np.float64), minlength=self.num_bins
        )
        self.nll_sum += negative_log_likelihood(probs, labels) * n
        self.brier_sum += brier_score(probs, labels) * n
        if self.bootstrap is not None:
            if weights is None:
                raise ValueError("this accumulator bootstraps: pass the examples' weights")
            self.bootstrap.update(idx, conf, correct, weights)
        start = sum(len(i) for i in self._index)
        self._index.append(np.arange(start, start + n) if indices is None else np.asarray(indices))
        self._conf.append(conf.astype(np.float32))
        self._correct.append(correct)

    def state(self, num_examples: int) -> dict[str, np.ndarray]:
        """Sums, and the per-example values laid out by example index (length `num_examples`):
        the element-wise sum of the states of disjoint shards is the whole data set's state."""
        conf = np.zeros(num_examples, np.float32)
        correct = np.zeros(num_examples, np.float32)
        index = np.concatenate(self._index) if self._index else np.zeros(0, np.int64)
        if len(index):
            conf[index] = np.concatenate(self._conf)
            correct[index] = np.concatenate(self._correct)
        state = {
            "count": self.count.astype(np.float64),
            "conf_sum": self.conf_sum,
            "correct_sum": self.correct_sum,
            "nll_brier": np.array([self.nll_sum, self.brier_sum]),
            "conf": conf,
            "correct": correct,
        }
        if self.bootstrap is not None:
            state |= {f"bootstrap_{k}": v for k, v in self.bootstrap.state().items()}
        return state

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Replaces the accumulator's contents by a (summed) `state`."""
        self.count = np.rint(state["count"]).astype(np.int64)
        self.conf_sum = np.asarray(state["conf_sum"], np.float64)
        self.correct_sum = np.asarray(state["correct_sum"], np.float64)
        self.nll_sum, self.brier_sum = (float(v) for v in state["nll_brier"])
        self._conf = [np.asarray(state["conf"], np.float32)]
        self._correct = [np.asarray(state["correct"]) > 0.5]
        self._index = [np.arange(len(self._conf[0]))]
        if self.bootstrap is not None:
            self.bootstrap.load_state(
                {k[len("bootstrap_") :]: v for k, v in state.items() if k.startswith("bootstrap_")}
            )

    def result(self) -> dict:
        """Metric name -> value, plus the reliability bins (count, mean confidence, accuracy) and,
        when bootstrapping, "ci95": {metric: [lo, hi]} for `bootstrap.CI_METRICS`."""
        if self.n == 0:
            raise ValueError("no examples were added")
        safe = np.maximum(self.count, 1)
        order = np.argsort(np.concatenate(self._index), kind="stable")
        out = {
            "n": self.n,
            "accuracy": float(self.correct_sum.sum() / self.n),
            "error": float(1 - self.correct_sum.sum() / self.n),
            "rms_calibration_error": _binned_error(
                self.count, self.conf_sum, self.correct_sum, "l2"
            ),
            "adaptive_rms_calibration_error": adaptive_rms_from_confidence(
                np.concatenate(self._conf)[order],
                np.concatenate(self._correct)[order],
                self.bin_size,
            ),
            "expected_calibration_error": _binned_error(
                self.count, self.conf_sum, self.correct_sum, "l1"
            ),
            "nll": self.nll_sum / self.n,
            "brier": self.brier_sum / self.n,
            "reliability": {
                "count": self.count.tolist(),
                "confidence": (self.conf_sum / safe).tolist(),
                "accuracy": (self.correct_sum / safe).tolist(),
            },
        }
        if self.bootstrap is not None:
            out["ci95"] = self.bootstrap.intervals()
        return out


def corruption_error(errors, baseline_error: float) -> float:
    """CE = sum_s E_s / sum_s E^base_s = mean_s E_s / baseline's mean error."""
    return float(np.mean(errors) / baseline_error)


def relative_corruption_error(
    errors, clean_error: float, baseline_error: float, baseline_clean: float
) -> float:
    """Relative CE = sum_s (E_s - E_clean) / sum_s (E^base_s - E^base_clean); NaN if the baseline
    lost nothing to the corruption."""
    gap = baseline_error - baseline_clean
    return float((np.mean(errors) - clean_error) / gap) if gap != 0 else float("nan")


def mean_corruption_error(
    errors: dict[str, list[float]], clean_error: float, baseline: dict | None = None
) -> dict:
    """CE and relative CE per corruption, and their means (mCE, relative mCE).

    Args:
        errors: corruption name -> errors at each severity.
        clean_error: the model's clean error.
        baseline: {"clean": error, "corruptions": {name: mean error over severities}};
            AlexNet's published errors by default.

    Returns:
        {"ce": {name: CE}, "relative_ce": {...}, "mce": mean CE, "relative_mce": ...,
        "names": [...]} over the corruptions present in both `errors` and the baseline.
    """
    baseline = ALEXNET_BASELINE if baseline is None else baseline
    names = [name for name in errors if name in baseline["corruptions"]]
    if not names:
        raise ValueError("no corruption in `errors` has a baseline error")
    ce = {n: corruption_error(errors[n], baseline["corruptions"][n]) for n in names}
    rel = {
        n: relative_corruption_error(
            errors[n], clean_error, baseline["corruptions"][n], baseline["clean"]
        )
        for n in names
    }
    return {
        "ce": ce,
        "relative_ce": rel,
        "mce": float(np.mean(list(ce.values()))),
        "relative_mce": float(np.mean(list(rel.values()))),
        "names": names,
    }
