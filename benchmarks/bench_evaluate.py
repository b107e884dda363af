"""Is `evaluation.evaluate` inference-bound? Its time over `model.predict` on the shifted inputs.

Run: python -m benchmarks.bench_evaluate [--out bench_evaluate.json] [--rounds 3]
In one process, alternating rounds (median of each side, so shared-CPU noise hits both alike):

- study: ResNet-18 (9 classes) at 28 px, `--study-images` images, the study suite (clean + 4 blurs +
  4 brightness factors): `evaluate(...)` vs `model.predict` on the 9 x N already-shifted images;
- imagenet-c: ResNet-50 (1000 classes) at 224 px, `--inc-images` images, the 15 common
  corruptions x 5 severities (+ clean): the same ratio, and the share of `evaluate`'s time that the
  corruptions alone take (the 75 corruptions of the data set, computed without the model).

The images are random uint8 noise (speed does not depend on content for these models).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

import evaluation
from evaluation import corruptions, shifts
from recipes import resnet18, resnet50


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _interleaved(sides: dict, rounds: int) -> dict:
    """Warm-up call of each side, then `rounds` alternating timed calls; median seconds per side."""
    for fn in sides.values():
        fn()
    times = {name: [] for name in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            times[name].append(_seconds(fn))
    # The minimum too: on a shared machine whose speed jumps between states, the fastest round
    # of each side is the least disturbed one (timeit's rule).
    return {
        name: {"median_s": statistics.median(t), "min_s": min(t), "all_s": t}
        for name, t in times.items()
    }


def _study_inputs(images: np.ndarray) -> np.ndarray:
    shifted = [images]
    shifted += [shifts.gaussian_blur(images, s) for s in shifts.BLUR_SIGMAS]
    shifted += [shifts.brightness(images, f) for f in shifts.brightness_factors(None)]
    return np.concatenate(shifted)


def _corrupted_inputs(images: np.ndarray, names, batch: int) -> np.ndarray:
    out = [images]
    for name in names:
        for sev in corruptions.SEVERITIES:
            out += [
                corruptions.corrupt(images[i : i + batch], name, sev, seed=0)
                for i in range(0, len(images), batch)
            ]
    return np.concatenate(out)


def _corrupt_all(images: np.ndarray, names, batch: int, seed: int) -> None:
    for name in names:
        for sev in corruptions.SEVERITIES:
            for i in range(0, len(images), batch):
                corruptions.corrupt(tf.constant(images[i : i + batch]), name, sev, seed=seed)


def bench_study(n: int, batch: int, rounds: int) -> dict:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
    labels = rng.integers(0, 9, n)
    model = resnet18(9, (28, 28, 3))
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)
    shifted = _study_inputs(images)
    sides = {
        "evaluate": lambda: evaluation.evaluate(model, data, "study", verbose=0),
        "predict": lambda: model.predict(shifted, batch_size=batch, verbose=0),
    }
    t = _interleaved(sides, rounds)
    return {
        "model": "resnet18(9, (28, 28, 3))",
        "images": n,
        "conditions": 9,
        "batch": batch,
        **t,
        "ratio": t["evaluate"]["median_s"] / t["predict"]["median_s"],
        "ratio_of_minimums": t["evaluate"]["min_s"] / t["predict"]["min_s"],
    }


def bench_imagenet_c(n: int, batch: int, rounds: int) -> dict:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)
    labels = rng.integers(0, 1000, n)
    model = resnet50(1000, (224, 224, 3))
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)
    names = corruptions.corruption_names("common")
    shifted = _corrupted_inputs(images, names, batch)
    sides = {
        "evaluate": lambda: evaluation.evaluate(model, data, "imagenet-c", verbose=0),
        "predict": lambda: model.predict(shifted, batch_size=batch, verbose=0),
        "corruptions_only": lambda: _corrupt_all(images, names, batch, seed=1),
    }
    t = _interleaved(sides, rounds)
    return {
        "model": "resnet50(1000, (224, 224, 3))",
        "images": n,
        "conditions": 1 + 5 * len(names),
        "batch": batch,
        **t,
        "ratio": t["evaluate"]["median_s"] / t["predict"]["median_s"],
        "ratio_of_minimums": t["evaluate"]["min_s"] / t["predict"]["min_s"],
        "corruption_share": t["corruptions_only"]["median_s"] / t["evaluate"]["median_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_evaluate.json", help="JSON results file")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per side")
    parser.add_argument("--study-images", type=int, default=2048)
    parser.add_argument("--study-batch", type=int, default=256)
    parser.add_argument("--inc-images", type=int, default=8, help="images for imagenet-c")
    parser.add_argument("--inc-batch", type=int, default=8)
    parser.add_argument("--skip", choices=["study", "imagenet-c"], default=None)
    args = parser.parse_args()
    results = {"cpus": os.cpu_count(), "tensorflow": tf.__version__}
    if args.skip != "study":
        results["study"] = bench_study(args.study_images, args.study_batch, args.rounds)
        study = results["study"]
        print(
            f"study: evaluate / predict = {study['ratio']:.2f}x (median), "
            f"{study['ratio_of_minimums']:.2f}x (fastest rounds)",
            flush=True,
        )
    if args.skip != "imagenet-c":
        r = bench_imagenet_c(args.inc_images, args.inc_batch, args.rounds)
        results["imagenet_c"] = r
        print(
            f"imagenet-c: evaluate / predict = {r['ratio']:.2f}x, "
            f"corruptions {100 * r['corruption_share']:.0f}% of evaluate",
            flush=True,
        )
    tmp = f"{args.out}.tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
