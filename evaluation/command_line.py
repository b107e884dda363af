"""What every command line of the package shares: one-line errors, fast help, quiet TensorFlow.

A user's mistake is a `UserError`: the command prints `error: ...` on one line and exits with 2,
without a traceback, before any work starts wherever it can be checked then. Anything else is a bug
of ours and keeps its traceback. This module imports no TensorFlow: `--help` answers without it,
and TensorFlow's C++ logging is turned down (unless the user set TF_CPP_MIN_LOG_LEVEL) before
TensorFlow is first imported.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


class UserError(Exception):
    """A mistake in the user's arguments or files: shown as one `error:` line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and each option's default shown once in --help."""

    def __init__(self, prog: str, description: str, **kwargs):
        super().__init__(
            prog=prog, description=description, formatter_class=_HelpFormatter, **kwargs
        )

    def error(self, message: str):
        raise UserError(f"{message} (see {self.prog} --help)")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends `(default: X)` when an option has a default and its help does not name one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        shown = bool(action.option_strings) and not (
            default is None or default is False or default is argparse.SUPPRESS
        )
        if shown and "default" not in text and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """-v (TensorFlow's logs and more detail) and -q (results and errors only)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow's logs too")
    group.add_argument("-q", "--quiet", action="store_true", help="print results and errors only")


def verbosity(args: argparse.Namespace) -> int:
    """0 with -q, 2 with -v, else 1."""
    return 0 if getattr(args, "quiet", False) else 2 if getattr(args, "verbose", False) else 1


def quiet_tensorflow(level: int = 1) -> None:
    """Imports TensorFlow without its C++ log lines, unless -v or the user set TF_CPP_MIN_LOG_LEVEL.

    TF_CPP_MIN_LOG_LEVEL=3 hides TensorFlow's own logging, but the CUDA-enabled wheel still
    prints absl lines while it loads ("Could not find cuda drivers ...") on every CPU machine;
    they come from C++ before any Python logger exists, so the import runs with the process's
    stderr pointed at /dev/null (restored afterwards, also when the import fails).
    """
    if level >= 2 or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    quiet_python_loggers(level)


def quiet_python_loggers(level: int = 1) -> None:
    """TensorFlow's and absl's Python loggers at ERROR unless -v."""
    if level >= 2:
        return
    import logging

    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


def interactive() -> bool:
    """Whether output goes to a terminal (live progress bars) or is redirected (one line each)."""
    return sys.stdout.isatty()


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _bounded_int(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _bounded_int(text, 0)


def _bounded_int(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return value


def check_output_folder(path: str | Path, option: str = "--out") -> Path:
    """A folder that can be created or written, checked without writing anything.

    Raises:
        UserError: `path` is a file, or its nearest existing folder is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: no permission to write in {existing}")
    return path


def check_existing_file(path: str | Path, option: str) -> Path:
    """Raises UserError unless `path` is an existing file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{option}: file not found: {path}")
    return path


@contextlib.contextmanager
def user_errors(*types: type[BaseException], prefix: str = "") -> Iterator[None]:
    """Turns the given exception types (ValueError by default) into `UserError`s.

    Args:
        types: exception types that mean the user's input is wrong at this point.
        prefix: put before the message, e.g. the option name.
    """
    caught = types or (ValueError,)
    try:
        yield
    except UserError:
        raise
    except caught as error:
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        raise UserError(prefix + ("; ".join(lines) or type(error).__name__)) from None


def run_command(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    """Runs a command's main: a UserError becomes one `error:` line and exit code 2."""
    try:
        return main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
