"""Training progress on the chief: a live bar on a terminal, one plain line per epoch otherwise.

Keras' `Progbar` writes ANSI colour codes even when the output is redirected (and then one line per
update), so redirected output gets our own line per epoch with no escape codes.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import keras


def format_logs(logs: dict[str, float]) -> str:
    """`name: value` pairs as Keras prints them (4 decimals, or scientific below 1e-3)."""
    return " - ".join(
        f"{k}: {v:.4f}" if abs(v) > 1e-3 else f"{k}: {v:.4e}" for k, v in logs.items()
    )


class Progress:
    """Epoch progress; silent when `enabled` is False (non-chief workers, verbose=0).

    Args:
        epochs: the run's total number of epochs.
        steps: training steps per epoch.
        enabled: whether to print anything.
        stream: where to print (default sys.stdout; a TTY gets the live bar).
    """

    def __init__(self, epochs: int, steps: int, enabled: bool = True, stream: TextIO | None = None):
        self.epochs = epochs
        self.steps = steps
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.live = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar: keras.utils.Progbar | None = None
        self._start = 0.0

    def start_epoch(self, epoch: int) -> None:
        """Announces 0-based `epoch`."""
        self._start = time.perf_counter()
        if self.live:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=self.stream, flush=True)
            self._bar = keras.utils.Progbar(self.steps, verbose=1)

    def step(self, step: int, logs: dict[str, float]) -> None:
        """After training step `step` (1-based) with the epoch's running `logs`."""
        if self._bar is not None:
            self._bar.update(step, list(logs.items()))

    def end_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """Prints the epoch's final training and validation numbers."""
        if not self.enabled:
            return
        seconds = time.perf_counter() - self._start
        if self._bar is not None:
            self._bar.update(self.steps, list(logs.items()), finalize=True)
            self._bar = None
            return
        print(
            f"Epoch {epoch + 1}/{self.epochs} - {self.steps} steps - {seconds:.0f}s - "
            + format_logs(logs),
            file=self.stream,
            flush=True,
        )
