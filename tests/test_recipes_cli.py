"""Each recipe end to end for a step or two, on fixture data in the real formats."""

import json
import os

import keras
import numpy as np
import pytest
import yaml

from recipes import pathmnist, pets, resnet
from recipes.weights import save_state_dict

FAST = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--eval-limit", "16"]
RUN_FILES = {
    "config.yaml", "model.keras", "classes.json", "best.weights.h5", "history.csv", "logs",
    "report.json", "report.md", "checkpoint",
}  # fmt: skip


def write_pathmnist_npz(folder, size=28, counts=(40, 16, 16), num_classes=9, seed=0):
    """A small pathmnist file in MedMNIST's layout: uint8 (N, H, W, 3) images, (N, 1) labels."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), counts, strict=True):
        arrays[f"{split}_images"] = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, num_classes, (count, 1), dtype=np.uint8)
    name = "pathmnist.npz" if size == 28 else f"pathmnist_{size}.npz"
    np.savez_compressed(folder / name, **arrays)
    return folder / name


def torchvision_state_dict(model: keras.Model, num_classes: int, seed: int = 0) -> dict:
    """Random weights and BatchNorm statistics under torchvision's keys and layouts (OIHW)."""
    rng = np.random.default_rng(seed)
    state = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel = rng.normal(0, 0.05, layer.kernel.shape).astype(np.float32)
            state[f"{layer.name}.weight"] = kernel.transpose(3, 2, 0, 1)
        elif isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            ranges = {"weight": (0.5, 1.5), "bias": (-0.2, 0.2), "running_mean": (-0.2, 0.2)}
            for key, (low, high) in (ranges | {"running_var": (0.5, 1.5)}).items():
                state[f"{layer.name}.{key}"] = rng.uniform(low, high, channels).astype(np.float32)
    features = model.get_layer("fc").kernel.shape[0]
    state["fc.weight"] = rng.normal(0, 0.05, (num_classes, features)).astype(np.float32)
    state["fc.bias"] = np.zeros(num_classes, np.float32)
    return state


def assert_run_directory(out, expected_rows=9):
    assert RUN_FILES <= {path.name for path in out.iterdir()}
    report = json.loads((out / "report.json").read_text())
    rows = report["results"]
    assert len(rows) == expected_rows
    assert sorted(row["shift"] for row in rows) == ["blur"] * 4 + ["brightness"] * 4 + ["clean"]
    for row in rows:
        assert 0.0 <= row["accuracy"] <= 1.0
        assert 0.0 <= row["rms_calibration_error"] <= 1.0
    model = keras.models.load_model(out / "model.keras")
    # Self-contained: normalisation, the trained network, softmax; probabilities out.
    assert [layer.name for layer in model.layers][1] == "normalize"
    assert model.layers[-1].name == "probabilities" and model.output.dtype == "float32"
    return network_of(model)


