"""`python -m recipes.shapes`: the shapes shortcut study, offline, on data it generates.

Stars and moons sit in a fixed quadrant per class during training (after Geirhos et al.); a model
can solve the task from position alone. Four models are trained the same way and tested on
i.i.d. images, with the quadrants swapped, and under scale, rotation and background changes:
a plain CNN (flatten head), a CNN with global average pooling, ResNet-18 and anti-aliased
ResNet-18. Writes `shapes.json`, `shapes.md` and `shapes.png` to `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from evaluation.metrics import accuracy
from recipes import resnet
from recipes.shapes_data import make_shapes
from recipes.small_cnns import gap_cnn, plain_cnn
from recipes.train import TrainConfig, atomic_write_text, fit

CONDITIONS = ("iid", "opposite_quadrant", "scale", "rotation", "background")
# name -> builder(num_classes, input_shape) of a logits model with head `fc`.
MODELS: dict[str, Callable[[int, tuple[int, int, int]], keras.Model]] = {
    "cnn": plain_cnn,
    "cnn_gap": gap_cnn,
    "resnet18": lambda n, shape: resnet.resnet18(n, shape, classifier_activation=None),
    "resnet18_aa4": lambda n, shape: resnet.resnet18(
        n, shape, antialias=4, classifier_activation=None
    ),
}


def _accuracy(model: keras.Model, dataset, normalize: Callable, batch_size: int) -> float:
    probs, labels = [], []
    for images, batch_labels in dataset.batch(batch_size):
        probs.append(keras.ops.convert_to_numpy(keras.ops.softmax(model(normalize(images)))))
        labels.append(batch_labels.numpy())
    return accuracy(np.concatenate(probs), np.concatenate(labels))


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    """Accuracy per model (rows) and test condition (columns)."""
    lines = [
        "| model | " + " | ".join(CONDITIONS) + " |",
        "|---|" + "---|" * len(CONDITIONS),
    ]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in CONDITIONS) + " |")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, float]], path: Path) -> None:
    """Grouped bar chart of accuracy per condition, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(results)
    for index, (name, row) in enumerate(results.items()):
        positions = np.arange(len(CONDITIONS)) + index * width
        axis.bar(positions, [row[c] for c in CONDITIONS], width, label=name)
    axis.set_xticks(np.arange(len(CONDITIONS)) + 0.4 - width / 2, CONDITIONS)
    axis.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="chance")
    axis.set_ylim(0, 1)
    axis.set_ylabel("test accuracy")
    axis.set_title("Shapes study: accuracy when the shortcut breaks")
    axis.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    figure.tight_layout()
    partial = path.with_name(f"partial-{path.name}")
    figure.savefig(partial, format="png", dpi=120)
    plt.close(figure)
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Runs the study; returns the exit code."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of models")
    parser.add_argument("--image-size", type=int, default=64, help="anti-aliasing needs >= 64")
    parser.add_argument("--train-size", type=int, default=1200)
    parser.add_argument("--test-size", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--steps-per-epoch", type=int, help="default: one pass over train")
    parser.add_argument("--mixed-precision", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--strategy", choices=("auto", "mirrored", "default"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/shapes", help="run directory; run again to resume")
    args = parser.parse_args(argv)
    names = args.models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {sorted(MODELS)}")

    start = time.perf_counter()
    data = make_shapes(
        seed=args.seed,
        image_size=args.image_size,
        train_size=args.train_size,
        test_size=args.test_size,
    )
    out = Path(args.out)
    results: dict[str, dict[str, float]] = {}
    for name in names:
        print(f"== {name}")
        config = TrainConfig(
            recipe="shapes",
            architecture=name,
            policy="none",
            epochs=args.epochs,
            batch_size=args.batch_size,
            image_size=args.image_size,
            learning_rate=args.learning_rate,
            weight_decay=1e-4,
            mixed_precision=args.mixed_precision,
            strategy=args.strategy,
            steps_per_epoch=args.steps_per_epoch,
            suite="",
            seed=args.seed,
            out=str(out / name),
        )
        keras.utils.set_random_seed(args.seed)
        shape = (args.image_size, args.image_size, 3)
        model, normalize = fit(
            config,
            data.splits,
            functools.partial(MODELS[name], data.splits.num_classes, shape),
        )
        results[name] = {
            condition: _accuracy(model, data.shifted[condition], normalize, args.batch_size)
            for condition in CONDITIONS
        }
    seconds = time.perf_counter() - start
    table = markdown_table(results)
    summary = {
        "settings": dataclasses.asdict(config) | vars(args),
        "accuracy": results,
        "seconds": seconds,
    }
    atomic_write_text(out / "shapes.json", json.dumps(summary, indent=2, default=str))
    atomic_write_text(out / "shapes.md", f"# Shapes study\n\n{table}\n")
    plot(results, out / "shapes.png")
    print(f"\nTest accuracy ({seconds / 60:.1f} min in all):\n\n{table}\n\nWritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
