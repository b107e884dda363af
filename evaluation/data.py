"""Test-set loaders for the CLI's --data (self-contained: evaluation never imports recipes).

Every loader returns unbatched `(uint8 HxWx3 image, int64 label)` at the model's input size and
works offline; data that is not on disk raises a ValueError saying what to get and where to put it.
Images of another size are resized by the one rule the recipes train with (shorter side, then the
centre square: `image_folder.resize_and_center_crop`), so a recipe's `model.keras` evaluated here
sees exactly the test images its own report saw.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from evaluation import image_folder

MEDMNIST_RECORD = "https://zenodo.org/records/10519652/files/"
NPZ_KEYS = (("x_test", "y_test"), ("test_images", "test_labels"))
DATA_FORMS = "pathmnist, pets, npz:PATH, folder:DIR, tfds:NAME"


def default_medmnist_dir() -> Path:
    """Where MedMNIST files are looked for (and downloaded to): `$KERAS_HOME/datasets/medmnist`,
    `~/.keras/datasets/medmnist` when KERAS_HOME is unset."""
    keras_home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(keras_home) / "datasets" / "medmnist"


def medmnist_filename(name: str, size: int) -> str:
    """MedMNIST's file name: `pathmnist.npz` for 28 px, `pathmnist_{size}.npz` otherwise."""
    return f"{name}.npz" if size == 28 else f"{name}_{size}.npz"


@dataclasses.dataclass(frozen=True)
class TestData:
    """A loaded test set: unbatched examples, the study name for the brightness factors
    ("pathmnist", "pets" or None), and what reports call it."""

    dataset: tf.data.Dataset
    study_name: str | None
    display_name: str


def _as_rgb(images: np.ndarray, source: str) -> np.ndarray:
    """(N, H, W), (N, H, W, 1), (N, H, W, 3) or (N, H, W, 4) uint8 -> (N, H, W, 3)."""
    if images.dtype != np.uint8:
        raise ValueError(f"{source}: images must be uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{source}: images have shape {images.shape}; expected (N, H, W) or (N, H, W, C) "
            "with C 1 (grayscale), 3 (RGB) or 4 (RGBA)"
        )
    if images.shape[-1] == 1:
        return np.repeat(images, 3, axis=-1)
    return images[..., :3]


def _from_arrays(images: np.ndarray, labels: np.ndarray, image_size: int, source: str):
    images = _as_rgb(np.asarray(images), source)
    if images.shape[1:3] != (image_size, image_size):
        raise ValueError(
            f"{source} holds {images.shape[1]}x{images.shape[2]} images; the model takes "
            f"{image_size}x{image_size} (evaluate a model trained at that size, or resize the data)"
        )
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if len(labels) != len(images):
        raise ValueError(f"{source}: {len(images)} images but {len(labels)} labels")
    return tf.data.Dataset.from_tensor_slices((images, labels))


def load_npz(path: str | Path, image_size: int) -> tf.data.Dataset:
    """An .npz with x_test/y_test or test_images/test_labels (MedMNIST's layout)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"npz file not found: {path}")
    try:
        arrays = np.load(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npz file: {error}") from None
    with arrays:
        for image_key, label_key in NPZ_KEYS:
            if image_key in arrays and label_key in arrays:
                return _from_arrays(arrays[image_key], arrays[label_key], image_size, str(path))
        raise ValueError(f"{path} has keys {sorted(arrays)}; expected one of {NPZ_KEYS}")


def find_pathmnist(data_dir: str | Path | None, image_size: int) -> Path:
    """The pathMNIST file for `image_size` in `data_dir` (default: `default_medmnist_dir()`)."""
    filename = medmnist_filename("pathmnist", image_size)
    folder = Path(data_dir) if data_dir else default_medmnist_dir()
    if not (folder / filename).is_file():
        raise ValueError(
            f"{filename} not found in {folder}; download {MEDMNIST_RECORD}{filename} and put it "
            "there (or pass --data-dir with the folder that holds it)"
        )
    return folder / filename


def load_tfds(name: str, data_dir, image_size: int, split: str = "test") -> tf.data.Dataset:
    """A TFDS data set prepared in data_dir (no download), resized by the recipes' rule."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # tfds raises its own DatasetNotFoundError subclasses
        raise ValueError(f"unknown TFDS data set {name!r}: {err}") from None
    if not builder.is_prepared():
        raise ValueError(
            f"TFDS data set {name!r} is not prepared in {builder.data_dir!s}; on a machine with "
            f"network run `tfds build {name}`, copy the data folder here and pass --data-dir"
        )
    dataset = builder.as_dataset(split=split, as_supervised=True)

    def prepare(image, label):
        return image_folder.resize_and_center_crop(image, image_size), tf.cast(label, tf.int64)

    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class _Request:
    rest: str  # what follows the prefix: a path or a name
    data_dir: str | None
    image_size: int
    class_names: Sequence[str] | None


def _pathmnist(request: _Request) -> TestData:
    path = find_pathmnist(request.data_dir, request.image_size)
    return TestData(load_npz(path, request.image_size), "pathmnist", f"pathmnist ({path})")


def _pets(request: _Request) -> TestData:
    dataset = load_tfds("oxford_iiit_pet", request.data_dir, request.image_size)
    return TestData(dataset, "pets", "pets (TFDS oxford_iiit_pet, test)")


def _npz(request: _Request) -> TestData:
    return TestData(load_npz(request.rest, request.image_size), None, request.rest)


def _folder(request: _Request) -> TestData:
    folder = image_folder.scan_image_folder(request.rest, request.class_names)
    dataset = image_folder.image_dataset(folder, request.image_size)
    return TestData(dataset, None, f"{request.rest} ({len(folder)} images)")


def _tfds(request: _Request) -> TestData:
    dataset = load_tfds(request.rest, request.data_dir, request.image_size)
    return TestData(dataset, None, f"TFDS {request.rest} (test)")


# --data spec, or "prefix:", -> its loader.
LOADERS: dict[str, Callable[[_Request], TestData]] = {
    "pathmnist": _pathmnist,
    "pets": _pets,
    "npz:": _npz,
    "folder:": _folder,
    "tfds:": _tfds,
}


def check_data_spec(spec: str) -> str:
    """Returns `spec` when its form is known (nothing is read); ValueError otherwise."""
    for prefix in LOADERS:
        if spec == prefix or (
            prefix.endswith(":") and spec.startswith(prefix) and spec[len(prefix) :]
        ):
            return spec
    raise ValueError(f"unknown --data {spec!r}; allowed: {DATA_FORMS}")


def load_dataset(
    spec: str,
    data_dir: str | None = None,
    image_size: int = 224,
    class_names: Sequence[str] | None = None,
) -> TestData:
    """--data spec -> the unbatched test set at `image_size`.

    Args:
        spec: "pathmnist", "pets", "npz:PATH", "folder:DIR" or "tfds:NAME".
        data_dir: where pathmnist / TFDS data sets are.
        image_size: the model's input size.
        class_names: the model's classes (`classes.json`), mapping a folder's class names.
    """
    check_data_spec(spec)
    for prefix, loader in LOADERS.items():
        if spec == prefix or (prefix.endswith(":") and spec.startswith(prefix)):
            return loader(_Request(spec[len(prefix) :], data_dir, image_size, class_names))
    raise AssertionError("unreachable: check_data_spec accepted the spec")