def network_of(model: keras.Model) -> keras.Model:
    """The trained network (logits) inside a recipe's self-contained model."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def test_pathmnist_from_scratch_end_to_end(tmp_path):
    write_pathmnist_npz(tmp_path)
    out = tmp_path / "run"
    code = pathmnist.main(["--data-dir", str(tmp_path), "--no-download", *FAST, "--out", str(out)])
    assert code == 0
    model = assert_run_directory(out)
    assert model.output_shape == (None, 9)
    config = yaml.safe_load((out / "config.yaml").read_text())
    # The study's defaults, as resolved for a run from scratch.
    assert config["policy"] == "mixup" and config["learning_rate"] == 1e-3
    assert config["weight_decay"] == 1e-6 and config["freeze_bn"] is False
    assert config["image_size"] == 28 and config["architecture"] == "resnet18"


def test_pathmnist_pretrained_loads_backbone_and_keeps_frozen_batchnorm(tmp_path):
    write_pathmnist_npz(tmp_path)
    checkpoint = tmp_path / "imagenet.npz"
    reference = resnet.resnet18(1000, input_shape=(28, 28, 3))
    state = torchvision_state_dict(reference, num_classes=1000)
    save_state_dict(state, checkpoint)
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="fc"):
        code = pathmnist.main(
            ["--data-dir", str(tmp_path), "--no-download", "--pretrain", "supervised",
             "--weights", str(checkpoint), *FAST, "--policy", "basic", "--out", str(out)]
        )  # fmt: skip
    assert code == 0
    model = assert_run_directory(out)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["freeze_bn"] is True and config["learning_rate"] == 5e-4
    # Frozen BatchNorm keeps the checkpoint's statistics and affine parameters exactly.
    bn = model.get_layer("layer2.0.bn1")
    np.testing.assert_array_equal(np.asarray(bn.moving_mean), state["layer2.0.bn1.running_mean"])
    np.testing.assert_array_equal(np.asarray(bn.gamma), state["layer2.0.bn1.weight"])
    # The convolutions were loaded, then trained by a few small steps.
    kernel = np.asarray(model.get_layer("layer1.0.conv1").kernel)
    loaded = state["layer1.0.conv1.weight"].transpose(2, 3, 1, 0)
    assert 0 < np.max(np.abs(kernel - loaded)) < 1e-2


def test_pets_end_to_end_on_tfds_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    out = tmp_path / "run"
    with tfds.testing.mock_data(num_examples=24):
        code = pets.main(
            ["--image-size", "32", *FAST, "--batch-size", "4", "--policy", "randaugment",
             "--out", str(out)]
        )  # fmt: skip
    assert code == 0
    model = assert_run_directory(out)
    assert model.output_shape == (None, 37)
    report = json.loads((out / "report.json").read_text())
    levels = sorted(row["level"] for row in report["results"] if row["shift"] == "brightness")
    assert levels == [0.6, 0.8, 1.2, 1.4]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["epochs"] == 1 and config["architecture"] == "resnet50"


@pytest.mark.parametrize("module", [pets, pathmnist])
def test_help_lists_the_contract_options(module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    options = "--pretrain --weights --antialias --policy --epochs --batch-size --image-size"
    for option in [*options.split(), "--data-dir", "--out", "--mixed-precision", "--strategy"]:
        assert option in text


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        (pets, ["--pretrain", "none", "--weights", "x.pth"], "--weights needs --pretrain"),
        (pets, ["--pretrain", "imagenet"], "invalid choice: 'imagenet'"),
        (pathmnist, ["--pretrain", "barlow"], "invalid choice: 'barlow'"),
        (pathmnist, ["--image-size", "32"], "invalid choice: 32"),
        (pathmnist, ["--size", "64"], "unrecognized arguments: --size 64"),
    ],
)
def test_bad_command_lines_fail_with_one_clear_error(module, argv, message, capsys):
    assert module.main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_pathmnist_file_offline_says_where_to_put_it(tmp_path, capsys):
    argv = ["--data-dir", str(tmp_path), "--no-download", "--out", str(tmp_path / "r")]
    assert pathmnist.main(argv) == 2
    error = capsys.readouterr().err
    assert "pathmnist.npz" in error and str(tmp_path) in error and "zenodo" in error
    assert not (tmp_path / "r").exists()


def test_recipe_modules_do_not_leak_into_lower_packages():
    for package in ("layers", "augment", "evaluation"):
        for root, _, files in os.walk(package):
            for name in files:
                if name.endswith(".py"):
                    text = open(os.path.join(root, name)).read()
                    assert "import recipes" not in text and "from recipes" not in text, name


@pytest.fixture
def restore_float32():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_pathmnist_augmix_jsd_under_mixed_precision(tmp_path, restore_float32):
    write_pathmnist_npz(tmp_path)
    out = tmp_path / "run"
    argv = ["--data-dir", str(tmp_path), "--no-download", *FAST, "--policy", "augmix-jsd"]
    assert pathmnist.main([*argv, "--mixed-precision", "on", "--out", str(out)]) == 0
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    model = assert_run_directory(out)
    assert model.get_layer("layer1.0.conv1").compute_dtype == "float16"
    assert model.get_layer("fc").compute_dtype == "float32"
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 2 and "val_accuracy" in history[0]


def test_calibrated_run_saves_the_temperature_and_reports_before_and_after(tmp_path):
    write_pathmnist_npz(tmp_path)
    out = tmp_path / "run"
    argv = ["--data-dir", str(tmp_path), "--no-download", *FAST, "--policy", "none"]
    assert pathmnist.main([*argv, "--calibrate", "perturbed", "--out", str(out)]) == 0
    assert_run_directory(out)
    report = json.loads((out / "report.json").read_text())
    calibration = report["meta"]["calibration"]
    assert calibration["mode"] == "perturbed" and "not the test suite's" in calibration["fitted_on"]
    saved = keras.models.load_model(out / "model.keras")
    assert saved.get_layer("temperature").temperature == calibration["temperature"]
    for row in report["results"]:  # T never changes a prediction
        assert row["uncalibrated"]["accuracy"] == row["accuracy"]
    assert "## Temperature scaling" in (out / "report.md").read_text()
