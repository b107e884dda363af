"""The recipes' data sets: Oxford-IIIT Pets (TFDS) and pathMNIST (MedMNIST `.npz` files).

Every loader returns unbatched `(uint8 HxWx3 image, int64 label)` datasets, not shuffled,
augmented or normalised: augmentation runs on uint8 images and normalisation comes last, as in the
reference study.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from evaluation.data import default_medmnist_dir, medmnist_filename
from evaluation.image_folder import resize_and_center_crop

Stats = tuple[float, float, float]
# ImageNet statistics in [0, 255] units (torchvision's 0.485/0.456/0.406, 0.229/0.224/0.225).
IMAGENET_MEAN: Stats = (123.675, 116.28, 103.53)
IMAGENET_STD: Stats = (58.395, 57.12, 57.375)

PATHMNIST_RECORD = "https://zenodo.org/records/10519652/files/"
# MedMNIST v3 files (Zenodo record 10519652) and their md5, as medmnist's info.py lists them.
PATHMNIST_MD5 = {
    28: "a8b06965200029087d5bd730944a56c1",
    64: "55aa9c1e0525abe5a6b9d8343a507616",
    128: "ac42d08fb904d92c244187169d1fd1d9",
    224: "2c51a510bcdc9cf8ddb2af93af1eadec",
}
# MedMNIST's INFO["pathmnist"]["label"] (NCT-CRC-HE-100K tissue classes), in label order.
PATHMNIST_CLASS_NAMES = (
    "adipose",
    "background",
    "debris",
    "lymphocytes",
    "mucus",
    "smooth muscle",
    "normal colon mucosa",
    "cancer-associated stroma",
    "colorectal adenocarcinoma epithelium",
)
PATHMNIST_CLASSES = len(PATHMNIST_CLASS_NAMES)
PETS_CLASSES = 37
PETS_STATS_SAMPLE = 256


@dataclasses.dataclass(frozen=True)
class DataSplits:
    """Train / validation / test datasets of `(uint8 image, int64 label)` and their facts.

    `mean` and `std` are per-channel statistics of the training images in [0, 255] units;
    `class_names[i]` names label i; `source` says where the data was read from (file or folder).
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    image_size: int
    name: str
    mean: Stats
    std: Stats
    train_size: int
    val_size: int
    test_size: int
    class_names: tuple[str, ...] = ()
    source: str = ""

    @property
    def display_name(self) -> str:
        """What reports call the data: the name and where it was read from."""
        return f"{self.name} ({self.source})" if self.source not in ("", self.name) else self.name


def normalizer(mean: Stats, std: Stats) -> Callable[[tf.Tensor], tf.Tensor]:
    """Returns `x -> (float32(x) - mean) / std` for NHWC images in [0, 255] units."""
    mean_t = tf.constant(mean, tf.float32)
    std_t = tf.constant(std, tf.float32)

    def normalize(images: tf.Tensor) -> tf.Tensor:
        return (tf.cast(images, tf.float32) - mean_t) / std_t

    return normalize


def normalization_stats(splits: DataSplits, pretrained: bool) -> tuple[Stats, Stats]:
    """ImageNet statistics for pretrained weights, the data set's own otherwise (as the study)."""
    return (IMAGENET_MEAN, IMAGENET_STD) if pretrained else (splits.mean, splits.std)


def channel_stats(images: np.ndarray) -> tuple[Stats, Stats]:
    """Per-channel mean and std (0..255 units) of uint8 NHWC images."""
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64)
    return tuple(pixels.mean(axis=0).tolist()), tuple(pixels.std(axis=0).tolist())


def pathmnist_filename(size: int) -> str:
    """MedMNIST's file name: `pathmnist.npz` for 28 px, `pathmnist_{size}.npz` otherwise."""
    if size not in PATHMNIST_MD5:
        raise ValueError(f"pathMNIST size must be one of {sorted(PATHMNIST_MD5)}, got {size}")
    return medmnist_filename("pathmnist", size)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pathmnist_path(
    size: int = 28, data_dir: str | Path | None = None, download: bool = True
) -> Path:
    """The pathMNIST file in `data_dir` (default `evaluation.data.default_medmnist_dir()`, where
    `python -m evaluation --data pathmnist` looks too), fetched if missing.

    A download is moved into place only when its md5 is MedMNIST's.

    Raises:
        FileNotFoundError: the file is missing and cannot be downloaded; says what to get and where.
    """
    filename = pathmnist_filename(size)
    folder = Path(data_dir) if data_dir else default_medmnist_dir()
    path = folder / filename
    if path.exists():
        return path
    url = f"{PATHMNIST_RECORD}{filename}?download=1"
    how = (
        f"download {url} (md5 {PATHMNIST_MD5[size]}) on a machine with a network and put it at "
        f"{path} (or pass --data-dir with the folder that holds {filename})"
    )
    if not download:
        raise FileNotFoundError(f"{filename} is not in {folder}: {how}")
    # keras.utils.get_file writes to its final name and keeps a file whose hash is wrong, so it
    # downloads into a scratch folder here and only a verified file is moved into place.
    partial = folder / ".partial"
    partial.mkdir(parents=True, exist_ok=True)
    try:
        fetched = keras.utils.get_file(
            fname=filename,
            origin=url,
            file_hash=PATHMNIST_MD5[size],
            hash_algorithm="md5",
            cache_dir=str(folder),
            cache_subdir=".partial",
        )
    except Exception as error:  # get_file raises several types for network and hash failures
        (partial / filename).unlink(missing_ok=True)
        raise FileNotFoundError(f"could not download {filename} ({error}); {how}") from error
    os.replace(fetched, path)
    return path


