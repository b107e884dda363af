"""Threefry-2x32 against Random123's known-answer vectors, and the per-element uniform stream."""

import numpy as np
import tensorflow as tf

from augment import counter_random

# Random123 kat_vectors (threefry2x32_20), also what jax.random's threefry_2x32 returns.
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


def test_threefry_matches_known_answers():
    for key, counter, expected in KNOWN_ANSWERS:
        bits = counter_random.threefry2x32(
            tf.constant(key, tf.uint32), tf.constant([counter], tf.uint32)
        )
        assert tuple(int(b) for b in bits.numpy()[0]) == expected


def test_uniform_rows_depend_only_on_key_and_index():
    key = counter_random.stream_key(3, 0)
    whole = counter_random.uniform(key, tf.range(10, dtype=tf.int64), 5).numpy()
    part = counter_random.uniform(key, tf.constant([7, 2], tf.int64), 5).numpy()
    np.testing.assert_array_equal(part, whole[[7, 2]])
    other = counter_random.uniform(counter_random.stream_key(3, 1), tf.range(10), 5).numpy()
    assert not np.any(other == whole)
    assert whole.dtype == np.float32 and whole.min() >= 0 and whole.max() < 1


def test_uniform_is_uniform_and_uncorrelated():
    u = counter_random.uniform(counter_random.stream_key(0, 0), tf.range(20000), 4).numpy()
    # Mean 1/2 and variance 1/12 within 5 standard errors; neighbouring numbers uncorrelated.
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)
    assert abs(u.var() - 1 / 12) < 0.002
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.03
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.03
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - u.size / 10) < 5 * np.sqrt(u.size / 10))
