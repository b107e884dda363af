"""Step time of `model.fit` vs the recipes' custom training loop (`recipes.loop`) on one device.

Both train the same model (the recipes' AdamW, softmax cross-entropy from logits) on one cached
batch repeated, so only the step is timed: `fit(steps_per_epoch=N)` against N calls of the loop's
distributed step under the default strategy, each side ending with its results on the host. The
sides alternate within each round (fit, loop, fit, loop, ...) after one warm-up round, so a
shared machine's load hits both alike; the report is the median seconds per step of each side::

    python benchmarks/bench_train_loop.py --rounds 5 --out runs/bench_train_loop
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from recipes import pipeline, resnet
from recipes.loop import TrainingLoop
from recipes.objectives import Objective
from recipes.train import TrainConfig, make_optimizer

# name -> (builder, image size, batch size): the two cases.
CASES = {
    "resnet18-28px-b256": (resnet.resnet18, 28, 256),
    "resnet50-224px-b16": (resnet.resnet50, 224, 16),
}


def _model(builder, size: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    return builder(9, input_shape=(size, size, 3), classifier_activation=None)


def _batch(size: int, batch: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, size, size, 3)).astype("float32")
    labels = np.eye(9, dtype="float32")[rng.integers(0, 9, batch)]
    return tf.data.Dataset.from_tensors((images, labels)).repeat()


def fit_side(builder, size: int, batch: int, steps: int):
    """A callable timing `steps` steps of `model.fit`."""
    model = _model(builder, size)
    model.compile(
        optimizer=make_optimizer(TrainConfig("bench", "resnet"), 1000),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    data = _batch(size, batch)

    def timed() -> float:
        start = time.perf_counter()
        history = model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
        assert np.isfinite(history.history["loss"][-1])
        return (time.perf_counter() - start) / steps

    return timed


def loop_side(builder, size: int, batch: int, steps: int):
    """A callable timing `steps` steps of the custom loop, fed as the engine feeds it."""
    strategy = tf.distribute.get_strategy()
    model = _model(builder, size)
    model.compile(optimizer=make_optimizer(TrainConfig("bench", "resnet"), 1000))
    model.optimizer.build(model.trainable_variables)
    loop = TrainingLoop(
        strategy, model, model.optimizer, Objective(False, None), batch, model.jit_compile
    )
    data = strategy.distribute_datasets_from_function(
        lambda context: pipeline.replica_dataset(
            _batch(size, batch).enumerate(), context, batch, lambda first, x, y: (x, y)
        )
    )

    def timed() -> float:
        start = time.perf_counter()
        iterator = iter(data)
        totals = tf.zeros([3])
        for _ in range(steps):
            totals += loop.train_on(iterator)
        assert np.isfinite(totals.numpy()).all()
        return (time.perf_counter() - start) / steps

    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma list of {list(CASES)}")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up")
    parser.add_argument("--steps", type=int, default=10, help="steps per side and round")
    parser.add_argument("--out", type=Path, help="folder for bench_train_loop.json")
    args = parser.parse_args()
    results = {}
    for name in args.cases.split(","):
        builder, size, batch = CASES[name]
        sides = {
            "fit": fit_side(builder, size, batch, args.steps),
            "loop": loop_side(builder, size, batch, args.steps),
        }
        times: dict[str, list[float]] = {side: [] for side in sides}
        for round_index in range(args.rounds + 1):
            for side, timed in sides.items():
                seconds = timed()
                if round_index:  # round 0 traces and warms up
                    times[side].append(seconds)
        medians = {side: float(np.median(t)) for side, t in times.items()}
        results[name] = {
            "median_s_per_step": medians,
            "loop_over_fit": medians["loop"] / medians["fit"],
            "rounds_s_per_step": times,
        }
        print(
            f"{name}: fit {medians['fit'] * 1e3:.1f} ms/step, loop {medians['loop'] * 1e3:.1f} "
            f"ms/step, loop/fit {medians['loop'] / medians['fit']:.3f} "
            f"({args.rounds} interleaved rounds of {args.steps} steps, median)"
        )
    results["device"] = [d.name for d in tf.config.list_logical_devices()]
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_train_loop.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
