"""Where the MIT-BIH files are: the bundled sample, a user directory, or a fresh PhysioNet download."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import wfdb

from nsr_tune.data._cache import user_cache_root
from nsr_tune.errors import ConfigError, DataError

__all__ = [
    "BUNDLED_DIR",
    "MITDB_URL",
    "default_data_dir",
    "download_mitdb",
    "mitdb_checksum_problems",
    "resolve_data_dir",
]

logger = logging.getLogger(__name__)

#: Five real MIT-BIH records shipped with the package (208 209 213 223 232): all five AAMI classes,
#: and enough for an `inter` split, so the tool works out of the box without a download.
BUNDLED_DIR: Path = Path(__file__).resolve().parent / "bundled" / "mitdb"
MITDB_URL = "https://physionet.org/content/mitdb/1.0.0/"
#: PhysioNet's SHA-256 sums of MIT-BIH 1.0.0 (its SHA256SUMS.txt), shipped so that a download can be
#: verified, and so that a directory already holding the exact release is not fetched again.
_SHA256SUMS: Path = Path(__file__).resolve().parent / "mitdb_sha256sums.txt"

_HOW_TO_GET = (
    "get the MIT-BIH Arrhythmia Database with `nsr-tune data download` (or from " + MITDB_URL + "), "
    "point --data-dir / NSR_TUNE_DATA at it, "
    "or use `--data-dir bundled` for the 5 records shipped with nsr-tune"
)


def _as_path(value: object, name: str) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ConfigError(f"{name} must be a non-empty path (str or Path), got {value!r}")
    return Path(os.fspath(value)).expanduser()


def default_data_dir() -> Path:
    """Where MIT-BIH is looked for, and downloaded to, by default.

    $NSR_TUNE_DATA when set, else ``<user cache>/nsr-tune/mitdb`` with the user cache at
    $XDG_CACHE_HOME or ~/.cache. The directory need not exist.
    """
    env = os.environ.get("NSR_TUNE_DATA", "")
    return Path(env).expanduser() if env else user_cache_root() / "nsr-tune" / "mitdb"


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The MIT-BIH directory to read.

    ``data_dir`` when given (the string "bundled" means BUNDLED_DIR), else $NSR_TUNE_DATA, else
    ``<user cache>/nsr-tune/mitdb`` with the user cache at $XDG_CACHE_HOME or ~/.cache. The directory
    must exist; whether it holds records is checked by the loader.
    """
    if data_dir is None:
        path = default_data_dir()
        source = "from NSR_TUNE_DATA" if os.environ.get("NSR_TUNE_DATA") else "the default location"
    elif isinstance(data_dir, str) and data_dir == "bundled":
        path, source = BUNDLED_DIR, "bundled"
    else:
        path, source = _as_path(data_dir, "data_dir"), "given as data_dir"
    if not path.exists():
        raise DataError(f"MIT-BIH data directory {path} ({source}) does not exist; {_HOW_TO_GET}")
    if not path.is_dir():
        raise DataError(f"MIT-BIH data directory {path} ({source}) is not a directory; {_HOW_TO_GET}")
    return path.resolve()


def _expected_sums() -> dict[str, str]:
    """File name -> SHA-256 of the records' headers, signals and annotations (what wfdb downloads)."""
    sums = {}
    for line in _SHA256SUMS.read_text().splitlines():
        digest, name = line.split()
        # RECORDS, ANNOTATORS and the superseded 102-0.atr are not fetched by wfdb.dl_database.
        if name.endswith((".hea", ".dat", ".atr")) and "-" not in name:
            sums[name] = digest
    return sums


def mitdb_checksum_problems(directory: str | Path) -> list[str]:
    """Every way ``directory`` differs from PhysioNet's MIT-BIH 1.0.0 release ([] when it is exact).

    Each entry names a file: missing, or with a SHA-256 other than PhysioNet's.
    """
    path = _as_path(directory, "directory")
    problems = []
    for name, digest in _expected_sums().items():
        f = path / name
        if not f.is_file():
            problems.append(f"{name}: missing")
            continue
        h = hashlib.sha256()
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != digest:
            problems.append(f"{name}: SHA-256 differs from PhysioNet's")
    return problems


def download_mitdb(dest: str | Path) -> Path:
    """Download the MIT-BIH Arrhythmia Database from PhysioNet into ``dest`` (created if needed).

    A ``dest`` that already holds every record, byte for byte as PhysioNet publishes it, is left
    as it is and nothing is fetched (so rerunning a cluster's setup costs nothing and needs no
    network). After a download every file is checked against PhysioNet's SHA-256 sums.
    """
    path = _as_path(dest, "dest")
    if path.is_dir() and not mitdb_checksum_problems(path):
        logger.info(
            "%s already holds MIT-BIH 1.0.0 (every file matches PhysioNet's SHA-256); nothing to download",
            path,
        )
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{path}: cannot create the download directory: {e}") from e
    logger.info("downloading the MIT-BIH Arrhythmia Database from PhysioNet into %s", path)
    # wfdb downloads with `requests`, whose errors all derive from OSError, as do local write errors.
    import requests  # a dependency of wfdb; imported here only to tell network errors from disk errors

    try:
        wfdb.dl_database("mitdb", str(path))
    except requests.RequestException as e:
        raise DataError(
            f"could not download MIT-BIH into {path}: PhysioNet could not be reached ({e}); "
            f"check the network, or download the files by hand from {MITDB_URL} into {path}"
        ) from e
    except OSError as e:
        raise DataError(f"could not download MIT-BIH into {path}: writing the files failed: {e}") from e
    problems = mitdb_checksum_problems(path)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise DataError(
            f"the download into {path} does not match PhysioNet's MIT-BIH 1.0.0 ({shown}); "
            f"run `nsr-tune data download` again, or get the files by hand from {MITDB_URL}"
        )
    return path
