"""`python -m recipes.shapes`: the shapes shortcut study, offline, on data it generates.

Stars and moons sit in a fixed quadrant per class during training (after Geirhos et al.); a model
can solve the task from position alone. Four models are trained the same way and tested on
i.i.d. images, with the quadrants swapped, and under scale, rotation and background changes:
a plain CNN (flatten head), a CNN with global average pooling, ResNet-18 and anti-aliased
ResNet-18. Each model's run folder holds its `model.keras` and the study suite's report (accuracy
and RMS calibration error under blur and brightness); `shapes.json`, `shapes.md` and `shapes.png`
in `--out` sum both up.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from evaluation.command_line import (
    Parser,
    UserError,
    add_verbosity,
    check_output_folder,
    positive_int,
    run_command,
)
from recipes.cli import STRATEGIES, add_fixes_options, image_size, positive_float, start

PROG = "python -m recipes.shapes"
CONDITIONS = ("iid", "opposite_quadrant", "scale", "rotation", "background")
# name -> builder(num_classes, input_shape) of a logits model with head `fc`.
MODEL_NAMES = ("cnn", "cnn_gap", "resnet18", "resnet18_aa4")
# The study suite's summary columns: (report row kind, metric).
STUDY_COLUMNS = (
    ("clean", "accuracy"),
    ("blur", "accuracy"),
    ("brightness", "accuracy"),
    ("clean", "rms_calibration_error"),
    ("blur", "rms_calibration_error"),
    ("brightness", "rms_calibration_error"),
)


def model_builders() -> dict[str, Callable]:
    """name -> builder(num_classes, input_shape) of a logits model with head `fc`."""
    from recipes import resnet
    from recipes.small_cnns import gap_cnn, plain_cnn

    return {
        "cnn": plain_cnn,
        "cnn_gap": gap_cnn,
        "resnet18": lambda n, shape: resnet.resnet18(n, shape, classifier_activation=None),
        "resnet18_aa4": lambda n, shape: resnet.resnet18(
            n, shape, antialias=4, classifier_activation=None
        ),
    }


def _accuracy(model, dataset, batch_size: int) -> float:
    """Top-1 accuracy of a model that takes 0..255 images and returns probabilities."""
    import numpy as np

    from evaluation.metrics import accuracy

    probs, labels = [], []
    for images, batch_labels in dataset.batch(batch_size):
        probs.append(np.asarray(model(images, training=False)))
        labels.append(batch_labels.numpy())
    return accuracy(np.concatenate(probs), np.concatenate(labels))


def study_summary(report) -> dict[str, float]:
    """Accuracy and RMS calibration error clean and averaged over the blur / brightness levels."""
    row = report.clean()
    return {
        f"{kind}_{metric}": row[metric] if kind == "clean" else report.shift_average(kind, metric)
        for kind, metric in STUDY_COLUMNS
    }


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    """Accuracy per model (rows) and test condition (columns)."""
    lines = [
        "| model | " + " | ".join(CONDITIONS) + " |",
        "|---|" + "---|" * len(CONDITIONS),
    ]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in CONDITIONS) + " |")
    return "\n".join(lines)


def study_table(summaries: dict[str, dict[str, float]]) -> str:
    """Accuracy (higher is better) and RMS calibration error (lower is better) per model."""
    lines = [
        "| model | accuracy clean | blur avg | brightness avg "
        "| RMS calibration error clean | blur avg | brightness avg |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in summaries.items():
        cells = " | ".join(f"{row[f'{k}_{m}']:.3f}" for k, m in STUDY_COLUMNS)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def plot(
    results: dict[str, dict[str, float]], summaries: dict[str, dict[str, float]], path: Path
) -> None:
    """Two panels: accuracy per shortcut condition, and the study suite per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from evaluation.files import publish

    figure, (shortcut, study) = plt.subplots(
        1, 2, figsize=(13, 4.4), gridspec_kw={"width_ratios": [5, 6]}
    )
    width = 0.8 / len(results)
    for index, (name, row) in enumerate(results.items()):
        positions = np.arange(len(CONDITIONS)) + index * width
        shortcut.bar(positions, [row[c] for c in CONDITIONS], width, label=name)
    shortcut.set_xticks(np.arange(len(CONDITIONS)) + 0.4 - width / 2, CONDITIONS, fontsize=8)
    shortcut.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="chance")
    shortcut.set_ylim(0, 1)
    shortcut.set_ylabel("test accuracy (higher is better)")
    shortcut.set_title("When the position shortcut breaks")
    labels = [
        f"{k}\n{'accuracy' if m == 'accuracy' else 'RMS cal. error'}" for k, m in STUDY_COLUMNS
    ]
    for index, (name, row) in enumerate(summaries.items()):
        positions = np.arange(len(STUDY_COLUMNS)) + index * width
        study.bar(positions, [row[f"{k}_{m}"] for k, m in STUDY_COLUMNS], width, label=name)
    study.set_xticks(np.arange(len(STUDY_COLUMNS)) + 0.4 - width / 2, labels, fontsize=8)
    study.axvline(2.5 + 0.4 - width / 2, color="black", linewidth=0.8)  # accuracy | RMS
    study.set_ylim(0, 1)
    study.set_title("Study suite on i.i.d. test images: blur and brightness averages")
    handles, names = shortcut.get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    partial = path.with_name(f".{path.name}.partial.png")
    figure.savefig(partial, format="png", dpi=110)
    plt.close(figure)
    publish(partial, path)


