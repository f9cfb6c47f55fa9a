"""Atomic file writes: a reader (MLflow, a browser, a resumed study) never sees half a file."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_write", "write_json"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(fh)`` on a hidden sibling of ``path``, then rename it into place.

    The sibling sits in the same directory, so the rename stays on one file system and is
    atomic. It is opened with the ordinary umask, not ``tempfile``'s 0600, which would survive
    the rename and hide the file from a web server or other users. Whatever goes wrong (disk
    full, Ctrl-C), no partial file is left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with tmp.open("wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """``data`` as indented JSON (NaN allowed, as Python's json writes it), atomically."""
    text = json.dumps(data, indent=2, allow_nan=True) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))
