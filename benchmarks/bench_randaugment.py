"""Throughput of RandAugment(2 ops, magnitude 9) on 224x224 uint8 images, batch 64, in one run.

Compares this package's ``randaugment`` stage (ops and magnitudes per image, batch-wide XLA
kernels, through ``Policy.apply``), Keras' ``RandAugment`` layer (mapped over batches, the
protocol of the reference note, ``factor=0.5``) and imgaug ``SomeOf(2, [14 RandAugment-like ops])``
through ``tf.numpy_function`` on batches. Writes a table (stdout + JSON) and a bar chart.

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


PIPELINES = {
    "augment.randaugment (ours)": ours,
    "keras.layers.RandAugment": keras_layer,
    "imgaug SomeOf(2, 14 ops)": imgaug_someof,
}


def measure(name: str, dataset: tf.data.Dataset, batches: int, warmup: int = 2) -> float:
    """Images per second over ``batches`` batches after ``warmup`` batches."""
    iterator = iter(dataset.prefetch(2))
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in tqdm(range(batches), desc=name, leave=False):
        next(iterator)
    return batches * BATCH / (time.perf_counter() - start)


def write_atomic(path: Path, write) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    os.close(handle)
    write(tmp)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench_randaugment")
    parser.add_argument("--batches", type=int, default=20, help="timed batches (Keras: 1/3)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, build in PIPELINES.items():
        batches = max(2, args.batches // 3) if "keras" in name else args.batches
        results[name] = measure(name, build(), batches)
        print(f"{name:32s} {results[name]:9.0f} img/s", flush=True)
    ours_rate = results["augment.randaugment (ours)"]
    ratios = {
        "vs_keras": ours_rate / results["keras.layers.RandAugment"],
        "vs_imgaug": ours_rate / results["imgaug SomeOf(2, 14 ops)"],
    }
    print(f"ours / keras = {ratios['vs_keras']:.1f}x, ours / imgaug = {ratios['vs_imgaug']:.2f}x")
    report = {
        "images_per_second": results,
        "ratios": ratios,
        "batch": BATCH,
        "size": SIZE,
        "cpu_count": os.cpu_count(),
        "batches": args.batches,
    }
    write_atomic(
        out / "bench_randaugment.json", lambda p: Path(p).write_text(json.dumps(report, indent=2))
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 2.8))
    names = list(results)
    axis.barh(names, [results[n] for n in names], color=["tab:green", "tab:gray", "tab:blue"])
    for i, n in enumerate(names):
        axis.text(results[n], i, f" {results[n]:.0f}", va="center")
    axis.set_xlabel("images / s (224x224 uint8, batch 64, RandAugment N=2 M=9)")
    axis.set_xlim(0, max(results.values()) * 1.25)
    figure.tight_layout()
    write_atomic(out / "bench_randaugment.png", lambda p: figure.savefig(p, dpi=100))


if __name__ == "__main__":
    main()
