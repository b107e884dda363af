"""A folder of images in class folders (`ROOT/<class>/<image>`), streamed from disk.

Scanning checks every file's header (format, size) with PIL before any work starts, so an
unreadable or unsupported file is named at once instead of failing a TensorFlow op mid-run (TF's
decode errors do not say which file). Decoding then runs in `tf.data` (`tf.io.decode_image`), so
memory does not grow with the data set. JPEG, PNG, BMP and GIF (its first frame) of any size are
read; grayscale and palette images become RGB and an alpha channel is dropped. Every image is
resized by one rule, used in training and evaluation alike: shorter side to the target size
(antialiased bilinear), then the centre square.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

#: File suffixes read as images (case-insensitive); other files are ignored.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
#: PIL format names the decoder accepts (MPO: JPEGs written by some cameras).
IMAGE_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF")


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """The images of a class-folder tree: `files[i]` has label `labels[i]`.

    `class_names[k]` names label k; labels index `class_names`, which may list classes the
    folder does not hold (when they come from a model's `classes.json`).
    """

    root: Path
    class_names: tuple[str, ...]
    files: tuple[str, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, indices: Sequence[int]) -> ImageFolder:
        """The images at `indices`, in that order, with the same class names."""
        return dataclasses.replace(
            self,
            files=tuple(self.files[i] for i in indices),
            labels=tuple(self.labels[i] for i in indices),
        )


def _check_image(path: Path) -> None:
    """Reads the header only: a file PIL cannot identify, or of another format, is refused."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image_format, size = image.format, image.size
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from None
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"{path} is a {image_format} image; allowed formats: JPEG, PNG, BMP, GIF")
    if min(size) < 1:
        raise ValueError(f"{path} has no pixels (size {size})")


def class_folders(root: str | Path) -> list[Path]:
    """The class folders of `root` (sorted; hidden ones skipped), checked to exist.

    Raises:
        ValueError: `root` is not a folder or holds no class folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image folder not found: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{root} holds no class folders; expected {root}/<class>/<image>")
    return folders


def _images_in(folder: Path) -> list[Path]:
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        others = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        found = f" (it holds {len(others)} other files, e.g. {others[0]})" if others else ""
        raise ValueError(
            f"class folder {folder} has no images{found}; allowed: {', '.join(IMAGE_SUFFIXES)}"
        )
    return files


def scan_image_folder(
    root: str | Path, class_names: Sequence[str] | None = None, *, check_files: bool = True
) -> ImageFolder:
    """Lists `root/<class>/<image>` and checks every image's header.

    Args:
        root: the folder holding one sub-folder per class.
        class_names: the label order to use (e.g. a model's `classes.json`); every class folder
            must be one of them. Default: the sorted folder names.
        check_files: read each image's header (format, size) now.

    Returns:
        The files in a fixed order (class folders sorted, files sorted within each).

    Raises:
        ValueError: a missing folder, an empty class folder, an unknown class, or an unreadable
            image, each naming the file or folder.
    """
    folders = class_folders(root)
    names = tuple(class_names) if class_names is not None else tuple(p.name for p in folders)
    index = {name: k for k, name in enumerate(names)}
    unknown = [p.name for p in folders if p.name not in index]
    if unknown:
        raise ValueError(
            f"class folder(s) {unknown} in {root} are not classes of the model; "
            f"allowed: {list(names)}"
        )
    files, labels = [], []
    for folder in folders:
        for path in _images_in(folder):
            if check_files:
                _check_image(path)
            files.append(str(path))
            labels.append(index[folder.name])
    return ImageFolder(Path(root), names, tuple(files), tuple(labels))


def resize_and_center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resizes the shorter side to `size` (antialiased bilinear), crops the centre, uint8 out."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(size, tf.float32) / tf.reduce_min(shape)
    new_shape = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), size)
    resized = tf.image.resize(image, new_shape, method="bilinear", antialias=True)
    top = (new_shape[0] - size) // 2
    left = (new_shape[1] - size) // 2
    cropped = resized[top : top + size, left : left + size]
    cropped = tf.ensure_shape(cropped, (size, size, 3))
    return tf.cast(tf.clip_by_value(tf.round(cropped), 0, 255), tf.uint8)


def decode_rgb(contents: tf.Tensor) -> tf.Tensor:
    """Encoded JPEG/PNG/BMP/GIF bytes -> uint8 HxWx3 (first GIF frame, alpha dropped).

    JPEGs use the accurate integer IDCT, as PIL (and so torchvision) decodes them; TF's default,
    INTEGER_FAST, differs from PIL by about one grey level on average.
    """
    image = tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )
    return tf.ensure_shape(image, (None, None, 3))


def image_dataset(folder: ImageFolder, image_size: int) -> tf.data.Dataset:
    """Unbatched `(uint8 image_size x image_size x 3, int64 label)`, in `folder`'s order.

    Files are read and decoded as the pipeline pulls them (parallel, order kept).
    """
    paths = tf.data.Dataset.from_tensor_slices(
        (list(folder.files), np.asarray(folder.labels, np.int64))
    )

    def load(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = decode_rgb(tf.io.read_file(path))
        return resize_and_center_crop(image, image_size), label

    return paths.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def channel_stats(
    folder: ImageFolder, image_size: int, sample: int = 256, seed: int = 0
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0..255 units) of a seeded sample of up to `sample` images."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.permutation(len(folder))[:sample])
    pixels = np.concatenate(
        [
            image.reshape(-1, 3).astype(np.float64)
            for image, _ in image_dataset(folder.subset(chosen), image_size).as_numpy_iterator()
        ]
    )
    return tuple(pixels.mean(axis=0).tolist()), tuple(pixels.std(axis=0).tolist())
