"""Command-line plumbing shared by `python -m recipes.pets|pathmnist|folder`.

A recipe parses its options without TensorFlow (fast `--help`), then checks everything a user can
get wrong (policy, suite, output folder, weights, cluster, an existing run of another
configuration) before it loads data or trains, so a mistake costs one `error:` line, not a
training run.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

from evaluation.command_line import (
    Parser,
    UserError,
    add_verbosity,
    check_output_folder,
    positive_int,
    quiet_python_loggers,
    quiet_tensorflow,
    user_errors,
    verbosity,
)

# (architecture, --pretrain) -> the known weights it loads when --weights is not given.
PRETRAINED_WEIGHTS = {
    ("resnet18", "supervised"): "torchvision-resnet18-imagenet",
    ("resnet50", "supervised"): "torchvision-resnet50-imagenet",
    ("resnet50", "barlow"): "barlowtwins-resnet50",
}
ARCHITECTURES = ("resnet18", "resnet50")
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
MIN_IMAGE_SIZE = 28


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def image_size(text: str) -> int:
    """argparse type: an image side of at least MIN_IMAGE_SIZE pixels."""
    value = positive_int(text)
    if value < MIN_IMAGE_SIZE:
        raise argparse.ArgumentTypeError(f"expected at least {MIN_IMAGE_SIZE} px, got {value}")
    return value


def recipe_parser(
    prog: str, description: str, pretrain_choices: tuple[str, ...], defaults: dict
) -> Parser:
    """The options every recipe takes; `defaults` holds the recipe's study defaults."""
    p = Parser(prog, description)
    p.add_argument("--pretrain", choices=pretrain_choices, default="none", help="initial weights")
    p.add_argument(
        "--weights", help="checkpoint file or known weights name (default: per --pretrain)"
    )
    p.add_argument(
        "--antialias",
        type=int,
        choices=range(1, 8),
        metavar="K",
        help="BlurPool filter size 1..7 (Zhang 2019) (default: no anti-aliasing)",
    )
    p.add_argument(
        "--policy",
        default=defaults["policy"],
        help="augmentation preset name, policy YAML file, or 'none'",
    )
    epochs = defaults["epochs"]
    p.add_argument(
        "--epochs",
        type=positive_int,
        help=f"(default: {epochs[False]} from scratch, {epochs[True]} pretrained)",
    )
    p.add_argument("--batch-size", type=positive_int, default=defaults["batch_size"])
    if "image_sizes" in defaults:
        p.add_argument(
            "--image-size",
            type=int,
            choices=defaults["image_sizes"],
            default=defaults["image_size"],
            help="image side in pixels",
        )
    else:
        p.add_argument(
            "--image-size", type=image_size, default=defaults["image_size"], help="image side"
        )
    rates = defaults["learning_rate"]
    p.add_argument(
        "--learning-rate",
        type=positive_float,
        help=f"head learning rate (default: {rates[False]} from scratch, {rates[True]} pretrained)",
    )
    p.add_argument(
        "--backbone-lr-factor",
        type=positive_float,
        default=0.1,
        help="backbone LR = factor x head LR when pretrained",
    )
    p.add_argument("--weight-decay", type=float, default=defaults["weight_decay"])
    p.add_argument("--schedule", choices=("constant", "step", "cosine"), default="constant")
    frozen = defaults["freeze_bn"]
    p.add_argument(
        "--freeze-bn",
        action=argparse.BooleanOptionalAction,
        help=f"freeze BatchNorm (default: {'yes' if frozen[False] else 'no'} from scratch, "
        f"{'yes' if frozen[True] else 'no'} pretrained)",
    )
    p.add_argument(
        "--mixed-precision",
        choices=("auto", "on", "off"),
        default="auto",
        help="auto: mixed_float16 when a GPU is visible; off: Keras' floatx (float32 by default)",
    )
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="auto: MirroredStrategy when several GPUs are visible; multi-worker: several "
        "processes or machines (TF_CONFIG, or --cluster and --task-index)",
    )
    p.add_argument("--cluster", help="HOST:PORT,HOST:PORT,... of every worker (multi-worker)")
    p.add_argument("--task-index", type=int, help="this worker's index in --cluster")
    p.add_argument(
        "--steps-per-epoch",
        type=positive_int,
        help="(default: one pass over the training split)",
    )
    p.add_argument(
        "--eval-limit",
        type=positive_int,
        help="use only the first N validation and test examples (default: all)",
    )
    add_fixes_options(p)
    p.add_argument(
        "--suite", default="study", help="evaluation suites after training, e.g. study,imagenet-c"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=defaults["out"], help="run directory; run again to resume")
    p.add_argument(
        "--restart",
        action="store_true",
        help="start the run in --out over (a run of another configuration is refused otherwise)",
    )
    add_verbosity(p)
    return p


