"""Temperature scaling on the shapes data: clean vs perturbed calibration set (Tomani et al. 2021).

Trains the global-pooling CNN of the shapes study (seed 0, 64 px, 1,200 training images, a few
epochs, plain `model.fit`), then:

- accuracy of the validation set under each default noise level of `PERTURBATION_SIGMAS`
  (do the levels span clean to chance?);
- T fitted on the clean validation set and on its perturbed copies (`--copies` seeds) with the
  default levels (`perturbed`) and with levels matched to the model (`matched_noise_levels`);
- RMS calibration error (10 equal bins) and ECE before/after, on the i.i.d. test set, under the
  study's Gaussian blur and brightness shifts and under the shapes study's test conditions.

Usage:
    python -m benchmarks.bench_calibration --out runs/bench_calibration
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import keras
import numpy as np
from scipy import special

from evaluation import calibration, expected_calibration_error, rms_calibration_error, shifts
from recipes.shapes_data import make_shapes
from recipes.small_cnns import gap_cnn


def _arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*dataset.as_numpy_iterator(), strict=True)
    return np.stack(images), np.asarray(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--copies", type=int, default=4, help="perturbed copies of validation")
    parser.add_argument("--out", default="runs/bench_calibration")
    args = parser.parse_args()
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    data = make_shapes(seed=0, image_size=64, train_size=1200, test_size=400)
    splits = data.splits
    mean, std = np.asarray(splits.mean, np.float32), np.asarray(splits.std, np.float32)

    def logits(images: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict((images.astype(np.float32) - mean) / std, verbose=0))

    x_train, y_train = _arrays(splits.train)
    model = gap_cnn(splits.num_classes, (64, 64, 3))
    model.compile(
        keras.optimizers.AdamW(1e-3, weight_decay=1e-4),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit((x_train - mean) / std, y_train, batch_size=32, epochs=args.epochs, verbose=2)

    x_val, y_val = _arrays(splits.val)
    per_level = {}
    for sigma in calibration.PERTURBATION_SIGMAS:
        noisy = np.asarray(calibration.perturbed_validation(x_val, seed=0, sigmas=[sigma]))
        per_level[sigma] = float(np.mean(logits(noisy).argmax(1) == y_val))
    matched = calibration.matched_noise_levels(
        lambda s: float(
            np.mean(
                logits(np.asarray(calibration.add_gaussian_noise(x_val, s, 0))).argmax(1) == y_val
            )
        ),
        chance=1.0 / splits.num_classes,
    )
    fits = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits["clean"] = calibration.fit_temperature(logits(x_val), y_val)
        for name, sigmas in (("perturbed", calibration.PERTURBATION_SIGMAS), ("matched", matched)):
            copies = [
                np.asarray(calibration.perturbed_validation(x_val, seed=1 + s, sigmas=sigmas))
                for s in range(args.copies)
            ]
            fits[name] = calibration.fit_temperature(
                np.concatenate([logits(c) for c in copies]), np.tile(y_val, args.copies)
            )
    notes = [str(w.message) for w in caught]

    x_test, y_test = _arrays(splits.test)
    conditions = {"iid": x_test}
    for sigma in (0.5, 0.9):
        conditions[f"blur {sigma}"] = shifts.gaussian_blur(x_test, sigma)
    for factor in (0.6, 1.4):
        conditions[f"brightness {factor}"] = shifts.brightness(x_test, factor)
    shifted = {name: _arrays(ds) for name, ds in data.shifted.items() if name != "iid"}
    results = {}
    for name, (images, labels) in [
        *((n, (x, y_test)) for n, x in conditions.items()),
        *shifted.items(),
    ]:
        z = logits(images)
        row = {"accuracy": float(np.mean(z.argmax(1) == labels))}
        for fit, t in [("none", 1.0), *fits.items()]:
            probs = special.softmax(z / t, axis=1)
            row[f"rms_{fit}"] = rms_calibration_error(probs, labels)
            row[f"ece_{fit}"] = expected_calibration_error(probs, labels)
        results[name] = row
    summary = {
        "val_accuracy_per_sigma": per_level,
        "matched_sigmas": matched,
        "temperature": fits,
        "warnings": notes,
        "conditions": results,
        "seconds": time.perf_counter() - start,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "calibration.json.partial"
    partial.write_text(json.dumps(summary, indent=2))
    partial.replace(out / "calibration.json")  # atomic: readers never see half a file
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
