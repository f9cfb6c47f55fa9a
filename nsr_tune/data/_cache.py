"""On-disk cache of preprocessed beats.

One ``beats-<fingerprint>.npz`` per distinct input: the fingerprint is a sha256 over the bytes of
every source file read, the settings and the preprocessing version, so a changed file, lead,
record selection or algorithm can never be served stale. The npz is stored uncompressed because
loading speed is the point (the full database is ~80 MB of float32 beats and loads in well under a
second this way; zlib would make it several times slower). The LoadReport travels inside the npz as
a JSON string, so a cache file is always complete or absent, never half of a pair.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nsr_tune._io import atomic_write, strict_json
from nsr_tune.errors import DataError

__all__ = ["ARRAY_KEYS", "cache_file", "default_cache_dir", "fingerprint", "load", "save", "user_cache_root"]

logger = logging.getLogger(__name__)

#: The BeatSet arrays stored in a cache file, with the dtype and rank each must have.
ARRAY_KEYS: Mapping[str, tuple[str, int]] = {
    "x": ("float32", 3),
    "y": ("int64", 1),
    "length": ("int32", 1),
    "record": ("int32", 1),
    "amp_mv": ("float32", 1),
}
_REPORT_KEY = "report_json"
_CHUNK = 1 << 20


def user_cache_root() -> Path:
    """$XDG_CACHE_HOME when set, else ~/.cache (the XDG base directory rule)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg).expanduser() if xdg else Path.home() / ".cache"


def default_cache_dir() -> Path:
    """$NSR_TUNE_CACHE, else $XDG_CACHE_HOME/nsr-tune/beats, else ~/.cache/nsr-tune/beats."""
    env = os.environ.get("NSR_TUNE_CACHE", "")
    if env:
        return Path(env).expanduser()
    return user_cache_root() / "nsr-tune" / "beats"


def fingerprint(files: Sequence[Path], settings: Mapping[str, Any]) -> str:
    """Hex sha256 over the settings (canonical JSON) and each file's name, size and bytes, in order."""
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for path in files:
        try:
            with path.open("rb") as fh:
                # Name and size go in first so that moving bytes between files changes the hash.
                digest.update(f"\0{path.name}\0{os.fstat(fh.fileno()).st_size}\0".encode())
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
        except OSError as e:
            raise DataError(f"{path}: cannot read file to fingerprint it: {e}") from e
    return digest.hexdigest()


def cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"beats-{key}.npz"


def load(cache_dir: Path, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The cached arrays and report for ``key``; None when absent or unreadable (then logged)."""
    path = cache_file(cache_dir, key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in ARRAY_KEYS}
            report = json.loads(str(npz[_REPORT_KEY]))
        _check(arrays, report, key)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        # A damaged cache file is recoverable: the caller rebuilds it from the source files and
        # replaces it atomically. Say so, so that a cache that keeps breaking gets noticed.
        logger.warning(
            "ignoring damaged beat cache file %s (%s: %s); rebuilding it", path, type(e).__name__, e
        )
        return None
    return arrays, report


def _check(arrays: Mapping[str, np.ndarray], report: Any, key: str) -> None:
    n = arrays["y"].shape[0] if arrays["y"].ndim == 1 else -1
    for name, (dtype, ndim) in ARRAY_KEYS.items():
        arr = arrays[name]
        if str(arr.dtype) != dtype or arr.ndim != ndim or arr.shape[0] != n:
            raise ValueError(f"array {name!r} has dtype {arr.dtype} and shape {arr.shape}")
    if not isinstance(report, dict) or report.get("fingerprint") != key:
        raise ValueError("the stored report does not belong to this fingerprint")


def save(cache_dir: Path, key: str, arrays: Mapping[str, np.ndarray], report: Mapping[str, Any]) -> Path:
    """Write the cache file atomically: a temp file in the same directory, then os.replace."""
    path = cache_file(cache_dir, key)
    stored = {name: arrays[name] for name in ARRAY_KEYS}
    stored[_REPORT_KEY] = np.array(strict_json(report))
    try:
        atomic_write(path, lambda fh: np.savez(fh, **stored))
    except OSError as e:
        raise DataError(
            f"{cache_dir}: cannot write the beat cache ({e}); "
            "set NSR_TUNE_CACHE or cache_dir to a writable directory"
        ) from e
    logger.info("cached %d beats in %s", arrays["y"].shape[0], path)
    return path
