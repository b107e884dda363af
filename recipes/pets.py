"""`python -m recipes.pets`: ResNet-50 on Oxford-IIIT Pets (37 classes), as the reference study.

Study defaults: 224 px, AdamW, 25 epochs from pretrained weights (ImageNet or Barlow Twins, the
backbone at a 10x smaller learning rate) and 120 from scratch; then accuracy and RMS calibration
under blur (sigma 0.3-0.9) and brightness (0.6-1.4).
"""

from __future__ import annotations

from recipes.cli import config_from_args, recipe_parser, run_recipe
from recipes.datasets import load_pets

DEFAULTS = {
    "policy": "basic",
    "batch_size": 64,
    "image_size": 224,
    "weight_decay": 1e-6,
    "epochs": {False: 120, True: 25},
    "learning_rate": {False: 1e-3, True: 5e-4},
    "freeze_bn": {False: False, True: False},
    "out": "runs/pets",
}


def main(argv: list[str] | None = None) -> int:
    """Runs the recipe; returns the exit code."""
    parser = recipe_parser(__doc__.splitlines()[0], ("none", "supervised", "barlow"), DEFAULTS)
    parser.add_argument("--val-fraction", type=float, default=0.1, help="of train, for validation")
    parser.add_argument("--download", action="store_true", help="let TFDS download and prepare")
    args = parser.parse_args(argv)
    if args.weights and args.pretrain == "none":
        parser.error("--weights needs --pretrain supervised or barlow")
    config = config_from_args(args, "pets", "resnet50", DEFAULTS)
    splits = load_pets(
        data_dir=args.data_dir,
        image_size=args.image_size,
        val_fraction=args.val_fraction,
        seed=args.seed,
        download=args.download,
    )
    return run_recipe(config, splits)


if __name__ == "__main__":
    raise SystemExit(main())
