"""`python -m recipes.folder DATA_DIR`: a ResNet on your own images, then its robustness report.

DATA_DIR is `DATA_DIR/{train,val,test}/<class>/<image>` (a missing val/ or test/ is split off
train) or `DATA_DIR/<class>/<image>`, split into train / validation / test by seeded, stratified
fractions. JPEG, PNG, BMP and GIF of any size; grayscale and RGBA become RGB. Every image is
resized by one rule (shorter side to --image-size, then the centre square) and streamed from disk.
The run directory's model.keras takes RGB images (uint8 or 0..255) and returns probabilities;
evaluate it on other images with `python -m evaluation RUN/model.keras --data folder:DIR`.
"""

from __future__ import annotations

from collections.abc import Sequence

from evaluation.command_line import fraction, run_command
from recipes.cli import ARCHITECTURES, config_from_args, recipe_parser, run_recipe, start

PROG = "python -m recipes.folder"
DEFAULTS = {
    "policy": "basic",
    "batch_size": 64,
    "image_size": 224,
    "weight_decay": 1e-6,
    "epochs": {False: 60, True: 25},
    "learning_rate": {False: 1e-3, True: 5e-4},
    "freeze_bn": {False: False, True: False},
    "out": "runs/folder",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the recipe; returns the exit code."""
    return run_command(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = recipe_parser(PROG, __doc__, ("none", "supervised", "barlow"), DEFAULTS)
    parser.add_argument("data_dir", metavar="DATA_DIR", help="the image folder (see above)")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="resnet18", help="the network")
    parser.add_argument(
        "--val-fraction",
        type=fraction,
        default=0.1,
        help="share of each class held out for validation, when there is no val/ folder",
    )
    parser.add_argument(
        "--test-fraction",
        type=fraction,
        default=0.1,
        help="share of each class held out for testing, when there is no test/ folder",
    )
    args = parser.parse_args(argv)
    level = start(args)
    config = config_from_args(args, "folder", args.arch, DEFAULTS)

    def load():
        from recipes.folder_data import load_image_folder

        return load_image_folder(
            args.data_dir,
            image_size=args.image_size,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            seed=args.seed,
        )

    return run_recipe(config, load, args.restart, level)


if __name__ == "__main__":
    raise SystemExit(main())
