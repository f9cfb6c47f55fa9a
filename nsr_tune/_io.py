"""Atomic file writes, so that a reader (MLflow, a browser, a resumed study) never sees half a file;
and strict JSON, which every JSON reader (JSON.parse, jq) accepts.

JSON has no NaN or infinity. What nsr-tune writes holds `null` where a number is missing (a
metric that is undefined, such as the precision of a class nothing was predicted as) and the
strings "inf" and "-inf" for an infinite one (the median adversarial eps where most beats
survive the largest eps). `numbers` turns them back into floats.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_write", "numbers", "strict_json", "write_json"]

_INFINITE = {"inf": math.inf, "-inf": -math.inf}


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


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def strict_json(data: Any, *, indent: int | None = None) -> str:
    """``data`` as strict JSON: NaN as null, infinities as "inf" and "-inf"."""
    return json.dumps(_finite(data), indent=indent, allow_nan=False)


def numbers(data: Any) -> Any:
    """What `strict_json` wrote, with its numbers back: null as NaN, "inf" and "-inf" as infinities.

    Only for data whose every null is a missing number (metrics, evaluation results).
    """
    if data is None:
        return math.nan
    if isinstance(data, str):
        return _INFINITE.get(data, data)
    if isinstance(data, dict):
        return {k: numbers(v) for k, v in data.items()}
    if isinstance(data, list):
        return [numbers(v) for v in data]
    return data


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """``data`` as indented strict JSON, atomically."""
    text = strict_json(data, indent=2) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))