def add_fixes_options(p: argparse.ArgumentParser) -> None:
    """--stability and --calibrate: the fixes beyond measuring, for every recipe."""
    p.add_argument(
        "--stability",
        metavar="gaussian:SIGMA[:ALPHA]",
        help="stability training (Zheng 2016): add ALPHA x KL(p(x) || p(x + noise)), noise "
        "N(0, SIGMA^2) on the [0, 1] scale, ALPHA 0.01 unless given, e.g. gaussian:0.04 "
        "(default: off)",
    )
    p.add_argument(
        "--calibrate",
        choices=("none", "clean", "perturbed"),
        default="none",
        help="temperature scaling fitted on the validation split, as it is or under Gaussian "
        "noise of several levels (never the test suite's shifts); saved in model.keras",
    )


def config_from_args(args: argparse.Namespace, recipe: str, architecture: str, defaults: dict):
    """Resolves the per-`--pretrain` defaults into a complete `TrainConfig`."""
    from recipes.train import TrainConfig

    pretrained = args.pretrain != "none"
    if args.weights and not pretrained:
        raise UserError("--weights needs --pretrain (the weights to start from)")
    weights = args.weights or PRETRAINED_WEIGHTS.get((architecture, args.pretrain))
    if pretrained and weights is None:
        known = sorted(p for a, p in PRETRAINED_WEIGHTS if a == architecture)
        raise UserError(
            f"--pretrain {args.pretrain}: no known {architecture} weights; allowed for "
            f"{architecture}: {known}, or pass --weights FILE"
        )
    return TrainConfig(
        recipe=recipe,
        architecture=architecture,
        pretrain=args.pretrain,
        weights=weights,
        antialias=args.antialias,
        policy=args.policy,
        epochs=args.epochs or defaults["epochs"][pretrained],
        batch_size=args.batch_size,
        image_size=args.image_size,
        learning_rate=args.learning_rate or defaults["learning_rate"][pretrained],
        backbone_lr_factor=args.backbone_lr_factor,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        freeze_bn=defaults["freeze_bn"][pretrained] if args.freeze_bn is None else args.freeze_bn,
        mixed_precision=args.mixed_precision,
        strategy=args.strategy,
        cluster=args.cluster,
        task_index=args.task_index,
        stability=args.stability,
        calibrate=args.calibrate,
        steps_per_epoch=args.steps_per_epoch,
        eval_limit=args.eval_limit,
        suite=args.suite,
        seed=args.seed,
        data_dir=getattr(args, "data_dir", None),
        out=args.out,
    )


def start(args: argparse.Namespace) -> int:
    """Quiets TensorFlow before its first import; returns the verbosity level."""
    level = verbosity(args)
    quiet_tensorflow(level)
    return level


