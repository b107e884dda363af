"""Test-set loaders for the CLI's --data (self-contained: evaluation never imports recipes).

All loaders return a tf.data.Dataset of (uint8 NHWC batch, int64 labels) and work offline; when the
data is not on disk they raise a ValueError saying what to download and where to put it.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import tensorflow as tf

MEDMNIST_URL = "https://zenodo.org/records/10519652/files/pathmnist.npz"
NPZ_KEYS = (("x_test", "y_test"), ("test_images", "test_labels"))


def _from_arrays(images: np.ndarray, labels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)


def load_npz(path, batch_size: int = 128) -> tf.data.Dataset:
    """An .npz with x_test/y_test or test_images/test_labels (MedMNIST's layout)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"npz file not found: {path}")
    with np.load(path) as data:
        for xk, yk in NPZ_KEYS:
            if xk in data and yk in data:
                return _from_arrays(data[xk], data[yk], batch_size)
        raise ValueError(f"{path} has keys {sorted(data)}; expected one of {NPZ_KEYS}")


def load_pathmnist(data_dir=None, batch_size: int = 128) -> tf.data.Dataset:
    """PathMNIST (28x28) test split: pathmnist.npz in data_dir, ~/.medmnist or ~/.keras/datasets."""
    dirs = [pathlib.Path(d) for d in (data_dir,) if d] + [
        pathlib.Path.home() / ".medmnist",
        pathlib.Path(os.environ.get("KERAS_HOME", pathlib.Path.home() / ".keras")) / "datasets",
    ]
    for d in dirs:
        if (d / "pathmnist.npz").is_file():
            return load_npz(d / "pathmnist.npz", batch_size)
    raise ValueError(
        f"pathmnist.npz not found in {[str(d) for d in dirs]}; download it from {MEDMNIST_URL} "
        "and put it in one of those folders (or pass --data-dir)"
    )


def _resize_center_crop(image_size: int):
    def fn(image, label):
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = tf.cast(round(image_size * 256 / 224), tf.float32) / tf.reduce_min(shape)
        new = tf.cast(tf.round(shape * scale), tf.int32)
        image = tf.image.resize(image, new, antialias=True)
        image = tf.image.resize_with_crop_or_pad(image, image_size, image_size)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    return fn


def load_tfds(
    name: str, data_dir=None, batch_size: int = 128, image_size: int = 224, split: str = "test"
) -> tf.data.Dataset:
    """A TFDS data set prepared in data_dir (no download), resized (256/224) and centre-cropped."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # tfds raises its own DatasetNotFoundError subclasses
        raise ValueError(f"unknown TFDS data set {name!r}: {err}") from err
    if not builder.is_prepared():
        raise ValueError(
            f"TFDS data set {name!r} is not prepared in {builder.data_dir!s}; on a machine with "
            f"network run `tfds build {name}` (or tfds.load({name!r}, data_dir=...)) and copy the "
            "data directory here, then pass --data-dir"
        )
    ds = builder.as_dataset(split=split, as_supervised=True)
    return ds.map(_resize_center_crop(image_size)).batch(batch_size)


def load_dataset(
    spec: str, data_dir=None, batch_size: int = 128, image_size: int = 224
) -> tuple[tf.data.Dataset, str | None]:
    """--data spec -> (dataset, dataset_name for the brightness factors).

    Args:
        spec: "pathmnist", "pets", "npz:PATH" or "tfds:NAME".
    """
    for prefix, (loader, name) in LOADERS.items():
        if spec == prefix or (prefix.endswith(":") and spec.startswith(prefix)):
            return loader(spec[len(prefix) :], data_dir, batch_size, image_size), name
    raise ValueError(f"unknown --data {spec!r}; allowed: pathmnist, pets, npz:PATH, tfds:NAME")


# --data spec (or "prefix:") -> (loader(rest, data_dir, batch_size, image_size), dataset_name)
LOADERS = {
    "pathmnist": (lambda rest, d, b, s: load_pathmnist(d, b), "pathmnist"),
    "pets": (lambda rest, d, b, s: load_tfds("oxford_iiit_pet", d, b, s), "pets"),
    "npz:": (lambda rest, d, b, s: load_npz(rest, b), None),
    "tfds:": (lambda rest, d, b, s: load_tfds(rest, d, b, s), None),
}
