"""CLI: python -m evaluation MODEL.keras --data {pathmnist,pets,npz:PATH,tfds:NAME} --out DIR"""

from __future__ import annotations

import argparse
import pathlib
import sys

PREPROCESS = {
    "none": None,
    "unit": lambda x: x / 255.0,
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "pathmnist": ((0.7405, 0.5330, 0.7058), (0.1237, 0.1768, 0.1244)),
}


def _preprocess(name: str):
    import tensorflow as tf

    spec = PREPROCESS[name]
    if spec is None or callable(spec):
        return None if spec is None else (lambda x: spec(tf.cast(x, tf.float32)))
    mean, std = (tf.constant(v, tf.float32) for v in spec)
    return lambda x: (tf.cast(x, tf.float32) / 255.0 - mean) / std


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation",
        description="Evaluate a Keras classifier under the study's shifts, ImageNet-C corruptions "
        "and translations; writes report.json, report.md and PNG plots.",
    )
    p.add_argument("model", help="path to a .keras model file")
    p.add_argument("--data", required=True, help="pathmnist | pets | npz:PATH | tfds:NAME")
    p.add_argument("--suite", default="study", help="comma list of study, imagenet-c, consistency")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--data-dir", default=None, help="where the data set files are")
    p.add_argument(
        "--preprocess",
        default="none",
        choices=sorted(PREPROCESS),
        help="normalisation applied after the shift (default none: float 0..255)",
    )
    p.add_argument("--from-logits", action="store_true", help="the model outputs logits")
    p.add_argument(
        "--corruptions",
        default="common",
        help="corruption subset (common, extra, all, noise, ...) or comma list of names",
    )
    p.add_argument("--severities", default="1,2,3,4,5", help="comma list of severities 1..5")
    p.add_argument("--brightness", default=None, help="comma list overriding the factors")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N batches")
    p.add_argument("--baseline", default=None, help="report.json of a run to use as mCE baseline")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from evaluation import corruptions, runner
    from evaluation.data import load_dataset
    from evaluation.report import Report

    suites = runner.parse_suites(args.suite)
    names = runner.corruption_list(args.corruptions)
    try:
        severities = [int(s) for s in args.severities.split(",")]
    except ValueError as err:
        raise ValueError(f"--severities must be integers in 1..5, got {args.severities!r}") from err
    for n in names:
        for s in severities:
            corruptions.check_corruption(n, s)
    model_path = pathlib.Path(args.model)
    if not model_path.is_file():
        raise ValueError(f"model file not found: {model_path}")
    import keras

    model = keras.models.load_model(model_path, compile=False)
    image_size = model.input_shape[1] or 224
    dataset, name = load_dataset(args.data, args.data_dir, args.batch_size, image_size)
    if args.limit:
        dataset = dataset.take(args.limit)
    factors = [float(f) for f in args.brightness.split(",")] if args.brightness else None
    baseline = Report.from_json(args.baseline).baseline_errors() if args.baseline else None
    report = runner.evaluate(
        model,
        dataset,
        suites,
        _preprocess(args.preprocess),
        from_logits=args.from_logits,
        dataset_name=name,
        brightness_factors=factors,
        corruptions=names,
        severities=severities,
        seed=args.seed,
    )
    paths = report.save(args.out, baseline=baseline)
    print(report.to_markdown(baseline))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