def check_config(config, restart: bool) -> None:
    """Checks everything that can be wrong before any data is loaded or anything written.

    Raises:
        UserError: naming the option and the allowed values or the fix.
    """
    from evaluation.runner import parse_suites
    from recipes import train, weights
    from recipes.objectives import parse_stability
    from recipes.run_dir import RunDirectory

    quiet_python_loggers()
    check_output_folder(config.out)
    with user_errors(prefix="--stability: "):
        parse_stability(config.stability)
    with user_errors(prefix=f"--policy {config.policy}: "):
        train.resolve_policy(config.policy)
    with user_errors(prefix="--suite: "):
        if config.suite:
            parse_suites(config.suite)
    if config.mixed_precision != "on":
        with user_errors(prefix=f"--mixed-precision {config.mixed_precision}: "):
            train.full_precision()
    _check_cluster(config)
    if config.weights is not None and config.pretrain != "none":
        if config.weights in weights.known_weights():
            with user_errors(ValueError, OSError, prefix="--weights: "):
                weights.fetch_weights(config.weights)
        elif not _is_file(config.weights):
            raise UserError(
                f"--weights {config.weights}: no such file, and not a known name; known: "
                f"{sorted(weights.known_weights())}"
            )
    with user_errors(prefix=""):
        RunDirectory(config.out, writer=False).check(dataclasses.asdict(config), restart=restart)


def _is_file(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_file()


def _check_cluster(config) -> None:
    import os

    if config.cluster is None:
        if config.task_index is not None:
            raise UserError("--task-index needs --cluster")
        if config.strategy == "multi-worker" and not os.environ.get("TF_CONFIG"):
            raise UserError(
                "--strategy multi-worker needs --cluster and --task-index, or TF_CONFIG"
            )
        return
    if config.strategy != "multi-worker":
        raise UserError("--cluster needs --strategy multi-worker")
    hosts = [h for h in config.cluster.split(",") if h]
    bad = [h for h in hosts if h.rpartition(":")[2].isdigit() is False or not h.rpartition(":")[0]]
    if bad or not hosts:
        raise UserError(f"--cluster: expected HOST:PORT,HOST:PORT,...; got {config.cluster!r}")
    if config.task_index is None or not 0 <= config.task_index < len(hosts):
        raise UserError(f"--task-index must be in 0..{len(hosts) - 1} for {len(hosts)} hosts")


def resnet_builder(config, num_classes: int) -> Callable:
    """A function building the configured ResNet (logits output) with its pretrained weights."""
    from recipes import resnet
    from recipes.weights import load_weights

    builders = {"resnet18": resnet.resnet18, "resnet50": resnet.resnet50}

    def build():
        model = builders[config.architecture](
            num_classes,
            input_shape=(config.image_size, config.image_size, 3),
            antialias=config.antialias,
            classifier_activation=None,
        )
        if config.pretrain != "none":
            load_weights(model, config.weights)
        return model

    return build


def run_recipe(config, load_splits: Callable, restart: bool, level: int) -> int:
    """Checks the configuration, loads the data, trains and evaluates; returns the exit code.

    Args:
        config: the resolved `TrainConfig`.
        load_splits: returns the `DataSplits`; its ValueError / FileNotFoundError are the user's.
        restart: start the run directory over.
        level: verbosity (0 quiet, 1 normal, 2 verbose).
    """
    check_config(config, restart)
    from recipes import train

    # MultiWorkerMirroredStrategy must exist before any other TensorFlow work (loading data).
    train.distribution_strategy(config)
    with user_errors(ValueError, FileNotFoundError, prefix=""):
        splits = load_splits()
    import keras

    keras.utils.set_random_seed(config.seed)
    with engine_errors():
        train.run(
            config, splits, resnet_builder(config, splits.num_classes), restart=restart,
            verbose=level,
        )  # fmt: skip
    if level:
        print(f"Run directory: {config.out}")
    return 0


def engine_errors():
    """The training engine's user-facing failures as one `error:` line each: a run folder of
    another configuration, workers started differently, a worker lost mid-run."""
    from recipes.cluster import WorkerConfigMismatch, WorkerLost
    from recipes.run_dir import RunConfigMismatch

    return user_errors(RunConfigMismatch, WorkerConfigMismatch, WorkerLost, prefix="")
