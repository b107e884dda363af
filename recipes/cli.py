"""Command-line plumbing shared by `python -m recipes.pets` and `python -m recipes.pathmnist`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import keras

from recipes import resnet
from recipes.datasets import DataSplits
from recipes.train import TrainConfig, run
from recipes.weights import load_weights

# (architecture, --pretrain) -> the known weights it loads when --weights is not given.
PRETRAINED_WEIGHTS = {
    ("resnet18", "supervised"): "torchvision-resnet18-imagenet",
    ("resnet50", "supervised"): "torchvision-resnet50-imagenet",
    ("resnet50", "barlow"): "barlowtwins-resnet50",
}
ARCHITECTURES = {"resnet18": resnet.resnet18, "resnet50": resnet.resnet50}


def recipe_parser(
    description: str, pretrain_choices: tuple[str, ...], defaults: dict
) -> argparse.ArgumentParser:
    """The options every recipe takes; `defaults` holds the recipe's study defaults."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--pretrain", choices=pretrain_choices, default="none", help="initial weights"
    )
    parser.add_argument(
        "--weights", help="checkpoint file or known weights name (default: per --pretrain)"
    )
    parser.add_argument(
        "--antialias",
        type=int,
        choices=range(1, 8),
        metavar="K",
        help="BlurPool filter size (Zhang 2019); default: none",
    )
    parser.add_argument(
        "--policy",
        default=defaults["policy"],
        help="augmentation preset name, policy YAML file, or 'none'",
    )
    parser.add_argument("--epochs", type=int, help="default: the study's (per --pretrain)")
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"])
    parser.add_argument("--image-size", type=int, help=f"default: {defaults['image_size']}")
    parser.add_argument(
        "--learning-rate",
        type=float,
        help="head learning rate; default: the study's (per --pretrain)",
    )
    parser.add_argument(
        "--backbone-lr-factor",
        type=float,
        default=0.1,
        help="backbone LR = factor x head LR when pretrained",
    )
    parser.add_argument("--weight-decay", type=float, default=defaults["weight_decay"])
    parser.add_argument("--schedule", choices=("constant", "step", "cosine"), default="constant")
    parser.add_argument(
        "--freeze-bn",
        action=argparse.BooleanOptionalAction,
        help="freeze BatchNorm; default: the study's",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=("auto", "on", "off"),
        default="auto",
        help="auto: mixed_float16 when a GPU is visible",
    )
    parser.add_argument(
        "--strategy",
        choices=("auto", "mirrored", "default"),
        default="auto",
        help="auto: MirroredStrategy when several GPUs are visible",
    )
    parser.add_argument(
        "--steps-per-epoch", type=int, help="default: one pass over the training split"
    )
    parser.add_argument(
        "--eval-limit", type=int, help="use only the first N validation/test examples"
    )
    parser.add_argument(
        "--suite", default="study", help="evaluation suites after training, e.g. study,imagenet-c"
    )
    parser.add_argument("--data-dir", help="where the data set is (or goes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=defaults["out"], help="run directory; run again to resume")
    return parser


def config_from_args(
    args: argparse.Namespace, recipe: str, architecture: str, defaults: dict
) -> TrainConfig:
    """Resolves the per-`--pretrain` defaults into a complete configuration."""
    pretrained = args.pretrain != "none"
    return TrainConfig(
        recipe=recipe,
        architecture=architecture,
        pretrain=args.pretrain,
        weights=args.weights or PRETRAINED_WEIGHTS.get((architecture, args.pretrain)),
        antialias=args.antialias,
        policy=args.policy,
        epochs=args.epochs or defaults["epochs"][pretrained],
        batch_size=args.batch_size,
        image_size=args.image_size or defaults["image_size"],
        learning_rate=args.learning_rate or defaults["learning_rate"][pretrained],
        backbone_lr_factor=args.backbone_lr_factor,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        freeze_bn=defaults["freeze_bn"][pretrained] if args.freeze_bn is None else args.freeze_bn,
        mixed_precision=args.mixed_precision,
        strategy=args.strategy,
        steps_per_epoch=args.steps_per_epoch,
        eval_limit=args.eval_limit,
        suite=args.suite,
        seed=args.seed,
        data_dir=args.data_dir,
        out=args.out,
    )


def resnet_builder(config: TrainConfig, num_classes: int) -> Callable[[], keras.Model]:
    """A function building the configured ResNet (logits output) with its pretrained weights."""

    def build() -> keras.Model:
        model = ARCHITECTURES[config.architecture](
            num_classes,
            input_shape=(config.image_size, config.image_size, 3),
            antialias=config.antialias,
            classifier_activation=None,
        )
        if config.pretrain != "none":
            load_weights(model, config.weights)
        return model

    return build


def run_recipe(config: TrainConfig, splits: DataSplits) -> int:
    """Trains and evaluates one recipe; returns the process exit code."""
    keras.utils.set_random_seed(config.seed)
    run(config, splits, resnet_builder(config, splits.num_classes))
    print(f"Run directory: {config.out}")
    return 0
