"""`evaluate`: streams a data set once through every condition of the chosen suites.

The conditions are computed in the input pipeline (`evaluation.pipeline`: parallel, prefetched)
while the model runs as a compiled function, under a tf.distribute strategy when given one; the
host adds each batch's probabilities into per-condition sums (`StreamingMetrics`), which the
workers of a multi-worker run add up at the end (`distribute.sum_over_workers`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from evaluation import consistency, corruptions, distribute, pipeline, shifts
from evaluation.metrics import StreamingMetrics
from evaluation.report import Report

SUITES = ("study", "imagenet-c", "consistency")


@dataclasses.dataclass(frozen=True)
class Condition:
    """One evaluated input distribution: a row of the report."""

    suite: str  # "clean", "study" or "imagenet-c": the corruption "brightness" is not the study's
    shift: str
    level: float | int | None
    apply: pipeline.ConditionFn  # (uint8 batch, example indices) -> uint8 batch


def parse_suites(suite: str | Iterable[str]) -> list[str]:
    """ "study,imagenet-c" or ["study", ...] -> validated list of suite names."""
    names = suite.split(",") if isinstance(suite, str) else list(suite)
    names = [s.strip() for s in names if s.strip()]
    bad = [s for s in names if s not in SUITES]
    if bad or not names:
        raise ValueError(f"unknown suite(s) {bad or names}; allowed: {list(SUITES)}")
    return names


def build_conditions(
    suites: list[str],
    brightness_factors: Iterable[float],
    corruption_list: Iterable[str],
    severities: Iterable[int],
    seed: int,
) -> list[Condition]:
    """The clean condition, then the study's shifts and/or the corruptions."""
    conditions = [Condition("clean", "clean", None, lambda x, i: x)]
    if "study" in suites:
        for sigma in shifts.BLUR_SIGMAS:
            conditions.append(
                Condition("study", "blur", sigma, lambda x, i, s=sigma: shifts.gaussian_blur(x, s))
            )
        for f in brightness_factors:
            conditions.append(
                Condition("study", "brightness", f, lambda x, i, f=f: shifts.brightness(x, f))
            )
    if "imagenet-c" in suites:
        for name in corruption_list:
            for sev in severities:
                corruptions.check_corruption(name, sev)
                conditions.append(
                    Condition(
                        "imagenet-c",
                        name,
                        sev,
                        lambda x, i, n=name, s=sev: corruptions.corrupt(
                            x, n, s, seed=pipeline.example_seeds(seed, i)
                        ),
                    )
                )
    return conditions


def _model_fn(model, preprocess, from_logits: bool):
    def probabilities(images: tf.Tensor) -> tf.Tensor:
        x = tf.cast(images, tf.float32) if preprocess is None else preprocess(images)
        out = model(x, training=False)
        out = keras.ops.softmax(out, axis=-1) if from_logits else out
        return tf.cast(out, tf.float32)

    return probabilities


def _run(strategy, fn, dataset: tf.data.Dataset, progress: tqdm):
    """Runs `fn` (per replica, compiled) on each element; yields each replica's outputs as NumPy."""
    if strategy.num_replicas_in_sync > 1:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        dataset = strategy.experimental_distribute_dataset(dataset.with_options(options))

    @tf.function(reduce_retracing=True)
    def step(element):
        return strategy.run(fn, args=element)

    for element in dataset:
        outputs = step(element)
        for replica in zip(*(strategy.experimental_local_results(o) for o in outputs), strict=True):
            yield tuple(t.numpy() for t in replica)
        progress.update()


