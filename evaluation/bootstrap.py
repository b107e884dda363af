"""Streaming Poisson bootstrap of accuracy and the binned calibration errors.

Each example gets one Poisson(1) weight per replicate (Hanley & MacGibbon 2006; Chamandy et al.
2012: the multinomial resample of a large data set, but drawable one example at a time, so the
replicates stream, merge across batches and workers by summation, and need no second pass). The
weights come from counter-based random numbers keyed by (seed, global example index, replicate):
example i has the same R weights whatever the batch size, shard or worker that sees it. Each
replicate keeps weighted per-bin sums (count, confidence, correctness); a replicate's metric uses
the same bin rule as the point estimate. Intervals are the 2.5 / 97.5 percentiles over replicates.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from augment import counter_random

CI_METRICS = ("accuracy", "rms_calibration_error", "expected_calibration_error")
# the bootstrap's random stream, distinct from the corruptions' and the consistency suite's
STREAM = 7
# P(Poisson(1) <= k) for k = 0..11, rounded up to the float32 multiples of 2**-24
POISSON_CDF_GRID = (
    np.ceil(np.cumsum([math.exp(-1) / math.factorial(k) for k in range(12)]) * 2**24) / 2**24
).astype(np.float32)


def poisson_weights(seed: int, indices: tf.Tensor, replicates: int) -> tf.Tensor:
    """Poisson(1) bootstrap weights, one row per example, by inverting the CDF of counter-based
    uniforms (`augment.counter_random`: one vectorised pass, where TF's stateless Poisson takes
    one call per example).

    Args:
        seed: the evaluation's seed.
        indices: int64 [N] global example indices (below 2**32).
        replicates: R.

    Returns:
        uint8 [N, R]; entry (n, r) depends only on (seed, indices[n], r).
    """
    indices = tf.cast(indices, tf.int64)
    if replicates == 0:
        return tf.zeros([tf.size(indices), 0], tf.uint8)
    u = counter_random.uniform(counter_random.stream_key(seed, STREAM), indices, replicates)
    # k = number of CDF values <= u (u is a multiple of 2**-24, so comparing it with the CDF
    # rounded up to that grid is exact); 24 bits never reach P(k > 11) ~ 1e-9
    k = tf.searchsorted(tf.constant(POISSON_CDF_GRID)[None], tf.reshape(u, [1, -1]), side="right")
    return tf.reshape(tf.cast(k, tf.uint8), tf.shape(u))


def binned_errors(count, conf_sum, correct_sum) -> dict[str, np.ndarray]:
    """Accuracy, RMS and expected calibration error of [..., bins] sums (vectorised over '...').

    Same rule as `metrics._binned_error`: bin weight n_b / N, gap = (conf_b - correct_b) / n_b.
    """
    count = np.asarray(count, np.float64)
    total = count.sum(-1)
    safe = np.where(count > 0, count, 1.0)
    gap = np.where(count > 0, (conf_sum - correct_sum) / safe, 0.0)
    weight = count / total[..., None]
    return {
        "accuracy": correct_sum.sum(-1) / total,
        "rms_calibration_error": np.sqrt(np.sum(weight * gap**2, -1)),
        "expected_calibration_error": np.sum(weight * np.abs(gap), -1),
    }


class BootstrapSums:
    """Per-replicate weighted bin sums [R, bins]: add batches, add other shards, read intervals."""

    def __init__(self, replicates: int, num_bins: int):
        self.replicates, self.num_bins = replicates, num_bins
        self.count = np.zeros((replicates, num_bins))
        self.conf_sum = np.zeros((replicates, num_bins))
        self.correct_sum = np.zeros((replicates, num_bins))

    def update(self, bins, confidence, correct, weights) -> None:
        """Adds a batch: bin index, confidence and correctness [N], Poisson weights [N, R]."""
        onehot = np.zeros((len(bins), self.num_bins))
        onehot[np.arange(len(bins)), bins] = 1.0
        w = np.asarray(weights, np.float64).T  # [R, N]
        self.count += w @ onehot
        self.conf_sum += w @ (onehot * np.asarray(confidence, np.float64)[:, None])
        self.correct_sum += w @ (onehot * np.asarray(correct, np.float64)[:, None])

    def state(self) -> dict[str, np.ndarray]:
        """The sums; summing the states of disjoint shards gives the whole data set's."""
        return {"count": self.count, "conf_sum": self.conf_sum, "correct_sum": self.correct_sum}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.count, self.conf_sum, self.correct_sum = (
            np.asarray(state[k], np.float64).reshape(self.replicates, self.num_bins)
            for k in ("count", "conf_sum", "correct_sum")
        )

    def intervals(self, level: float = 0.95) -> dict[str, list[float]]:
        """Percentile interval of each metric in `CI_METRICS` over the replicates."""
        alive = self.count.sum(-1) > 0  # a replicate that drew weight 0 for every example
        stats = binned_errors(self.count[alive], self.conf_sum[alive], self.correct_sum[alive])
        tail = 100 * (1 - level) / 2
        return {
            name: [float(v) for v in np.percentile(stats[name], [tail, 100 - tail])]
            for name in CI_METRICS
        }
