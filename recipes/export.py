"""What a run leaves: one self-contained `model.keras`, `classes.json` and the report.

Training runs a logits model on images normalised in the input pipeline; users and
`python -m evaluation` want a file that takes RGB images as they come (uint8, or float 0..255)
and returns probabilities. The export wraps the trained network between a float32 `Normalization`
(the run's mean/std) and a float32 softmax, drops the optimizer and the training loss, and is
written atomically beside `classes.json` (index -> class name). With `--calibrate clean|perturbed`
a temperature fitted on the validation split (never on the test suite's shifts) sits before the
softmax, and the report shows each condition's calibration before and after. The report is
computed on the saved model itself, so `python -m evaluation model.keras` on the same test data
reproduces it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import keras

import evaluation
from evaluation import recalibration
from evaluation.command_line import interactive
from evaluation.files import atomic_write_bytes, publish
from layers import TemperatureScaling
from recipes.datasets import DataSplits, normalization_stats

CLASSES_FILE = "classes.json"


def self_contained_model(
    logits_model: keras.Model,
    mean: Sequence[float],
    std: Sequence[float],
    temperature: keras.layers.Layer | None = None,
) -> keras.Model:
    """Normalisation, the trained network (a fresh copy), optional calibration, softmax.

    Args:
        logits_model: the trained model: normalised NHWC float input, logits output.
        mean: per-channel mean of the normalisation, in 0..255 units.
        std: per-channel standard deviation, in 0..255 units.
        temperature: a layer applied to the logits before the softmax (temperature scaling).

    Returns:
        An uncompiled model: RGB images at the training size in 0..255 -> float32 probabilities.
    """
    # Rebuilt from its config: no optimizer, loss or metrics. (`clone_model` compiles the clone
    # like the original, and saving then writes Adam's two slots per weight: 3x the file.)
    network = type(logits_model).from_config(logits_model.get_config())
    network.set_weights(logits_model.get_weights())
    inputs = keras.Input(logits_model.input_shape[1:], name="image")
    # float32 whatever the global policy: the network casts to its own compute dtype after it.
    x = keras.layers.Normalization(
        mean=list(mean), variance=[s * s for s in std], dtype="float32", name="normalize"
    )(inputs)
    logits = network(x)
    if temperature is not None:
        logits = temperature(logits)
    outputs = keras.layers.Softmax(dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, outputs, name=logits_model.name)


def save_model(model: keras.Model, path: Path) -> None:
    """Writes `model` to `path` atomically (a partial file renamed into place)."""
    partial = path.with_name(f"partial-{path.name}")
    model.save(partial)
    publish(partial, path)


def write_classes(folder: Path, class_names: Sequence[str]) -> Path:
    """Writes `classes.json`, {"0": name, "1": name, ...}, atomically; returns its path."""
    path = Path(folder) / CLASSES_FILE
    mapping = {str(index): name for index, name in enumerate(class_names)}
    atomic_write_bytes(path, (json.dumps(mapping, indent=2) + "\n").encode())
    return path


def fit_run_temperature(
    config, splits: DataSplits, network: keras.Model, normalize: Callable
) -> tuple[float, str | None]:
    """`config.calibrate`'s temperature, fitted on the validation split (the first
    `config.eval_limit` examples, as validation during training uses)."""
    val = splits.val if config.eval_limit is None else splits.val.take(config.eval_limit)
    return recalibration.fit_model_temperature(
        lambda images: network(normalize(images), training=False),
        val.batch(config.batch_size),
        config.calibrate,
        config.seed,
    )


def finish_run(
    config, splits: DataSplits, network: keras.Model, normalize: Callable, *, verbose: int = 1
) -> evaluation.Report:
    """Exports the trained network and writes the evaluation report of `config.suite`.

    Args:
        config: the run's `TrainConfig`.
        splits: the run's data.
        network: the trained logits model (best validation weights).
        normalize: the normalisation it was trained with.
        verbose: 0 prints nothing; otherwise the report (and progress on a terminal).

    Returns:
        The report of the saved model on the test split.
    """
    out = Path(config.out)
    mean, std = normalization_stats(splits, pretrained=config.pretrain != "none")
    calibration = None
    if config.calibrate != "none":
        temperature, note = fit_run_temperature(config, splits, network, normalize)
        calibration = recalibration.describe(
            config.calibrate, temperature, "the validation split", note
        )
        if verbose:
            print(
                f"Temperature ({config.calibrate}): T = {temperature:.4f}"
                + (f"; {note}" if note else "")
            )
    scaling = (
        None
        if calibration is None
        else TemperatureScaling(calibration["temperature"], name="temperature")
    )
    exported = self_contained_model(network, mean, std, temperature=scaling)
    save_model(exported, out / "model.keras")
    write_classes(out, splits.class_names)
    test = splits.test if config.eval_limit is None else splits.test.take(config.eval_limit)

    def evaluate(model: keras.Model) -> evaluation.Report:
        return evaluation.evaluate(
            model,
            test.batch(config.batch_size),
            config.suite,
            dataset_name=splits.name if splits.name in ("pets", "pathmnist") else None,
            seed=config.seed,
            verbose=int(verbose > 0 and interactive()),
        )

    report = evaluate(exported)
    if calibration is not None:
        report = recalibration.compare(
            report, evaluate(self_contained_model(network, mean, std)), calibration
        )
    report.meta["dataset"] = splits.display_name
    report.save(out)
    if verbose:
        print(report.to_markdown())
    return report
