"""The run directory: configuration, epoch checkpoint, best weights, history and TensorBoard logs.

Layout of `--out`: `config.yaml` (the resolved configuration), `checkpoint/last.npz` (weights,
optimizer state, epoch and best validation accuracy, replaced atomically after every epoch) with
`checkpoint/state.json` (the same epoch and best, for people and scripts), `best.weights.h5`,
`history.csv` (epoch, accuracy, loss, val_accuracy, val_loss) and `logs/` (TensorBoard scalars in
`logs/train` and `logs/validation`, tags `epoch_loss` / `epoch_accuracy` as Keras writes them).

Only the chief writes: on other workers every method that writes does nothing, so several
processes may share one `--out` on one machine. A run directory is resumed only by the
configuration that started it; `TRAINING_IRRELEVANT_KEYS` lists the settings that may change
between runs because they do not change the trained model.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from evaluation.files import atomic_write_bytes, atomic_write_text, publish

HISTORY_COLUMNS = ("epoch", "accuracy", "loss", "val_accuracy", "val_loss")
# Where the run is written, how many processes train it and where they are, where the data is
# read from, and what is evaluated (validation examples, test suite): none changes the weights
# that training computes for a given configuration, so resuming with other values is allowed.
TRAINING_IRRELEVANT_KEYS = frozenset(
    {"out", "cluster", "task_index", "strategy", "data_dir", "suite", "eval_limit", "calibrate"}
)
# What `restart` removes; `config.yaml` is rewritten.
RUN_OUTPUTS = ("checkpoint", "history.csv", "best.weights.h5", "logs", "report.json", "report.md")


class RunConfigMismatch(ValueError):
    """The run directory holds a run of another configuration."""


def training_settings(config: dict) -> dict:
    """The settings that change the trained model (compared on resume and across workers)."""
    return {key: value for key, value in config.items() if key not in TRAINING_IRRELEVANT_KEYS}


def differing_keys(old: dict, new: dict) -> list[str]:
    """`key: old -> new` for every training setting that differs, in `new`'s key order."""
    old, new = training_settings(old), training_settings(new)
    keys = list(new) + [key for key in old if key not in new]
    return [
        f"{key}: {old.get(key)} -> {new.get(key)}" for key in keys if old.get(key) != new.get(key)
    ]


class RunDirectory:
    """Reads and writes one run directory; `writer=False` (non-chief workers) writes nothing."""

    def __init__(self, path: str | Path, writer: bool = True):
        self.path = Path(path)
        self.writer = writer
        self._summary_writers: dict[str, tf.summary.SummaryWriter] = {}

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint" / "last.npz"

    @property
    def best_path(self) -> Path:
        return self.path / "best.weights.h5"

    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    def check(self, config: dict, restart: bool = False) -> None:
        """Refuses a directory that holds a run of another configuration (unless `restart`).

        Raises:
            RunConfigMismatch: one line listing the training settings that differ.
        """
        saved_path = self.path / "config.yaml"
        if restart or not saved_path.exists():
            return
        changes = differing_keys(yaml.safe_load(saved_path.read_text()) or {}, config)
        if changes:
            raise RunConfigMismatch(
                f"{self.path} holds a run with another configuration ({', '.join(changes)}); "
                "use --restart to start it over or another --out"
            )

    def prepare(self, config: dict, restart: bool = False) -> None:
        """`check`; then the chief removes the old run if `restart` and writes `config.yaml`."""
        self.check(config, restart)
        if not self.writer:
            return
        if restart:
            for name in RUN_OUTPUTS:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def save_checkpoint(
        self, model: keras.Model, optimizer: keras.optimizers.Optimizer, epoch: int, best: float
    ) -> None:
        """Writes weights, optimizer state, the finished epoch count and the best accuracy.

        Variables are stored by position, as Keras' own `.keras` files store optimizer state: the
        configuration check guarantees the same model and optimizer on resume.
        """
        if not self.writer:
            return
        arrays = {f"model_{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(model.variables)}
        arrays |= {
            f"optimizer_{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)
        }
        arrays |= {"epoch": np.int64(epoch), "best": np.float64(best)}
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.checkpoint_path.with_name("partial-last.npz")
        with partial.open("wb") as handle:
            np.savez(handle, **arrays)
        publish(partial, self.checkpoint_path)
        state = {"epoch": epoch, "best": None if np.isinf(best) else best}
        atomic_write_text(self.checkpoint_path.with_name("state.json"), json.dumps(state))

    def load_checkpoint(
        self, model: keras.Model, optimizer: keras.optimizers.Optimizer
    ) -> tuple[int, float] | None:
        """Restores the last checkpoint into `model` and the built `optimizer`.

        Returns:
            (finished epochs, best validation accuracy), or None when there is no checkpoint.
        """
        if not self.checkpoint_path.exists():
            return None
        with np.load(self.checkpoint_path) as saved:
            for prefix, variables in (
                ("model", model.variables),
                ("optimizer", optimizer.variables),
            ):
                names = sorted(name for name in saved.files if name.startswith(f"{prefix}_"))
                if len(names) != len(variables):
                    raise ValueError(
                        f"{self.checkpoint_path} holds {len(names)} {prefix} variables, the "
                        f"{prefix} has {len(variables)}; use --restart to start the run over"
                    )
                for variable, name in zip(variables, names, strict=True):
                    variable.assign(saved[name])
            return int(saved["epoch"]), float(saved["best"])

    def save_best(self, model: keras.Model) -> None:
        """Writes `best.weights.h5` atomically."""
        if not self.writer:
            return
        partial = self.path / "partial.weights.h5"
        model.save_weights(partial)
        publish(partial, self.best_path)

    def trim_history(self, epochs: int) -> None:
        """Keeps the header and the rows of the first `epochs` epochs (rows a crash left behind)."""
        if not self.writer or not self.history_path.exists():
            return
        with self.history_path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) < epochs]
        _write_csv(self.history_path, kept)

    def log_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """Appends a `history.csv` row (0-based epoch, as Keras' CSVLogger) and TensorBoard data."""
        if not self.writer:
            return
        rows = []
        if self.history_path.exists():
            with self.history_path.open(newline="") as handle:
                rows = list(csv.reader(handle))
        rows = rows or [list(HISTORY_COLUMNS)]
        rows.append([str(epoch)] + [repr(float(logs[key])) for key in HISTORY_COLUMNS[1:]])
        _write_csv(self.history_path, rows)
        for split, prefix in (("train", ""), ("validation", "val_")):
            if split not in self._summary_writers:
                folder = str(self.path / "logs" / split)
                self._summary_writers[split] = tf.summary.create_file_writer(folder)
            with self._summary_writers[split].as_default():
                for name in ("loss", "accuracy"):
                    tf.summary.scalar(f"epoch_{name}", logs[prefix + name], step=epoch)
            self._summary_writers[split].flush()


def _write_csv(path: Path, rows: Sequence[Sequence[str]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())