def build_parser() -> Parser:
    """The study's options (no TensorFlow imported)."""
    p = Parser(PROG, __doc__)
    p.add_argument("--epochs", type=positive_int, default=4)
    p.add_argument("--models", default=",".join(MODEL_NAMES), help="comma list of models")
    p.add_argument("--image-size", type=image_size, default=32, help="image side")
    p.add_argument("--train-size", type=positive_int, default=1200)
    p.add_argument("--test-size", type=positive_int, default=400)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--learning-rate", type=positive_float, default=1e-3)
    p.add_argument(
        "--steps-per-epoch", type=positive_int, help="(default: one pass over the training set)"
    )
    p.add_argument("--mixed-precision", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--strategy", choices=STRATEGIES[:3], default="auto")
    p.add_argument(
        "--suite", default="study", help="each model's evaluation suites, e.g. study,consistency"
    )
    add_fixes_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/shapes", help="output folder; run again to resume")
    p.add_argument("--restart", action="store_true", help="start every model's run over")
    add_verbosity(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the study; returns the exit code."""
    return run_command(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(MODEL_NAMES))
    if unknown or not names:
        raise UserError(f"--models: unknown {unknown or names}; allowed: {list(MODEL_NAMES)}")
    if "study" not in [suite.strip() for suite in args.suite.split(",")]:
        raise UserError(f"--suite {args.suite}: keep 'study' in it (the summary table uses it)")
    level = start(args)
    out = check_output_folder(args.out)
    configs = {name: _config(args, name, out) for name in names}
    from recipes import cli

    for config in configs.values():
        cli.check_config(config, args.restart)
    import keras

    from recipes import train

    train.distribution_strategy(configs[names[0]])  # before any other TensorFlow work
    from evaluation.files import atomic_write_text
    from recipes.shapes_data import make_shapes
    from recipes.train import run

    began = time.perf_counter()
    data = make_shapes(
        seed=args.seed,
        image_size=args.image_size,
        train_size=args.train_size,
        test_size=args.test_size,
    )
    builders = model_builders()
    shape = (args.image_size, args.image_size, 3)
    results: dict[str, dict[str, float]] = {}
    summaries: dict[str, dict[str, float]] = {}
    for name, config in configs.items():
        if level:
            print(f"== {name}")
        keras.utils.set_random_seed(args.seed)
        builder = functools.partial(builders[name], data.splits.num_classes, shape)
        with cli.engine_errors():
            report = run(config, data.splits, builder, verbose=level, restart=args.restart)
        model = keras.models.load_model(out / name / "model.keras")
        results[name] = {
            condition: _accuracy(model, data.shifted[condition], args.batch_size)
            for condition in CONDITIONS
        }
        summaries[name] = study_summary(report)
    seconds = time.perf_counter() - began
    table, study = markdown_table(results), study_table(summaries)
    summary = {
        "settings": vars(args),
        "accuracy": results,
        "study_suite": summaries,
        "seconds": seconds,
    }
    atomic_write_text(out / "shapes.json", json.dumps(summary, indent=2, default=str))
    text = (
        f"# Shapes study\n\nTest accuracy when the shortcut breaks (higher is better):\n\n"
        f"{table}\n\nThe study suite on the i.i.d. test images (blur sigma 0.3-0.9, brightness "
        f"0.8-1.2, averaged):\n\n{study}\n"
    )
    atomic_write_text(out / "shapes.md", text)
    plot(results, summaries, out / "shapes.png")
    print(f"\n{text}\n{seconds / 60:.1f} min in all. Written to {out}")
    return 0


def _config(args, name: str, out: Path):
    from recipes.train import TrainConfig

    return TrainConfig(
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
        suite=args.suite,
        stability=args.stability,
        calibrate=args.calibrate,
        seed=args.seed,
        out=str(out / name),
    )


if __name__ == "__main__":
    raise SystemExit(main())
