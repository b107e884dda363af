"""`python -m evaluation MODEL.keras --data SPEC --out DIR`: a saved classifier under shift.

Every argument, the model file, the output folder and the data are checked before the
evaluation runs; a mistake is one `error:` line (exit code 2) and nothing is written. A model
saved by the recipes takes RGB images in 0..255 and returns probabilities, and any model holding
this package's layers loads without a flag; `classes.json` beside the model maps a folder's
class names onto the model's outputs.
"""

from __future__ import annotations

import json
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

from evaluation.command_line import (
    Parser,
    UserError,
    add_verbosity,
    check_existing_file,
    check_output_folder,
    interactive,
    non_negative_int,
    positive_int,
    quiet_python_loggers,
    quiet_tensorflow,
    run_command,
    user_errors,
    verbosity,
)

PROG = "python -m evaluation"
# --preprocess: for models that do not normalise inside (ours do): name -> (mean, std) on [0, 1],
# or a scale factor.
PREPROCESS = {
    "none": None,
    "unit": 1 / 255.0,
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "pathmnist": ((0.7405, 0.5330, 0.7058), (0.1237, 0.1768, 0.1244)),
}
CLASSES_FILE = "classes.json"


def build_parser() -> Parser:
    """The command's options (no TensorFlow imported)."""
    p = Parser(PROG, __doc__)
    p.add_argument("model", help="a .keras model file")
    p.add_argument(
        "--data", required=True, help="pathmnist | pets | npz:PATH | folder:DIR | tfds:NAME"
    )
    p.add_argument("--out", required=True, help="output folder for report.json, report.md, plots")
    p.add_argument("--suite", default="study", help="comma list of: study, imagenet-c, consistency")
    p.add_argument("--data-dir", help="folder holding pathmnist / TFDS data (default: their own)")
    p.add_argument(
        "--image-size",
        type=positive_int,
        help="input size for a model that takes any size (default: the model's input size)",
    )
    p.add_argument(
        "--preprocess",
        default="none",
        choices=sorted(PREPROCESS),
        help="normalisation after the shift, for models that do not normalise inside",
    )
    p.add_argument("--from-logits", action="store_true", help="the model outputs logits")
    p.add_argument(
        "--corruptions",
        default="common",
        help="corruption subset (common, extra, all, noise, blur, weather, digital) or names",
    )
    p.add_argument("--severities", default="1,2,3,4,5", help="comma list of severities in 1..5")
    p.add_argument(
        "--brightness", help="comma list of brightness factors (default: the data set's study set)"
    )
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--limit", type=positive_int, help="evaluate only the first N examples")
    p.add_argument("--baseline", help="report.json of another run, the baseline of mCE")
    p.add_argument(
        "--calibrate-on",
        metavar="DATA",
        help="validation data (same forms as --data) to fit a temperature on; the report then "
        "shows calibration before and after (default: no calibration)",
    )
    p.add_argument(
        "--calibrate",
        choices=("clean", "perturbed"),
        default="perturbed",
        help="with --calibrate-on: fit on the data as it is, or under Gaussian noise of several "
        "levels (Tomani et al. 2021; never the test suite's shifts)",
    )
    p.add_argument(
        "--bootstrap",
        type=non_negative_int,
        default=200,
        help="Poisson bootstrap replicates for the 95%% intervals (0: none)",
    )
    p.add_argument(
        "--strategy",
        choices=("auto", "default", "mirrored", "multi-worker"),
        default="default",
        help="evaluate on one device, every local GPU (mirrored) or several processes / machines "
        "(multi-worker: TF_CONFIG, or --cluster and --task-index); only the chief writes",
    )
    p.add_argument("--cluster", help="HOST:PORT,HOST:PORT,... of every worker (multi-worker)")
    p.add_argument("--task-index", type=int, help="this worker's index in --cluster")
    p.add_argument("--seed", type=int, default=0)
    add_verbosity(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit code."""
    return run_command(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    level = verbosity(args)
    quiet_tensorflow(level)
    settings = _check_arguments(args)
    quiet_python_loggers(level)
    from evaluation import distribute

    # A multi-worker strategy must exist before any other TensorFlow work (loading the model).
    with user_errors(prefix="--strategy: "):
        strategy = distribute.make_strategy(args.strategy, args.cluster, args.task_index)
    chief = distribute.is_chief(strategy)
    level = level if chief else 0
    model = load_model(Path(args.model))
    class_names = read_classes(Path(args.model).with_name(CLASSES_FILE))
    image_size = _image_size(model, args.image_size)
    data = _load_data(args, image_size, class_names)
    dataset = data.dataset if args.limit is None else data.dataset.take(args.limit)
    _check_batch(model, dataset, args.data)
    from evaluation import recalibration, runner
    from evaluation.report import Report

    baseline = Report.from_json(args.baseline).baseline_errors() if args.baseline else None
    if level:
        print(f"Evaluating {Path(args.model).name} on {data.display_name} ({args.suite}).")
    start = time.perf_counter()
    calibration = None
    if args.calibrate_on:
        calibration_data = _load_data(args, image_size, class_names, spec=args.calibrate_on)
        calibration = _fit_temperature(args, model, calibration_data, level)
        model_to_report = recalibration.with_temperature(
            model, calibration["temperature"], args.from_logits
        )
    else:
        model_to_report = model

    def evaluate(evaluated_model):
        with user_errors(_decode_error_type(), prefix=f"{args.data}: image not decoded: "):
            return runner.evaluate(
                evaluated_model,
                dataset.batch(args.batch_size),
                settings["suites"],
                _preprocess(args.preprocess),
                from_logits=args.from_logits,
                dataset_name=data.study_name,
                brightness_factors=settings["brightness"],
                corruptions=settings["corruptions"],
                severities=settings["severities"],
                seed=args.seed,
                verbose=int(level > 0 and interactive()),
                bootstrap=args.bootstrap,
                strategy=strategy,
            )

    report = evaluate(model_to_report)
    if calibration is not None:
        report = recalibration.compare(report, evaluate(model), calibration)
    if not chief:
        return 0
    report.meta["dataset"] = data.display_name
    paths = report.save(args.out, baseline=baseline)
    if level:
        print(report.to_markdown(baseline))
        print(f"Evaluated in {time.perf_counter() - start:.1f} s.")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def _check_arguments(args) -> dict:
    """Every argument that can be checked without the model or the data (TF imported here)."""
    from evaluation import corruptions, runner
    from evaluation.data import check_data_spec

    with user_errors(prefix="--suite: "):
        suites = runner.parse_suites(args.suite)
    with user_errors(prefix="--corruptions: "):
        names = runner.corruption_list(args.corruptions)
        if not names:
            raise ValueError("no corruption named")
        for name in names:
            corruptions.check_corruption(name, 1)
    try:
        severities = [int(s) for s in args.severities.split(",")]
    except ValueError:
        raise UserError(f"--severities must be integers in 1..5, got {args.severities!r}") from None
    with user_errors(prefix="--severities: "):
        for severity in severities:
            corruptions.check_corruption(names[0], severity)
    brightness = None
    if args.brightness:
        try:
            brightness = [float(f) for f in args.brightness.split(",")]
        except ValueError:
            raise UserError(f"--brightness must be numbers > 0, got {args.brightness!r}") from None
        if min(brightness) <= 0:
            raise UserError(f"--brightness must be numbers > 0, got {args.brightness!r}")
    with user_errors(prefix="--data: "):
        check_data_spec(args.data)
    if args.calibrate_on:
        with user_errors(prefix="--calibrate-on: "):
            check_data_spec(args.calibrate_on)
    check_existing_file(args.model, "model")
    if args.baseline:
        check_existing_file(args.baseline, "--baseline")
    check_output_folder(args.out)
    return {
        "suites": suites,
        "corruptions": names,
        "severities": severities,
        "brightness": brightness,
    }


def load_model(path: Path):
    """Loads a .keras file with this package's layers registered; a bad file is a UserError."""
    import keras

    import layers  # noqa: F401  (registers BlurPool2D and MaxBlurPool2D for deserialisation)

    _register_optional_layers()
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a Keras model file (.keras files are zip archives)")
    with user_errors(Exception, prefix=f"{path} could not be loaded as a Keras model: "):
        return keras.models.load_model(path, compile=False)


def _register_optional_layers() -> None:
    """Layers of `evaluation` that saved models may hold (temperature scaling)."""
    import importlib.util

    if importlib.util.find_spec("evaluation.calibration") is not None:
        import evaluation.calibration  # noqa: F401


def read_classes(path: Path) -> list[str] | None:
    """`classes.json` ({"0": name, ...}) beside the model, or None when there is none."""
    if not path.is_file():
        return None
    with user_errors(ValueError, KeyError, prefix=f"{path}: "):
        mapping = json.loads(path.read_text())
        return [mapping[str(index)] for index in range(len(mapping))]


def _image_size(model, requested: int | None) -> int:
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 4:
        raise UserError(f"the model takes input of shape {shape}; expected (batch, H, W, 3)")
    if shape[-1] != 3:
        raise UserError(f"the model takes {shape[-1]} channels; evaluation feeds RGB images (3)")
    if shape[1] is not None and shape[1] != shape[2]:
        raise UserError(f"the model takes {shape[1]}x{shape[2]} images; only square sizes work")
    if requested is not None and shape[1] is not None and requested != shape[1]:
        raise UserError(f"--image-size {requested}: the model takes {shape[1]}x{shape[2]} images")
    return requested or shape[1] or 224


def _load_data(args, image_size: int, class_names, spec: str | None = None):
    from evaluation.data import load_dataset

    spec = spec or args.data
    option = "--data" if spec == args.data else "--calibrate-on"
    with user_errors(prefix=f"{option} {spec}: "):
        return load_dataset(spec, args.data_dir, image_size, class_names)


def _fit_temperature(args, model, data, level: int) -> dict:
    """Fits T on `data` (validation images) as `--calibrate` says; the report's entry."""
    from evaluation import recalibration

    if level:
        print(f"Fitting a temperature ({args.calibrate}) on {data.display_name}.")
    logits = recalibration.logits_of(model, _preprocess(args.preprocess), args.from_logits)
    batches = data.dataset.batch(args.batch_size)
    with user_errors(
        _decode_error_type(), ValueError, prefix=f"--calibrate-on {args.calibrate_on}: "
    ):
        temperature, note = recalibration.fit_model_temperature(
            logits, batches, args.calibrate, args.seed
        )
    return recalibration.describe(args.calibrate, temperature, data.display_name, note)


def _check_batch(model, dataset, spec: str) -> None:
    """Reads one example: the data must decode and the labels fit the model's outputs."""
    outputs = model.output_shape[-1]
    with user_errors(_decode_error_type(), prefix=f"--data {spec}: "):
        for _image, label in dataset.take(1):
            if int(label) >= outputs:
                raise UserError(
                    f"--data {spec}: label {int(label)} but the model has {outputs} outputs"
                )
            return
    raise UserError(f"--data {spec}: the data set holds no examples")


def _decode_error_type():
    import tensorflow as tf

    return tf.errors.InvalidArgumentError


def _preprocess(name: str):
    import tensorflow as tf

    spec = PREPROCESS[name]
    if spec is None:
        return None
    if isinstance(spec, float):
        return lambda x: tf.cast(x, tf.float32) * spec
    mean, std = (tf.constant(v, tf.float32) for v in spec)
    return lambda x: (tf.cast(x, tf.float32) / 255.0 - mean) / std


if __name__ == "__main__":
    sys.exit(main())
