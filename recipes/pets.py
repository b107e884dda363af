"""`python -m recipes.pets`: ResNet-50 on Oxford-IIIT Pets (37 classes), as the reference study.

Study defaults: 224 px, AdamW, 25 epochs from pretrained weights (ImageNet or Barlow Twins, the
backbone at a 10x smaller learning rate) and 120 from scratch; then accuracy and RMS calibration
under blur (sigma 0.3-0.9) and brightness (0.6-1.4).
"""

from __future__ import annotations

from collections.abc import Sequence

from evaluation.command_line import fraction, run_command
from recipes.cli import config_from_args, recipe_parser, run_recipe, start

PROG = "python -m recipes.pets"
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


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the recipe; returns the exit code."""
    return run_command(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = recipe_parser(PROG, __doc__, ("none", "supervised", "barlow"), DEFAULTS)
    parser.add_argument(
        "--data-dir", help="TFDS data folder with oxford_iiit_pet prepared (default: TFDS's own)"
    )
    parser.add_argument(
        "--val-fraction", type=fraction, default=0.1, help="share of train held out for validation"
    )
    parser.add_argument("--download", action="store_true", help="let TFDS download and prepare")
    args = parser.parse_args(argv)
    level = start(args)
    config = config_from_args(args, "pets", "resnet50", DEFAULTS)

    def load():
        from recipes.datasets import load_pets

        return load_pets(
            data_dir=args.data_dir,
            image_size=args.image_size,
            val_fraction=args.val_fraction,
            seed=args.seed,
            download=args.download,
        )

    return run_recipe(config, load, args.restart, level)


if __name__ == "__main__":
    raise SystemExit(main())
