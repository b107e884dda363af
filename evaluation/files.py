"""Atomic, umask-respecting file writes shared by the reports, the recipes and the exports.

A result is written to a temporary file in the same folder and renamed into place, so a reader never
sees half a file and a crash leaves the previous version. `tempfile` creates files 0600; results are
meant to be read by others, so the final mode is 0666 minus the process umask, like `open()` gives.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process umask.

    Linux reports it in /proc/self/status; elsewhere it can only be read by setting it, which
    leaves an instant in which another thread would create files with a umask of 0.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes `data` to `path` atomically with mode 0666 & ~umask; returns the path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def publish(partial: str | Path, path: str | Path) -> Path:
    """Gives a finished file (written by a library to `partial`) the umask's mode, renames it."""
    os.chmod(partial, 0o666 & ~current_umask())
    os.replace(partial, path)
    return Path(path)