def evaluate(
    model,
    dataset,
    suite: str | Iterable[str] = "study",
    preprocess: Callable | None = None,
    *,
    from_logits: bool = False,
    dataset_name: str | None = None,
    brightness_factors: Iterable[float] | None = None,
    corruptions: Iterable[str] | None = None,
    severities: Iterable[int] = (1, 2, 3, 4, 5),
    seed: int = 0,
    verbose: int = 1,
    bootstrap: int = 200,
    strategy: tf.distribute.Strategy | None = None,
) -> Report:
    """Evaluates a classifier on clean data and under the chosen suites' shifts.

    Args:
        model: a callable Keras model returning probabilities (or logits, with from_logits=True).
        dataset: tf.data.Dataset (or iterable) of (uint8 NHWC batch, integer labels); under a
            strategy, each element is one global batch, split over the replicas.
        suite: "study", "imagenet-c", "consistency", or several ("study,imagenet-c" or a list).
        preprocess: applied (in the compiled model step) to each shifted uint8 batch before the
            model (e.g. normalisation); None casts to float32 0..255.
        from_logits: apply softmax to the model's outputs.
        dataset_name: "pathmnist", "pets" or None: picks the study's brightness factors
            (None -> pathMNIST's {0.8, 0.9, 1.1, 1.2}).
        brightness_factors: overrides the factor set.
        corruptions: for "imagenet-c": a subset name ("common", "all", ...), "name,name", or a
            list of names (default: the 15 common ones).
        severities: corruption severities (1..5).
        seed: keys every random number (corruptions, consistency views, bootstrap weights)
            together with the example's index in the data set (|seed| < 2**31).
        verbose: 0 silent, 1 progress bar (chief only).
        bootstrap: Poisson bootstrap replicates for each row's "ci95"; 0 switches it off.
        strategy: a tf.distribute strategy (`distribute.make_strategy`); None: the default one.
            Every worker returns the full report; only the chief should write it
            (`distribute.is_chief`).

    Returns:
        a `Report`.
    """
    suites = parse_suites(suite)
    if not isinstance(bootstrap, int) or bootstrap < 0:
        raise ValueError(
            f"bootstrap must be an integer >= 0 (0 switches it off), got {bootstrap!r}"
        )
    factors = (
        tuple(brightness_factors)
        if brightness_factors is not None
        else shifts.brightness_factors(dataset_name)
    )
    names = corruption_list(corruptions)
    severities = tuple(severities)
    conditions = build_conditions(suites, factors, names, severities, seed)
    strategy = strategy or tf.distribute.get_strategy()
    data = pipeline.indexed(dataset)
    probabilities = _model_fn(model, preprocess, from_logits)
    progress = tqdm(disable=not (verbose and distribute.is_chief(strategy)), desc="evaluate")

    accumulators = [StreamingMetrics(bootstrap=bootstrap) for _ in conditions]
    stream = pipeline.condition_stream(data, [c.apply for c in conditions], bootstrap, seed)

    def predict_condition(images, labels, indices, condition, weights):
        return probabilities(images), labels, indices, condition, weights

    for probs, labels, indices, condition, weights in _run(
        strategy, predict_condition, stream, progress
    ):
        if len(labels):
            accumulators[condition[0]].update(probs, labels, indices, weights)

    sums = consistency.ConsistencySums()
    if "consistency" in suites:

        def predict_views(views, indices):
            flat = tf.reshape(views, [-1, *views.shape[2:]])
            probs = probabilities(flat)
            return tf.reshape(probs, [tf.shape(views)[0], views.shape[1], -1]), indices

        for probs, _ in _run(
            strategy, predict_views, pipeline.consistency_stream(data, seed), progress
        ):
            sums.update(probs)
    progress.close()

    num_examples = int(
        distribute.sum_over_workers(strategy, {"n": np.array([accumulators[0].n])})["n"][0]
    )
    if num_examples == 0:
        raise ValueError("the data set yielded no examples")
    states = {"consistency": sums.state()["consistency"]}
    for k, acc in enumerate(accumulators):
        states |= {f"{k}/{name}": v for name, v in acc.state(num_examples).items()}
    states = distribute.sum_over_workers(strategy, states)
    sums.load_state(states)
    for k, acc in enumerate(accumulators):
        prefix = f"{k}/"
        acc.load_state({n[len(prefix) :]: v for n, v in states.items() if n.startswith(prefix)})
    results = [
        {"suite": c.suite, "shift": c.shift, "level": c.level, **a.result()}
        for c, a in zip(conditions, accumulators, strict=True)
    ]
    meta = {
        "suites": suites,
        "dataset_name": dataset_name,
        "brightness_factors": list(factors),
        "severities": list(severities),
        "seed": seed,
        "model": getattr(model, "name", type(model).__name__),
        "image_size": int(data.element_spec[0].shape[1]),
        "num_examples": num_examples,
        "bootstrap": bootstrap,
    }
    consistency_results = sums.result() if "consistency" in suites else {}
    return Report(results=results, consistency=consistency_results, meta=meta)


def corruption_list(spec: str | Iterable[str] | None) -> list[str]:
    """None -> the 15 common corruptions (mCE's set); a subset name; "a,b"; or a list of names."""
    if spec is None:
        return corruptions.corruption_names("common")
    if isinstance(spec, str):
        if spec in corruptions.SUBSETS:
            return corruptions.corruption_names(spec)
        return [n.strip() for n in spec.split(",") if n.strip()]
    return list(spec)
