"""`python -m recipes.pathmnist`: ResNet-18 on pathMNIST (9 tissue classes), as the reference study.

Study defaults (its report's best runs): 28 px images, AdamW (weight decay 1e-6), batch 256,
60 epochs, flips + rotation + MixUp 0.3; from scratch at learning rate 1e-3, or from ImageNet
weights at 5e-4 for the head and 5e-5 for the backbone with frozen BatchNorm.
"""

from __future__ import annotations

from recipes.cli import config_from_args, recipe_parser, run_recipe
from recipes.datasets import load_pathmnist

SIZES = (28, 64, 128, 224)
DEFAULTS = {
    "policy": "mixup",
    "batch_size": 256,
    "image_size": 28,
    "weight_decay": 1e-6,
    "epochs": {False: 60, True: 60},
    "learning_rate": {False: 1e-3, True: 5e-4},
    "freeze_bn": {False: False, True: True},
    "out": "runs/pathmnist",
}


def main(argv: list[str] | None = None) -> int:
    """Runs the recipe; returns the exit code."""
    parser = recipe_parser(__doc__.splitlines()[0], ("none", "supervised"), DEFAULTS)
    parser.add_argument("--size", type=int, choices=SIZES, default=28, help="MedMNIST file size")
    parser.add_argument("--no-download", action="store_true", help="never download the .npz")
    args = parser.parse_args(argv)
    if args.weights and args.pretrain == "none":
        parser.error("--weights needs --pretrain supervised")
    if args.image_size not in (None, args.size):
        parser.error(f"pathMNIST images are --size px ({args.size}); pick the size with --size")
    args.image_size = args.size
    config = config_from_args(args, "pathmnist", "resnet18", DEFAULTS)
    splits = load_pathmnist(size=args.size, data_dir=args.data_dir, download=not args.no_download)
    return run_recipe(config, splits)


if __name__ == "__main__":
    raise SystemExit(main())
