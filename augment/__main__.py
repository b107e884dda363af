"""Command line: ``python -m augment preview POLICY.yaml [--images DIR] --out grid.png``."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _load_folder(folder: Path, count: int, size: int) -> np.ndarray:
    from PIL import Image

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

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf

    from augment import load_policy
    from augment.sample_images import sample_images

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
    handle, tmp = tempfile.mkstemp(suffix=".png", dir=out_path.parent)
    os.close(handle)
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    os.replace(tmp, out_path)
    return out_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m augment")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("preview", help="grid of augmented examples of a policy")
    show.add_argument("policy", help="a policy YAML file or a preset name")
    show.add_argument("--images", default=None, help="folder of images (default: built-in)")
    show.add_argument("--out", required=True, help="output PNG")
    show.add_argument("--columns", type=int, default=6)
    show.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = preview(args.policy, args.out, args.images, args.columns, args.seed)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
