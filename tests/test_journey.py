"""A user's whole path, in fresh processes: own images or pathMNIST -> recipe -> model.keras ->
`python -m evaluation` -> the same report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.test_image_folder import write_image
from tests.test_recipes_cli import write_pathmnist_npz

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "-q"]


def command(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs `python -m ...` from a fresh process, as a user does, from outside the checkout."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the commands quiet TensorFlow themselves
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout,
        env=environment, cwd=ROOT.parent,
    )  # fmt: skip


def check(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def write_mixed_folder(root: Path, seed: int = 0) -> Path:
    """train/val/test of two classes: JPEG and PNG of mixed sizes, one grayscale, one RGBA."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", 10), ("val", 4), ("test", 5)):
        for label, name in enumerate(("bolt", "nut")):
            for i in range(count):
                h, w = rng.integers(24, 70, 2)
                array = rng.integers(0, 120, (h, w, 3), dtype=np.uint8) + 100 * label
                mode = {0: "L", 1: "RGBA"}.get(i) if split == "test" else None
                fmt, suffix = ("JPEG", ".jpg") if i % 2 == 0 and mode is None else ("PNG", ".png")
                write_image(root / split / name / f"{i}{suffix}", array, fmt, mode=mode)
    return root


def same_rows(run_report: Path, cli_report: Path) -> None:
    """Every condition's numbers agree exactly between the run's report and the CLI's."""
    run_rows = json.loads(run_report.read_text())["results"]
    cli_rows = json.loads(cli_report.read_text())["results"]
    assert len(run_rows) == len(cli_rows) == 9
    for run_row, cli_row in zip(run_rows, cli_rows, strict=True):
        assert run_row == cli_row


def test_own_images_train_antialiased_at_32px_then_evaluate_in_a_fresh_process(tmp_path):
    data = write_mixed_folder(tmp_path / "parts")
    run = tmp_path / "run"
    check(command("recipes.folder", str(data), "--antialias", "4", "--image-size", "32",
                  *TRAIN, "--out", str(run)))  # fmt: skip
    assert json.loads((run / "classes.json").read_text()) == {"0": "bolt", "1": "nut"}
    model_file = run / "model.keras"
    assert model_file.stat().st_size < 60e6  # ResNet-18 weights (~45 MB), no optimizer state
    evaluated = tmp_path / "eval"
    result = check(command("evaluation", str(model_file), "--data", f"folder:{data / 'test'}",
                           "--batch-size", "8", "--out", str(evaluated)))  # fmt: skip
    assert "WARNING" not in result.stderr and "cuda" not in result.stderr.lower()
    same_rows(run / "report.json", evaluated / "report.json")
    meta = json.loads((evaluated / "report.json").read_text())["meta"]
    assert str(data / "test") in meta["dataset"]
    # The file alone is a classifier: uint8 RGB in, float32 probabilities out, once `layers`
    # is imported.
    probe = (
        "import keras, numpy as np, layers\n"
        f"m = keras.models.load_model({str(model_file)!r})\n"
        "x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)\n"
        "p = np.asarray(m.predict(x, verbose=0)); q = np.asarray(m(x.astype('float32')))\n"
        "print(p.dtype, p.shape, np.allclose(p.sum(1), 1, atol=1e-5), np.abs(p - q).max() < 1e-6)"
    )
    result = check(_python(probe))
    assert result.stdout.strip().splitlines()[-1] == "float32 (3, 2) True True"


def _python(code: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env=environment, cwd=ROOT.parent,
    )  # fmt: skip


def test_pathmnist_default_folder_recipe_then_cli_reproduce_the_report(tmp_path):
    keras_home = tmp_path / "keras-home"
    folder = keras_home / "datasets" / "medmnist"
    folder.mkdir(parents=True)
    write_pathmnist_npz(folder, counts=(40, 16, 24))
    run = tmp_path / "run"
    env = {"KERAS_HOME": str(keras_home)}
    check(command("recipes.pathmnist", "--no-download", "--antialias", "4", "--policy", "none",
                  *TRAIN, "--out", str(run), env=env))  # fmt: skip
    names = json.loads((run / "classes.json").read_text())
    assert names["0"] == "adipose" and len(names) == 9
    evaluated = tmp_path / "eval"
    check(command("evaluation", str(run / "model.keras"), "--data", "pathmnist",
                  "--batch-size", "8", "--out", str(evaluated), env=env))  # fmt: skip
    same_rows(run / "report.json", evaluated / "report.json")
