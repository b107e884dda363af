"""A user's own images as recipe data: `DATA/{train,val,test}/<class>/...` or `DATA/<class>/...`.

With the split layout each split is read as it is (a missing `val` or `test` is split off `train`);
with one class tree, train / validation / test come from seeded, stratified fractions, so every
class keeps its share in every split and the same seed gives the same split. Images stay on disk
and are decoded as training pulls them (`evaluation.image_folder`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluation.image_folder import (
    ImageFolder,
    channel_stats,
    class_folders,
    image_dataset,
    scan_image_folder,
)
from recipes.datasets import DataSplits

SPLITS = ("train", "val", "test")


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train / val / test: per class, round(n * fraction) go to val and to test.

    Each class is permuted by one generator seeded with `seed`, in class order; every class keeps
    at least one training image. Each returned index array is sorted.
    """
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = min(round(len(members) * test_fraction), len(members) - 1)
        n_val = min(round(len(members) * val_fraction), len(members) - 1 - n_test)
        parts[2].extend(members[:n_test])
        parts[1].extend(members[n_test : n_test + n_val])
        parts[0].extend(members[n_test + n_val :])
    return tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in parts)


def _split_layout(root: Path) -> dict[str, Path] | None:
    """{split: folder} when `root` holds only train/val/test folders (train required), else None."""
    names = {p.name for p in class_folders(root)}
    if "train" in names and names <= set(SPLITS):
        return {name: root / name for name in SPLITS if name in names}
    return None


def scan_splits(
    root: str | Path, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, ImageFolder]:
    """The three splits' files, checked (headers read, classes matched), before any training.

    Raises:
        ValueError: a missing or empty folder, an unreadable image, a val/test class that train
            does not have, or an empty split, each naming the folder or file.
    """
    root = Path(root)
    layout = _split_layout(root)
    if layout is None:
        whole = scan_image_folder(root)
        indices = stratified_split(np.asarray(whole.labels), val_fraction, test_fraction, seed)
        splits = {name: whole.subset(i) for name, i in zip(SPLITS, indices, strict=True)}
    else:
        train = scan_image_folder(layout["train"])
        given = {n: scan_image_folder(layout[n], train.class_names) for n in layout if n != "train"}
        indices = stratified_split(
            np.asarray(train.labels),
            0.0 if "val" in given else val_fraction,
            0.0 if "test" in given else test_fraction,
            seed,
        )
        splits = {"train": train.subset(indices[0])}
        for name, index in zip(("val", "test"), indices[1:], strict=True):
            splits[name] = given[name] if name in given else train.subset(index)
    for name, folder in splits.items():
        if len(folder) == 0:
            option = {"val": "--val-fraction", "test": "--test-fraction"}.get(name)
            fix = f"raise {option} or add a {name}/ folder" if option else "add training images"
            raise ValueError(f"the {name} split of {root} is empty: {fix}")
    return splits


def load_image_folder(
    root: str | Path,
    *,
    image_size: int,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> DataSplits:
    """A user's image folder as the recipes' `DataSplits` (uint8 images at `image_size`).

    Args:
        root: `DATA/{train,val,test}/<class>/<image>` or `DATA/<class>/<image>`.
        image_size: output side (shorter side resized to it, then the centre square).
        val_fraction: share of each class held out for validation (when there is no val/).
        test_fraction: share of each class held out for testing (when there is no test/).
        seed: seeds the split and the statistics' sample.
    """
    splits = scan_splits(root, val_fraction, test_fraction, seed)
    train = splits["train"]
    mean, std = channel_stats(train, image_size, seed=seed)
    return DataSplits(
        **{name: image_dataset(folder, image_size) for name, folder in splits.items()},
        num_classes=len(train.class_names),
        image_size=image_size,
        name=Path(root).name or str(root),
        mean=mean,
        std=std,
        train_size=len(train),
        val_size=len(splits["val"]),
        test_size=len(splits["test"]),
        class_names=train.class_names,
        source=str(root),
    )
