"""Pets and pathMNIST loaders on data in the real formats (TFDS mock data, MedMNIST .npz files)."""

import hashlib

import numpy as np
import pytest
import tensorflow as tf

from recipes import datasets
from tests.test_recipes_cli import write_pathmnist_npz


def _arrays(dataset):
    images, labels = zip(*dataset.as_numpy_iterator(), strict=True)
    return np.stack(images), np.array(labels)


def test_pathmnist_npz_is_read_in_medmnist_layout(tmp_path):
    path = write_pathmnist_npz(tmp_path, counts=(12, 6, 5))
    splits = datasets.load_pathmnist(size=28, data_dir=tmp_path, download=False)
    raw = np.load(path)
    images, labels = _arrays(splits.train)
    np.testing.assert_array_equal(images, raw["train_images"])
    np.testing.assert_array_equal(labels, raw["train_labels"].reshape(-1))
    assert labels.dtype == np.int64 and images.dtype == np.uint8
    assert (splits.train_size, splits.val_size, splits.test_size) == (12, 6, 5)
    assert splits.num_classes == 9 and splits.image_size == 28 and splits.name == "pathmnist"
    pixels = raw["train_images"].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(splits.mean, pixels.mean(0))
    np.testing.assert_allclose(splits.std, pixels.std(0))


def test_pathmnist_sizes_use_medmnist_file_names(tmp_path):
    write_pathmnist_npz(tmp_path, size=64, counts=(2, 2, 2))
    assert datasets.load_pathmnist(size=64, data_dir=tmp_path, download=False).image_size == 64
    with pytest.raises(ValueError, match=r"size must be one of \[28, 64, 128, 224\], got 32"):
        datasets.load_pathmnist(size=32, data_dir=tmp_path)


def test_missing_file_offline_names_file_url_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        datasets.load_pathmnist(data_dir=tmp_path, download=False)
    message = str(error.value)
    assert "pathmnist.npz" in message and str(tmp_path) in message
    assert "zenodo.org/records/10519652/files/pathmnist.npz" in message


@pytest.fixture
def local_record(tmp_path, monkeypatch):
    """A 'Zenodo' folder reached through a file:// URL, holding a valid pathmnist.npz."""
    source = tmp_path / "record"
    source.mkdir()
    path = write_pathmnist_npz(source, counts=(4, 2, 2))
    # A file:// URL keeps Zenodo's query string in the file name.
    path.rename(source / "pathmnist.npz?download=1")
    path = source / "pathmnist.npz?download=1"
    monkeypatch.setattr(datasets, "PATHMNIST_RECORD", source.as_uri() + "/")
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(datasets.PATHMNIST_MD5, 28, md5)
    return tmp_path / "data"


def test_download_is_verified_and_moved_into_place(local_record):
    splits = datasets.load_pathmnist(data_dir=local_record, download=True)
    assert splits.train_size == 4
    assert (local_record / "pathmnist.npz").exists()
    assert not any((local_record / ".partial").iterdir())


def test_download_with_wrong_md5_is_refused_and_not_kept(local_record, monkeypatch):
    monkeypatch.setitem(datasets.PATHMNIST_MD5, 28, "0" * 32)
    with pytest.raises(FileNotFoundError, match=r"could not download pathmnist\.npz"):
        datasets.load_pathmnist(data_dir=local_record, download=True)
    assert not (local_record / "pathmnist.npz").exists()
    assert not (local_record / ".partial" / "pathmnist.npz").exists()


def test_file_that_is_not_medmnist_is_refused(tmp_path):
    np.savez(tmp_path / "pathmnist.npz", images=np.zeros((2, 28, 28, 3), np.uint8))
    with pytest.raises(ValueError, match="not a MedMNIST file: missing keys"):
        datasets.load_pathmnist(data_dir=tmp_path, download=False)


def test_normalizer_and_statistics_choice():
    normalize = datasets.normalizer((10.0, 20.0, 30.0), (2.0, 4.0, 5.0))
    out = normalize(tf.constant([[[[12, 28, 40]]]], tf.uint8))
    np.testing.assert_allclose(out.numpy().reshape(-1), [1.0, 2.0, 2.0])
    np.testing.assert_allclose(np.array(datasets.IMAGENET_MEAN) / 255, [0.485, 0.456, 0.406])
    np.testing.assert_allclose(np.array(datasets.IMAGENET_STD) / 255, [0.229, 0.224, 0.225])


def test_resize_shorter_side_then_center_crop():
    image = tf.constant(np.arange(20 * 40, dtype=np.float32).reshape(20, 40, 1) % 256)
    image = tf.cast(tf.repeat(image, 3, axis=-1), tf.uint8)
    out = datasets.resize_and_center_crop(image, 10).numpy()
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    # Halving both sides, then keeping the central 10 of 20 columns (columns 10..19 of the half).
    expected = tf.image.resize(tf.cast(image, tf.float32), (10, 20), antialias=True)[:, 5:15]
    np.testing.assert_array_equal(out, np.clip(np.round(expected.numpy()), 0, 255))


def test_pets_on_tfds_mock_data_has_seeded_disjoint_validation():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
        splits = datasets.load_pets(image_size=24, val_fraction=0.25, seed=1)
        again = datasets.load_pets(image_size=24, val_fraction=0.25, seed=1)
        other = datasets.load_pets(image_size=24, val_fraction=0.25, seed=2)
        train_images, train_labels = _arrays(splits.train)
        val_images, _ = _arrays(splits.val)
        np.testing.assert_array_equal(val_images, _arrays(again.val)[0])
        assert not np.array_equal(val_images, _arrays(other.val)[0])
    assert (splits.train_size, splits.val_size) == (15, 5)
    assert train_images.shape == (15, 24, 24, 3) and val_images.shape == (5, 24, 24, 3)
    assert train_images.dtype == np.uint8 and train_labels.dtype == np.int64
    assert splits.num_classes == 37 and splits.name == "pets"
    # No validation image is also a training image.
    train_set = {image.tobytes() for image in train_images}
    assert not any(image.tobytes() in train_set for image in val_images)


def test_pets_not_prepared_offline_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="tfds build oxford_iiit_pet"):
        datasets.load_pets(data_dir=tmp_path, download=False)


def test_default_folder_is_the_one_the_evaluation_cli_reads(tmp_path, monkeypatch):
    from evaluation.data import find_pathmnist

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    folder = tmp_path / "home" / "datasets" / "medmnist"
    folder.mkdir(parents=True)
    write_pathmnist_npz(folder, counts=(2, 2, 2))
    splits = datasets.load_pathmnist(download=False)  # no data_dir: Keras 3.15 has no keras_home()
    assert splits.source == str(folder / "pathmnist.npz")
    assert find_pathmnist(None, 28) == folder / "pathmnist.npz"
    assert splits.class_names[0] == "adipose" and len(splits.class_names) == 9