def verify_pathmnist(path: str | Path, size: int) -> None:
    """Raises ValueError when the file's md5 is not MedMNIST's for this size."""
    actual = _md5(Path(path))
    if actual != PATHMNIST_MD5[size]:
        raise ValueError(
            f"{path} has md5 {actual}, not MedMNIST's {PATHMNIST_MD5[size]} for size {size}: "
            "delete it and download it again"
        )


def load_pathmnist(
    *, size: int = 28, data_dir: str | Path | None = None, download: bool = True
) -> DataSplits:
    """pathMNIST (9 tissue classes) from MedMNIST's `.npz` file.

    Args:
        size: 28, 64, 128 or 224 (the file's image size).
        data_dir: folder holding (or receiving) the file.
        download: fetch the file from Zenodo (md5-verified) when it is missing.

    Returns:
        The official train / val / test splits; labels flattened to int64.
    """
    path = pathmnist_path(size, data_dir, download)
    with np.load(path, mmap_mode="r") as arrays:
        missing = {f"{s}_{k}" for s in ("train", "val", "test") for k in ("images", "labels")}
        missing -= set(arrays.files)
        if missing:
            raise ValueError(f"{path} is not a MedMNIST file: missing keys {sorted(missing)}")
        images = {
            s: np.asarray(arrays[f"{s}_images"], dtype=np.uint8) for s in ("train", "val", "test")
        }
        labels = {s: np.asarray(arrays[f"{s}_labels"]).reshape(-1).astype(np.int64) for s in images}
    for split, array in images.items():
        if array.ndim != 4 or array.shape[1:] != (size, size, 3):
            raise ValueError(
                f"{path}: {split}_images has shape {array.shape}, expected (N, {size}, {size}, 3)"
            )
    mean, std = channel_stats(images["train"])
    datasets = {s: tf.data.Dataset.from_tensor_slices((images[s], labels[s])) for s in images}
    return DataSplits(
        **datasets,
        num_classes=PATHMNIST_CLASSES,
        image_size=size,
        name="pathmnist",
        mean=mean,
        std=std,
        train_size=len(labels["train"]),
        val_size=len(labels["val"]),
        test_size=len(labels["test"]),
        class_names=PATHMNIST_CLASS_NAMES,
        source=str(path),
    )


def load_pets(
    *,
    data_dir: str | Path | None = None,
    image_size: int = 224,
    val_fraction: float = 0.1,
    seed: int = 0,
    download: bool = False,
) -> DataSplits:
    """Oxford-IIIT Pets (37 breeds) through TFDS `oxford_iiit_pet`.

    Args:
        data_dir: TFDS data directory holding the prepared data set.
        image_size: output side; shorter side resized to it, then centre-cropped.
        val_fraction: share of `train` held out for validation, chosen by a seeded permutation.
        seed: seed of that permutation.
        download: let TFDS download and prepare the data set (needs a network).

    Raises:
        FileNotFoundError: the data set is not prepared and `download` is False.
    """
    import tensorflow_datasets as tfds

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    try:
        (train_all, test), info = tfds.load(
            "oxford_iiit_pet",
            split=["train", "test"],
            data_dir=None if data_dir is None else str(data_dir),
            as_supervised=True,
            download=download,
            with_info=True,
        )
    except (AssertionError, tfds.core.registered.DatasetNotFoundError, OSError) as error:
        raise FileNotFoundError(
            f"TFDS 'oxford_iiit_pet' is not prepared{'' if data_dir is None else f' in {data_dir}'}"
            f" ({error}). On a machine with a network run `tfds build oxford_iiit_pet --data_dir "
            "DIR` (about 800 MB) and pass --data-dir DIR, or pass --download."
        ) from error
    total = int(train_all.cardinality())
    is_val = np.zeros(total, bool)
    is_val[np.random.default_rng(seed).permutation(total)[: round(val_fraction * total)]] = True
    is_val_t = tf.constant(is_val)

    def keep(want_val: bool):
        def predicate(index, _example):
            return tf.equal(tf.gather(is_val_t, index), want_val)

        return predicate

    def prepare(image, label):
        return resize_and_center_crop(image, image_size), tf.cast(label, tf.int64)

    def split(dataset: tf.data.Dataset) -> tf.data.Dataset:
        return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)

    indexed = train_all.enumerate()
    train = split(indexed.filter(keep(False)).map(lambda _, example: example))
    val = split(indexed.filter(keep(True)).map(lambda _, example: example))
    sample = np.stack([image for image, _ in train.take(PETS_STATS_SAMPLE).as_numpy_iterator()])
    mean, std = channel_stats(sample)
    return DataSplits(
        train=train,
        val=val,
        test=split(test),
        num_classes=PETS_CLASSES,
        image_size=image_size,
        name="pets",
        mean=mean,
        std=std,
        train_size=int(total - is_val.sum()),
        val_size=int(is_val.sum()),
        test_size=int(test.cardinality()),
        class_names=tuple(info.features["label"].names),
        source=f"TFDS oxford_iiit_pet in {info.data_dir}",
    )
