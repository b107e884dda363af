"""Two worker processes on 127.0.0.1 train the pathMNIST recipe like one process does; a killed
worker stops the other within a bound, and running the same commands again resumes."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
# The strategy must exist before the recipe loads its data (MultiWorkerMirroredStrategy needs an
# untouched TensorFlow runtime): create it first, then run the recipe's command line.
RECIPE = """
import sys
import recipes.pathmnist as recipe
from recipes import train
original = recipe.run_recipe
def run_recipe(config, *args, **kwargs):
    train.distribution_strategy(config)
    return original(config, *args, **kwargs)
recipe.run_recipe = run_recipe
sys.exit(recipe.main(sys.argv[1:]))
"""
LOST_WORKER_BOUND_S = 90


def write_learnable_npz(folder: Path, counts=(64, 16, 16), size=28, seed=0) -> Path:
    """pathmnist.npz in MedMNIST's layout; the colour tells the class (learnable, not chaos)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), counts, strict=True):
        labels = rng.integers(0, 9, count)
        colour = np.stack([labels * 25, 255 - labels * 25, (labels * 80) % 256], 1)[:, None, None]
        noise = rng.normal(0, 40, (count, size, size, 3))
        images = np.clip(colour + noise, 0, 255).astype(np.uint8)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels[:, None].astype(np.uint8)
    np.savez_compressed(folder / "pathmnist.npz", **arrays)
    return folder / "pathmnist.npz"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_learnable_npz(folder)
    return folder


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _command(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", RECIPE, "--data-dir", str(data_dir), "--no-download",
            "--batch-size", "16", "--eval-limit", "8", "--learning-rate", "1e-4", "--out",
            str(out), *extra]  # fmt: skip


def _start(command: list[str], log: Path, env: dict[str, str] = ENV) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)


def _workers(
    data_dir: Path,
    out: Path,
    *extra: str,
    second: tuple[Path, tuple[str, ...]] | None = None,
    env: dict[str, str] = ENV,
) -> list[subprocess.Popen]:
    """Worker 0 and 1 on free local ports; `second` gives worker 1 another (out, extra)."""
    cluster = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    settings = [(out, extra), second or (out, extra)]
    return [
        _start(
            _command(
                data_dir,
                run,
                *options,
                "--strategy",
                "multi-worker",
                "--cluster",
                cluster,
                "--task-index",
                str(index),
            ),
            out.parent / f"{out.name}-worker{index}.log",
            env,
        )
        for index, (run, options) in enumerate(settings)
    ]


def _finish(processes: list[subprocess.Popen], timeout: float) -> list[int]:
    """Exit codes; every process still running at the deadline is killed by its PID."""
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()


def _float64_env(folder: Path) -> dict[str, str]:
    """ENV with a keras.json whose floatx is float64 (the recipes then train in float64)."""
    (folder / "keras.json").write_text('{"floatx": "float64", "backend": "tensorflow"}')
    return {**ENV, "KERAS_HOME": str(folder)}


@contextlib.contextmanager
def _float64() -> Iterator[None]:
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def _logits(run: Path, images: np.ndarray) -> np.ndarray:
    """The last checkpoint's float64 ResNet-18 logits on `images` (normalised like the recipe)."""
    from recipes import resnet

    with np.load(run / "checkpoint" / "last.npz") as saved, _float64():
        model = resnet.resnet18(9, input_shape=(28, 28, 3), classifier_activation=None)
        for index, variable in enumerate(model.variables):
            value = saved[f"model_{index:05d}"]
            assert value.dtype == variable.dtype == "float64"  # trained in float64
            variable.assign(value)
        return np.asarray(model(images, training=False))


