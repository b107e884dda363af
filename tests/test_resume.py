"""A recipe killed with SIGKILL resumes where it stopped; AugMix JSD and stability training on
two mirrored replicas (logical CPUs)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.test_multiworker import write_learnable_npz

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
SHAPES = [
    "--models", "cnn", "--image-size", "32", "--train-size", "64", "--test-size", "32",
    "--batch-size", "16",
]  # fmt: skip


def _shapes_command(out: Path, epochs: int, steps: int) -> list[str]:
    return [sys.executable, "-m", "recipes.shapes", *SHAPES, "--epochs", str(epochs),
            "--steps-per-epoch", str(steps), "--out", str(out)]  # fmt: skip


def _history_epochs(run: Path) -> list[int]:
    with (run / "history.csv").open() as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_run_killed_with_sigkill_resumes_losing_at_most_one_epoch(tmp_path):
    epochs, run = 6, tmp_path / "cnn"
    state = run / "checkpoint" / "state.json"
    process = subprocess.Popen(
        _shapes_command(tmp_path, epochs, steps=40), cwd=ROOT, env=ENV,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    output = process.communicate()[0]
    assert state.exists(), output
    done_before_kill = json.loads(state.read_text())["epoch"]
    assert 1 <= done_before_kill < epochs, "the run finished before it could be killed"

    resumed = subprocess.run(
        _shapes_command(tmp_path, epochs, steps=40), cwd=ROOT, env=ENV,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Resuming {run} after epoch {done_before_kill}." in resumed.stdout
    assert f"Epoch {done_before_kill + 1}/{epochs}" in resumed.stdout
    assert "Epoch 1/" not in resumed.stdout
    assert _history_epochs(run) == list(range(epochs))
    assert json.loads(state.read_text())["epoch"] == epochs
    assert (tmp_path / "shapes.md").exists()


MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from recipes import cli, train
from recipes.datasets import load_pathmnist
config = train.TrainConfig(
    "pathmnist", "resnet18", policy="augmix-jsd", stability="gaussian:0.04", strategy="mirrored",
    epochs=1, steps_per_epoch=2, batch_size=8, eval_limit=8, data_dir=sys.argv[1], out=sys.argv[2],
)
splits = load_pathmnist(size=28, data_dir=sys.argv[1], download=False)
train.run(config, splits, cli.resnet_builder(config, splits.num_classes))
"""


def test_augmix_jsd_and_stability_train_on_two_mirrored_replicas(tmp_path):
    # Each replica holds whole (clean, aug1, aug2) triplets and its rows' noisy copies.
    write_learnable_npz(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(tmp_path), str(tmp_path / "run")],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Training on 2 device(s) in 1 worker(s)" in result.stdout
    (row,) = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert 0 < float(row["loss"]) < 50 and 0 <= float(row["val_accuracy"]) <= 1
    assert (tmp_path / "run" / "model.keras").exists()
