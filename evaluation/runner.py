"""`evaluate`: streams a data set once through every condition of the chosen suites."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from evaluation import consistency, corruptions, shifts
from evaluation.metrics import StreamingMetrics
from evaluation.report import Report

SUITES = ("study", "imagenet-c", "consistency")
# consistency suite settings: Zhang's 32 of 256 px max shift, Azulay-Weiss' 8 diagonal steps,
# ImageNet-P's difficulty-1 Gaussian noise (sigma 0.03) with 10 noisy frames per image.
SHIFT_FRACTION = 32 / 256
TRANSLATION_STEPS = 8
NOISE_SIGMA, NOISE_FRAMES = 0.03, 10


@dataclasses.dataclass(frozen=True)
class Condition:
    """One evaluated input distribution: a row of the report."""

    suite: str  # "clean", "study" or "imagenet-c": the corruption "brightness" is not the study's
    shift: str
    level: float | int | None
    apply: Callable[[tf.Tensor, int], tf.Tensor]  # (uint8 batch, batch index) -> uint8 batch


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
                            x, n, s, seed=seed * 1_000_003 + i
                        ),
                    )
                )
    return conditions


def _predictor(model, preprocess, from_logits: bool):
    def predict(images: tf.Tensor) -> np.ndarray:
        x = tf.cast(images, tf.float32) if preprocess is None else preprocess(images)
        out = model(x, training=False)
        out = keras.ops.softmax(out, axis=-1) if from_logits else out
        return np.asarray(keras.ops.convert_to_numpy(out), np.float64)

    return predict


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
) -> Report:
    """Evaluates a classifier on clean data and under the chosen suites' shifts.

    Args:
        model: a callable Keras model returning probabilities (or logits, with from_logits=True).
        dataset: iterable (e.g. tf.data) of (uint8 NHWC batch, integer labels).
        suite: "study", "imagenet-c", "consistency", or several ("study,imagenet-c" or a list).
        preprocess: applied to each shifted uint8 batch before the model (e.g. normalisation);
            None casts to float32 0..255.
        from_logits: apply softmax to the model's outputs.
        dataset_name: "pathmnist", "pets" or None: picks the study's brightness factors
            (None -> pathMNIST's {0.8, 0.9, 1.1, 1.2}).
        brightness_factors: overrides the factor set.
        corruptions: for "imagenet-c": a subset name ("common", "all", ...), "name,name", or a
            list of names (default: the 15 common ones).
        severities: corruption severities (1..5).
        seed: seeds the corruptions (per batch: seed * 1000003 + batch index) and the shifts.
        verbose: 0 silent, 1 progress bar.

    Returns:
        a `Report`.
    """
    suites = parse_suites(suite)
    factors = (
        tuple(brightness_factors)
        if brightness_factors is not None
        else shifts.brightness_factors(dataset_name)
    )
    names = corruption_list(corruptions)
    severities = tuple(severities)
    conditions = build_conditions(suites, factors, names, severities, seed)
    predict = _predictor(model, preprocess, from_logits)
    accumulators = [StreamingMetrics() for _ in conditions]
    rng = np.random.default_rng(seed)
    counts = {"shift_agree": 0, "shift_total": 0, "noise_flips": 0.0, "noise_total": 0}
    sequences: list[dict] = []
    for i, (images, labels) in enumerate(tqdm(dataset, disable=not verbose, desc="evaluate")):
        images = tf.convert_to_tensor(images)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        for cond, acc in zip(conditions, accumulators, strict=True):
            acc.update(predict(cond.apply(images, i)), labels)
        if "consistency" in suites:
            _update_consistency(predict, images, rng, seed, i, counts, sequences)
    if accumulators[0].n == 0:
        raise ValueError("the data set yielded no examples")
    results = [
        {"suite": c.suite, "shift": c.shift, "level": c.level, **a.result()}
        for c, a in zip(conditions, accumulators, strict=True)
    ]
    consistency_results = _finish_consistency(counts, sequences) if "consistency" in suites else {}
    meta = {
        "suites": suites,
        "dataset_name": dataset_name,
        "brightness_factors": list(factors),
        "severities": list(severities),
        "seed": seed,
        "model": getattr(model, "name", type(model).__name__),
    }
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


def _update_consistency(predict, images, rng, seed, batch_index, counts, sequences):
    h = int(images.shape[1])
    max_shift = max(1, round(h * SHIFT_FRACTION))
    agree, total = consistency.shift_consistency_counts(predict, images, max_shift, rng)
    counts["shift_agree"] += agree
    counts["shift_total"] += total
    probs = consistency.translation_sequence(predict, images, TRANSLATION_STEPS)
    sequences.append(consistency.translation_sensitivity(probs) | {"n": int(images.shape[0])})
    x = tf.cast(images, tf.float32) / 255.0
    frames = [predict(images).argmax(-1)]
    for k in range(NOISE_FRAMES):
        noise_seed = tf.constant([seed * 1_000_003 + batch_index, k], tf.int64)
        noisy = x + tf.random.stateless_normal(tf.shape(x), noise_seed, stddev=NOISE_SIGMA)
        noisy = tf.cast(tf.floor(tf.clip_by_value(noisy, 0, 1) * 255), tf.uint8)
        frames.append(predict(noisy).argmax(-1))
    fp = consistency.flip_probability(np.stack(frames, axis=1), mode="noise")
    counts["noise_flips"] += fp * len(frames[0])
    counts["noise_total"] += len(frames[0])


def _finish_consistency(counts, sequences) -> dict:
    n = sum(s["n"] for s in sequences)
    return {
        "shift_consistency": counts["shift_agree"] / counts["shift_total"],
        "p_top1_change": sum(s["p_top1_change"] * s["n"] for s in sequences) / n,
        "mean_abs_change": sum(s["mean_abs_change"] * s["n"] for s in sequences) / n,
        "flip_probability_noise": counts["noise_flips"] / counts["noise_total"],
        "settings": {
            "max_shift_fraction": SHIFT_FRACTION,
            "translation_steps": TRANSLATION_STEPS,
            "noise_sigma": NOISE_SIGMA,
            "noise_frames": NOISE_FRAMES,
        },
    }