def _history(run: Path) -> list[dict]:
    with (run / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


# Equality is checked in float64 (floatx from a keras.json), the same code as float32. In float32
# the first epoch's loss agrees to 1e-5, but then AdamW (epsilon 1e-8, as the study used) amplifies
# rounding: its step lr * m / (sqrt(v) + eps) is about +-lr for a weight whose gradient is rounding
# noise of order eps, so a few of the 11M weights move by lr in one run and not in the other. That
# spread is chance (measured on float32 logits: 1e-4 to 1.8e-2 after 2-4 epochs; one process
# splitting the same batch over 2 replicas spreads as far). In float64 the rounding sits far below
# eps and the logits agree to 4e-14 (measured), so 1e-4 fails only on a real difference: a
# mis-keyed augmentation, a wrong shard or per-replica BatchNorm changes the loss by 1e-2.
LOSS_TOLERANCE = 1e-6  # history.csv holds float32 sums
LOGITS_TOLERANCE = 1e-4


@pytest.mark.parametrize("policy", ["none", "mixup"])
def test_two_workers_train_the_model_one_process_trains(tmp_path, data_dir, policy):
    env = _float64_env(tmp_path)
    extra = ("--policy", policy, "--epochs", "3", "--steps-per-epoch", "2")
    processes = _workers(data_dir, tmp_path / "two", *extra, env=env)
    processes.append(
        _start(
            _command(data_dir, tmp_path / "one", *extra, "--strategy", "default"),
            tmp_path / "one.log",
            env,
        )
    )
    codes = _finish(processes, timeout=900)
    logs = {p.name: p.read_text()[-3000:] for p in tmp_path.glob("*.log")}
    assert codes == [0, 0, 0], logs
    assert "Training on 2 device(s) in 2 worker(s)" in logs["two-worker0.log"]
    assert "Epoch" not in logs["two-worker1.log"]  # progress on the chief only
    two, one = _history(tmp_path / "two"), _history(tmp_path / "one")
    assert len(two) == len(one) == 3
    for a, b in zip(two, one, strict=True):
        for key in ("loss", "val_loss"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=LOSS_TOLERANCE), (key, a, b)
    images = np.load(data_dir / "pathmnist.npz")["test_images"][:16].astype("float64")
    images = (images - images.mean((0, 1, 2))) / images.std((0, 1, 2))
    two, one = _logits(tmp_path / "two", images), _logits(tmp_path / "one", images)
    assert np.max(np.abs(two - one)) <= LOGITS_TOLERANCE * np.max(np.abs(one))
    assert {p.name for p in (tmp_path / "two").iterdir()} == {
        p.name for p in (tmp_path / "one").iterdir()
    }


def test_a_killed_worker_stops_the_other_and_the_same_commands_resume(tmp_path, data_dir):
    epochs, out = 5, tmp_path / "run"
    extra = ("--policy", "none", "--epochs", str(epochs), "--steps-per-epoch", "4")
    state = out / "checkpoint" / "state.json"
    chief, worker = _workers(data_dir, out, *extra)
    try:
        deadline = time.monotonic() + 600
        while not state.exists() and chief.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.exists(), (out.parent / "run-worker0.log").read_text()[-3000:]
        os.kill(worker.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        code = chief.wait(timeout=LOST_WORKER_BOUND_S + 30)
        stopped_after = time.monotonic() - killed_at
    finally:
        _finish([chief, worker], timeout=1)
    log = (out.parent / "run-worker0.log").read_text()
    assert code != 0 and "lost contact with another worker" in log, log[-3000:]
    assert stopped_after < LOST_WORKER_BOUND_S, stopped_after
    done = len(_history(out))
    assert 1 <= done < epochs

    # A worker started with another configuration (in a fresh folder) is refused by both.
    refused = _workers(data_dir, out, *extra, second=(tmp_path / "other", (*extra[:-1], "3")))
    assert 0 not in _finish(refused, timeout=300)
    for index in range(2):
        log = (out.parent / f"run-worker{index}.log").read_text()
        assert "(steps_per_epoch differ from the chief's)" in log, log[-3000:]
    assert len(_history(out)) == done

    codes = _finish(_workers(data_dir, out, *extra), timeout=900)
    log = (out.parent / "run-worker0.log").read_text()
    assert codes == [0, 0], log[-3000:]
    assert f"Resuming {out} after epoch {done}." in log
    assert "Epoch 1/" not in log
    assert [int(row["epoch"]) for row in _history(out)] == list(range(epochs))
