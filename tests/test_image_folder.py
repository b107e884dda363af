"""Image folders: real JPEG/PNG/BMP/GIF files, the resize rule, errors naming the file, splits."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluation import image_folder
from recipes import folder_data

SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif"}


def write_image(path: Path, array: np.ndarray, image_format: str = "PNG", mode=None) -> Path:
    """Writes `array` (HxWx3 uint8) as a real image file, optionally converted to `mode`."""
    image = Image.fromarray(array)
    if mode is not None:
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=image_format)
    return path


def write_class_tree(root: Path, counts: dict[str, int], size=(24, 40), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    formats = list(SUFFIX)
    for name, count in counts.items():
        for i in range(count):
            fmt = formats[i % len(formats)]
            array = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            write_image(root / name / f"{i:03d}{SUFFIX[fmt]}", array, fmt)
    return root


def decode(path: Path, size: int) -> np.ndarray:
    folder = image_folder.ImageFolder(path.parent, ("x",), (str(path),), (0,))
    return next(image_folder.image_dataset(folder, size).as_numpy_iterator())[0]


def test_scan_orders_classes_and_files_and_ignores_other_files(tmp_path):
    write_class_tree(tmp_path, {"dog": 2, "cat": 3})
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "cat" / ".hidden.png").write_bytes(b"")
    (tmp_path / ".cache").mkdir()
    folder = image_folder.scan_image_folder(tmp_path)
    assert folder.class_names == ("cat", "dog")
    assert [Path(f).relative_to(tmp_path).as_posix() for f in folder.files] == [
        "cat/000.jpg", "cat/001.png", "cat/002.bmp", "dog/000.jpg", "dog/001.png",
    ]  # fmt: skip
    assert folder.labels == (0, 0, 0, 1, 1)
    # A model's classes.json order wins, and may hold classes the folder lacks.
    mapped = image_folder.scan_image_folder(tmp_path, ["bird", "dog", "cat"])
    assert mapped.labels == (2, 2, 2, 1, 1)


@pytest.mark.parametrize("image_format", ["PNG", "BMP", "GIF"])
def test_lossless_formats_decode_to_the_exact_pixels(tmp_path, image_format):
    rng = np.random.default_rng(1)
    # GIF stores a palette: 8 grey levels survive exactly.
    array = (rng.integers(0, 8, (16, 16, 1)) * 32).astype(np.uint8).repeat(3, axis=-1)
    path = write_image(tmp_path / f"a{SUFFIX[image_format]}", array, image_format)
    np.testing.assert_array_equal(decode(path, 16), array)


def test_jpeg_grayscale_and_rgba_become_rgb(tmp_path):
    rng = np.random.default_rng(2)
    array = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    jpeg = write_image(tmp_path / "a.jpg", array, "JPEG")
    expected = np.asarray(Image.open(jpeg).convert("RGB"))
    # The accurate IDCT decodes exactly as PIL does (TF's default INTEGER_FAST does not).
    np.testing.assert_array_equal(decode(jpeg, 16), expected)
    gray = write_image(tmp_path / "g.png", array, "PNG", mode="L")
    decoded = decode(gray, 16)
    np.testing.assert_array_equal(decoded[..., 0], np.asarray(Image.open(gray)))
    np.testing.assert_array_equal(decoded[..., 0], decoded[..., 2])
    rgba = write_image(tmp_path / "t.png", array, "PNG", mode="RGBA")
    np.testing.assert_array_equal(decode(rgba, 16), array)  # alpha dropped, colours kept


def test_resize_rule_is_shorter_side_then_centre_square(tmp_path):
    # 10 x 30: the shorter side is already 10, so no resampling: the centre columns 10..19.
    array = np.zeros((10, 30, 3), np.uint8)
    array[:, :, 0] = np.arange(30, dtype=np.uint8)[None, :] * 8
    array[:, :, 1] = np.arange(10, dtype=np.uint8)[:, None] * 20
    path = write_image(tmp_path / "wide.png", array)
    np.testing.assert_array_equal(decode(path, 10), array[:, 10:20])
    # 30 x 60 -> 10 x 20 with an antialiased (triangle) filter, as PIL's BILINEAR reduces; then
    # the centre 10 x 10. PIL rounds in fixed point: one grey level apart at most.
    array = np.random.default_rng(3).integers(0, 256, (30, 60, 3)).astype(np.uint8)
    path = write_image(tmp_path / "big.png", array)
    expected = np.asarray(Image.open(path).resize((20, 10), Image.Resampling.BILINEAR))[:, 5:15]
    assert np.abs(decode(path, 10).astype(int) - expected).max() <= 1


def test_every_folder_mistake_names_the_file_or_folder(tmp_path):
    with pytest.raises(ValueError, match=f"image folder not found: {tmp_path / 'nope'}"):
        image_folder.scan_image_folder(tmp_path / "nope")
    empty_root = tmp_path / "root"
    empty_root.mkdir()
    with pytest.raises(ValueError, match="holds no class folders"):
        image_folder.scan_image_folder(empty_root)
    write_class_tree(tmp_path / "data", {"cat": 2})
    (tmp_path / "data" / "dog").mkdir()
    (tmp_path / "data" / "dog" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"class folder .*dog has no images \(it holds 1 other"):
        image_folder.scan_image_folder(tmp_path / "data")
    (tmp_path / "data" / "dog" / "broken.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match=r"cannot read image .*dog/broken\.jpg"):
        image_folder.scan_image_folder(tmp_path / "data")
    tiff = tmp_path / "data" / "dog" / "broken.jpg"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tiff, format="TIFF")
    with pytest.raises(ValueError, match=r"broken\.jpg is a TIFF image; allowed formats"):
        image_folder.scan_image_folder(tmp_path / "data")
    with pytest.raises(ValueError, match=r"\['cat'\] in .* are not classes of the model"):
        image_folder.scan_image_folder(tmp_path / "data" / ".." / "data", ["dog"])


def test_stratified_split_keeps_each_class_share_and_is_seeded():
    labels = np.repeat([0, 1, 2], [50, 20, 3])
    train, val, test = folder_data.stratified_split(labels, 0.2, 0.1, seed=7)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(len(labels)))
    for split, shares in ((val, (10, 4, 1)), (test, (5, 2, 0))):
        assert np.bincount(labels[split], minlength=3).tolist() == list(shares)
    again = folder_data.stratified_split(labels, 0.2, 0.1, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    other = folder_data.stratified_split(labels, 0.2, 0.1, seed=8)
    assert not np.array_equal(val, other[1])
    # A class of one image stays in training.
    assert folder_data.stratified_split(np.array([0]), 0.5, 0.5, 0)[0].tolist() == [0]


def test_split_layout_reads_given_splits_and_splits_val_off_train(tmp_path):
    write_class_tree(tmp_path / "train", {"a": 10, "b": 10})
    write_class_tree(tmp_path / "test", {"b": 2}, seed=1)
    splits = folder_data.scan_splits(tmp_path, val_fraction=0.2, test_fraction=0.5, seed=0)
    assert [len(splits[n]) for n in ("train", "val", "test")] == [16, 4, 2]
    assert splits["test"].labels == (1, 1)  # b is class 1 of train's (a, b)
    write_class_tree(tmp_path / "val", {"c": 1})
    with pytest.raises(ValueError, match=r"\['c'\] in .*val are not classes"):
        folder_data.scan_splits(tmp_path, 0.2, 0.1, 0)


def test_empty_split_names_the_option(tmp_path):
    write_class_tree(tmp_path, {"a": 3, "b": 3})
    with pytest.raises(ValueError, match=r"the val split of .* is empty: raise --val-fraction"):
        folder_data.scan_splits(tmp_path, 0.0, 0.2, 0)


def test_folder_splits_stream_uint8_images_with_statistics(tmp_path):
    write_class_tree(tmp_path, {"a": 5, "b": 5}, size=(30, 20))
    splits = folder_data.load_image_folder(
        tmp_path, image_size=16, val_fraction=0.2, test_fraction=0.2
    )
    images = np.stack([x for x, _ in splits.train.as_numpy_iterator()])
    assert images.shape == (6, 16, 16, 3) and images.dtype == np.uint8
    assert (splits.train_size, splits.val_size, splits.test_size) == (6, 2, 2)
    assert splits.class_names == ("a", "b")
    pixels = images.reshape(-1, 3).astype(np.float64)  # the sample covers all 6 images
    np.testing.assert_allclose(splits.mean, pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(splits.std, pixels.std(axis=0), rtol=1e-12)
