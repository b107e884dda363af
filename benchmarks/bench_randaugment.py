"""Throughput of RandAugment(2 ops, magnitude 9) on 224x224 uint8 images, batch 64, in one run.

Compares this package's ``randaugment`` stage (ops and magnitudes per image, batch-wide XLA
kernels, through ``Policy.apply``), Keras' ``RandAugment`` layer (mapped over batches, the
protocol of the reference note, ``factor=0.5``) and imgaug ``SomeOf(2, [14 RandAugment-like ops])``
through ``tf.numpy_function`` on batches. After a warm-up, the pipelines take turns in rounds and
the median round counts. Writes a table (stdout + JSON) and a bar chart.

    python benchmarks/bench_randaugment.py --out runs/bench_randaugment
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import imgaug.augmenters as iaa
import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from augment import policy_from_dict
from augment.sample_images import sample_images

BATCH = 64
SIZE = 224
SETTLE = 4  # untimed batches per turn: tracing, filling the pipeline


def source_dataset() -> tf.data.Dataset:
    """Repeating (image, label) elements: the built-in samples with noise, 224x224 uint8."""
    base = tf.image.resize(sample_images(4, SIZE), [SIZE, SIZE]).numpy()
    rng = np.random.default_rng(0)
    images = np.clip(
        base[rng.integers(0, 4, 256)] + rng.normal(0, 12, (256, SIZE, SIZE, 3)), 0, 255
    )
    data = (images.astype(np.uint8), np.zeros(256, np.int64))
    return tf.data.Dataset.from_tensor_slices(data).cache().repeat()


def ours() -> tf.data.Dataset:
    policy = policy_from_dict({"image": [{"randaugment": {"num_ops": 2, "magnitude": 9}}]})
    return policy.apply(source_dataset(), BATCH)


def keras_layer() -> tf.data.Dataset:
    layer = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.5, seed=1)
    return (
        source_dataset()
        .batch(BATCH)
        .map(lambda x, y: (layer(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    )


def imgaug_someof() -> tf.data.Dataset:
    magnitude = 0.9
    augmenter = iaa.SomeOf(
        2,
        [
            iaa.Identity(),
            iaa.pillike.Autocontrast(cutoff=0),
            iaa.pillike.Equalize(),
            iaa.Invert(1.0),
            iaa.Rotate((-30 * magnitude, 30 * magnitude), cval=128),
            iaa.pillike.Posterize(int(4 * magnitude)),
            iaa.Solarize(1.0, threshold=int(256 * magnitude)),
            iaa.pillike.EnhanceColor((0.1, 0.1 + 1.8 * magnitude)),
            iaa.pillike.EnhanceContrast((0.1, 0.1 + 1.8 * magnitude)),
            iaa.pillike.EnhanceBrightness((0.1, 0.1 + 1.8 * magnitude)),
            iaa.pillike.EnhanceSharpness((0.1, 0.1 + 1.8 * magnitude)),
            iaa.ShearX((-15, 15), cval=128),
            iaa.ShearY((-15, 15), cval=128),
            iaa.TranslateX(px=(-90, 90), cval=128),
        ],
    )
    augmenter.seed_(1)

    def run(images):
        return augmenter(images=images)

    def mapped(x, y):
        out = tf.numpy_function(run, [x], tf.uint8)
        out.set_shape(x.shape)
        return out, y

    return source_dataset().batch(BATCH).map(mapped, num_parallel_calls=tf.data.AUTOTUNE)


OURS, KERAS, IMGAUG = (
    "augment.randaugment (ours)",
    "keras.layers.RandAugment",
    "imgaug SomeOf(2, 14 ops)",
)
PIPELINES = {OURS: ours, KERAS: keras_layer, IMGAUG: imgaug_someof}
FAST = [OURS, IMGAUG]


def time_batches(iterator, batches: int) -> float:
    """Images per second over the next ``batches`` batches of ``iterator``."""
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * BATCH / (time.perf_counter() - start)


def measure(names: list[str], batches: int, rounds: int, warmup: int) -> tuple[dict, dict]:
    """Throughput of the pipelines ``names``, in interleaved rounds (this machine's speed drifts).

    Each pipeline first runs ``warmup`` batches once (XLA compiles our kernels for the row counts
    it meets there; the compiled kernels are kept for the rest of the process). Then, ``rounds``
    times, each pipeline in turn is built afresh, runs `SETTLE` untimed batches and ``batches``
    timed ones, and is deleted: a live pipeline keeps computing in the background of the others.

    Returns:
        ``(images per second per pipeline and round, warm-up seconds per pipeline)``.
    """
    warmup_seconds = {}
    for name in names:
        iterator = iter(PIPELINES[name]().prefetch(2))
        start = time.perf_counter()
        for _ in tqdm(range(warmup), desc=f"warm-up {name}", leave=False):
            next(iterator)
        warmup_seconds[name] = time.perf_counter() - start
        del iterator
    rates = {name: [] for name in names}
    for _ in tqdm(range(rounds), desc="rounds", leave=False):
        for name in names:
            iterator = iter(PIPELINES[name]().prefetch(2))
            time_batches(iterator, SETTLE)
            rates[name].append(time_batches(iterator, batches))
            del iterator
    return rates, warmup_seconds


def write_atomic(path: Path, write) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    os.close(handle)
    write(tmp)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench_randaugment")
    parser.add_argument("--batches", type=int, default=30, help="timed batches per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=200, help="untimed batches first")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Keras' layer alone, after the others: two orders slower, its pipeline would keep computing
    # in the background of the others' turns.
    rates, warmup_seconds = measure(FAST, args.batches, args.rounds, args.warmup)
    slow_rates, slow_warmup = measure([KERAS], max(2, args.batches // 5), 1, 2)
    rates.update(slow_rates)
    warmup_seconds.update(slow_warmup)
    results = {name: float(np.median(r)) for name, r in rates.items()}
    for name, r in rates.items():
        print(
            f"{name:32s} {results[name]:7.0f} img/s (median; rounds {min(r):.0f}-{max(r):.0f}),"
            f" warm-up {warmup_seconds[name]:.1f} s",
            flush=True,
        )
    ratios = {
        "vs_keras": results[OURS] / results[KERAS],
        "vs_imgaug": results[OURS] / results[IMGAUG],
    }
    print(f"ours / keras = {ratios['vs_keras']:.1f}x, ours / imgaug = {ratios['vs_imgaug']:.2f}x")
    report = {
        "images_per_second": results,
        "images_per_second_per_round": rates,
        "warmup_seconds": warmup_seconds,
        "ratios": ratios,
        "batch": BATCH,
        "size": SIZE,
        "cpu_count": os.cpu_count(),
        "batches": args.batches,
        "rounds": args.rounds,
        "warmup_batches": args.warmup,
    }
    write_atomic(
        out / "bench_randaugment.json", lambda p: Path(p).write_text(json.dumps(report, indent=2))
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.0))
    names = list(PIPELINES)
    axis.barh(names, [results[n] for n in names], color=["tab:green", "tab:gray", "tab:blue"])
    for i, n in enumerate(names):
        axis.text(results[n], i, f" {results[n]:.0f}", va="center")
    axis.set_xlabel("images / s, median round\n(224x224 uint8, batch 64, RandAugment N=2 M=9)")
    axis.set_xlim(0, max(results.values()) * 1.25)
    figure.tight_layout()
    write_atomic(out / "bench_randaugment.png", lambda p: figure.savefig(p, dpi=100))


if __name__ == "__main__":
    main()
