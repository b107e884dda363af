"""`python -m recipes.pathmnist`: ResNet-18 on pathMNIST (9 tissue classes), as the reference study.

Study defaults (its report's best runs): 28 px images, AdamW (weight decay 1e-6), batch 256,
60 epochs, flips + rotation + MixUp 0.3; from scratch at learning rate 1e-3, or from ImageNet
weights at 5e-4 for the head and 5e-5 for the backbone with frozen BatchNorm. The MedMNIST file
of the chosen --image-size is read from --data-dir (downloaded there, md5-verified, if missing).
"""

from __future__ import annotations

from collections.abc import Sequence

from evaluation.command_line import run_command
from recipes.cli import config_from_args, recipe_parser, run_recipe, start

PROG = "python -m recipes.pathmnist"
DEFAULTS = {
    "policy": "mixup",
    "batch_size": 256,
    "image_size": 28,
    "image_sizes": (28, 64, 128, 224),  # MedMNIST's files
    "weight_decay": 1e-6,
    "epochs": {False: 60, True: 60},
    "learning_rate": {False: 1e-3, True: 5e-4},
    "freeze_bn": {False: False, True: True},
    "out": "runs/pathmnist",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the recipe; returns the exit code."""
    return run_command(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = recipe_parser(PROG, __doc__, ("none", "supervised"), DEFAULTS)
    parser.add_argument(
        "--data-dir",
        help="folder holding pathmnist.npz / pathmnist_SIZE.npz "
        "(default: $KERAS_HOME/datasets/medmnist, ~/.keras/datasets/medmnist)",
    )
    parser.add_argument("--no-download", action="store_true", help="never download the .npz")
    args = parser.parse_args(argv)
    level = start(args)
    config = config_from_args(args, "pathmnist", "resnet18", DEFAULTS)

    def load():
        from recipes.datasets import load_pathmnist

        return load_pathmnist(
            size=args.image_size, data_dir=args.data_dir, download=not args.no_download
        )

    return run_recipe(config, load, args.restart, level)


if __name__ == "__main__":
    raise SystemExit(main())
