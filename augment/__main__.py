"""Command line: ``python -m augment preview POLICY.yaml [--images DIR] --out grid.png``."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from evaluation.command_line import (
    Parser,
    UserError,
    add_verbosity,
    check_output_folder,
    positive_int,
    quiet_tensorflow,
    run_command,
    user_errors,
    verbosity,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _load_folder(folder: Path, count: int, size: int):
    import numpy as np
    from PIL import Image

    if not folder.is_dir():
        raise ValueError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    images = [np.asarray(Image.open(p).convert("RGB").resize((size, size))) for p in files]
    return np.stack(images)


def preview(
    policy_path: str, out: str, images_dir: str | None = None, columns: int = 6, seed: int = 0
) -> Path:
    """Writes a grid: one row per input image, its original then ``columns`` augmented draws."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf

    from augment import load_policy
    from augment.sample_images import sample_images
    from evaluation.files import atomic_write_bytes

    policy = load_policy(policy_path)
    images = _load_folder(Path(images_dir), 4, 128) if images_dir else sample_images(4, 96)
    rows = len(images)
    repeated = np.repeat(images, columns, axis=0)
    labels = np.repeat(np.arange(rows), columns)
    dataset = tf.data.Dataset.from_tensor_slices((repeated, labels))
    num_classes = rows if policy.batch_stages else None
    batch = next(iter(policy.apply(dataset, len(repeated), num_classes=num_classes, seed=seed)))
    augmented = batch[0]
    titles = [""] if not policy.yields_triplets else ["clean", "augmix 1", "augmix 2"]
    if policy.yields_triplets:
        augmented = augmented[1]
    augmented = np.asarray(augmented, dtype=np.float32)
    low, high = policy.value_range
    augmented = np.clip((augmented - low) / (high - low), 0, 1)
    figure, axes = plt.subplots(rows, columns + 1, figsize=(1.6 * (columns + 1), 1.6 * rows))
    for r in range(rows):
        axes[r, 0].imshow(images[r])
        axes[r, 0].set_title("original" if r == 0 else "", fontsize=8)
        for c in range(columns):
            axes[r, c + 1].imshow(augmented[r * columns + c])
        for axis in axes[r]:
            axis.set_axis_off()
    name = Path(policy_path).name
    figure.suptitle(
        f"{name}: {', '.join(s.name for s in policy.image_stages + policy.batch_stages)}"
        + (f" ({titles[1]})" if policy.yields_triplets else ""),
        fontsize=9,
    )
    figure.tight_layout()
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return atomic_write_bytes(out_path, buffer.getvalue())


def build_parser() -> Parser:
    """`python -m augment preview ...` (no TensorFlow imported)."""
    parser = Parser("python -m augment", "Tools for augmentation policies.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    show = commands.add_parser(
        "preview",
        prog="python -m augment preview",
        description="A grid of augmented examples of a policy: each row one image, its "
        "original then COLUMNS augmented draws.",
        help="grid of augmented examples of a policy",
    )
    show.add_argument("policy", help="a policy YAML file or a preset name")
    show.add_argument("--images", help="folder of images (default: built-in sample images)")
    show.add_argument("--out", required=True, help="output PNG file")
    show.add_argument("--columns", type=positive_int, default=6)
    show.add_argument("--seed", type=int, default=0)
    add_verbosity(show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit code."""
    return run_command(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the PNG file to write")
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: the preview is a PNG file (name ending in .png)")
    check_output_folder(out.parent)
    if args.images is not None:
        with user_errors(prefix="--images: "):
            _load_folder(Path(args.images), 4, 128)
    quiet_tensorflow(verbosity(args))
    from augment import load_policy

    with user_errors(prefix=f"policy {args.policy}: "):
        load_policy(args.policy)
    path = preview(args.policy, args.out, args.images, args.columns, args.seed)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
