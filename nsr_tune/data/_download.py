"""Where the data is: MIT-BIH bundled, in a user directory or freshly downloaded; CPSC2018 downloaded."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from nsr_tune.data._cache import user_cache_root
from nsr_tune.errors import ConfigError, DataError

__all__ = [
    "BUNDLED_DIR",
    "CPSC2018_URL",
    "MITDB_URL",
    "cpsc2018_problems",
    "default_cpsc_dir",
    "default_data_dir",
    "download_cpsc2018",
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


def _first_five(problems: list[str]) -> str:
    """The first five problems of a check, and how many more there are."""
    return "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")


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
        path, source = _as_path(data_dir, "data_dir"), "as given"
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
    import wfdb

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
        shown = _first_five(problems)
        raise DataError(
            f"the download into {path} does not match PhysioNet's MIT-BIH 1.0.0 ({shown}); "
            f"run `nsr-tune data download` again, or get the files by hand from {MITDB_URL}"
        )
    return path


#: PhysioNet's copy of CPSC2018: the `cpsc_2018` training folder of the PhysioNet/CinC Challenge 2020,
#: pinned to version 1.0.2 so that a download is the same files whenever it is made.
CPSC2018_URL = "https://physionet.org/content/challenge-2020/1.0.2/training/cpsc_2018/"
_CPSC_FILES = "https://physionet.org/files/challenge-2020/1.0.2/"  # where the raw files are served
_CPSC_PREFIX = "training/cpsc_2018/"
#: PhysioNet's SHA-256 sums of every file of the project version, fetched with the records.
CPSC_SUMS = "SHA256SUMS.txt"


def default_cpsc_dir() -> Path:
    """Where CPSC2018 is downloaded to by default: $NSR_TUNE_CPSC2018 when set, else
    ``<user cache>/nsr-tune/cpsc2018`` with the user cache at $XDG_CACHE_HOME or ~/.cache."""
    env = os.environ.get("NSR_TUNE_CPSC2018", "")
    return Path(env).expanduser() if env else user_cache_root() / "nsr-tune" / "cpsc2018"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cpsc_sums(text: str) -> dict[str, str]:
    """File name -> SHA-256 of the cpsc_2018 files in PhysioNet's SHA256SUMS.txt.

    PhysioNet lists them as `training/cpsc_2018/gN/AXXXX.hea`; the download keeps the file names
    and leaves out the group folders gN, so the names are unique and the key is the bare name.
    """
    sums = {}
    for line in text.splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2 and parts[1].strip().lstrip("*").startswith(_CPSC_PREFIX):
            sums[parts[1].strip().lstrip("*").rsplit("/", 1)[-1]] = parts[0].lower()
    return sums


def cpsc2018_problems(directory: str | Path) -> list[str]:
    """Every way ``directory`` falls short of a complete CPSC2018 download ([] when it is complete).

    Every record its RECORDS file lists must have a `.hea` and a `.mat` that holds what the header
    says. When PhysioNet's SHA256SUMS.txt is there too, every one of those files must also have
    PhysioNet's SHA-256. Each entry names a record or a file.
    """
    import wfdb

    from nsr_tune.data._cpsc import _check_size

    path = _as_path(directory, "directory")
    listing = path / "RECORDS"
    if not listing.is_file():
        return [f"RECORDS: missing (the list of records the download writes into {path})"]
    names = listing.read_text(errors="replace").split()
    if not names:
        return ["RECORDS: lists no record"]
    sums_file = path / CPSC_SUMS
    sums = _cpsc_sums(sums_file.read_text(errors="replace")) if sums_file.is_file() else None
    if sums is not None and not sums:
        return [f"{CPSC_SUMS}: lists no file under {_CPSC_PREFIX} (not PhysioNet's Challenge 2020 sums)"]
    problems = []
    for name in names:
        missing = [f"{name}.{ext}" for ext in ("hea", "mat") if not (path / f"{name}.{ext}").is_file()]
        if missing:
            problems.append(f"{name}: {' and '.join(missing)} missing")
            continue
        try:
            _check_size(path, wfdb.rdheader(str(path / name)), name)
        except (ValueError, OSError, IndexError) as e:
            problems.append(f"{name}: its header cannot be read: {e}")
            continue
        except DataError as e:
            problems.append(str(e))
            continue
        for ext in () if sums is None else ("hea", "mat"):
            file = f"{name}.{ext}"
            if file not in sums:
                problems.append(f"{file}: not in {CPSC_SUMS}")
            elif _sha256(path / file) != sums[file]:
                problems.append(f"{file}: SHA-256 differs from PhysioNet's")
    return problems


def _copy_from(response: Any) -> Callable[[BinaryIO], None]:
    """A writer for atomic_write that streams a `requests` response, so a large file is never
    held in memory whole."""

    def write(fh: BinaryIO) -> None:
        for block in response.iter_content(1 << 16):
            fh.write(block)

    return write


def _fetch_cpsc2018(path: Path, *, progress: bool | None) -> None:
    """Fetch PhysioNet's cpsc_2018 records into ``path``: every `.hea` and `.mat` side by side (not
    in PhysioNet's group folders gN, so that the directory is read as it is), a RECORDS file
    listing them, and PhysioNet's SHA256SUMS.txt. A file that already has PhysioNet's SHA-256 is
    not fetched again, so an interrupted download resumes. The only function that uses the network.
    """
    import requests
    from tqdm.auto import tqdm

    from nsr_tune._io import atomic_write

    with requests.Session() as session:

        def get(relative: str) -> bytes:
            response = session.get(_CPSC_FILES + relative, timeout=60)
            response.raise_for_status()
            return response.content

        sums_text = get(CPSC_SUMS)
        atomic_write(path / CPSC_SUMS, lambda fh: fh.write(sums_text))
        sums = _cpsc_sums(sums_text.decode(errors="replace"))
        # The project's RECORDS lists its group folders (training/cpsc_2018/g1/ ...), each with
        # its own RECORDS of record names.
        records = []
        for entry in get("RECORDS").decode(errors="replace").split():
            if not entry.startswith(_CPSC_PREFIX):
                continue
            if entry.endswith("/"):
                records += [entry + name for name in get(entry + "RECORDS").decode(errors="replace").split()]
            else:
                records.append(entry)
        if not records:
            raise DataError(f"PhysioNet's RECORDS of {_CPSC_FILES} lists nothing under {_CPSC_PREFIX}")
        # `progress` None: a bar only where stderr is a terminal (not in CI logs or nohup files).
        bar = tqdm(
            records, desc="CPSC2018 records", unit="record", disable=True if progress is False else None
        )
        for i, record in enumerate(bar, start=1):
            for ext in ("hea", "mat"):
                name = f"{record.rsplit('/', 1)[-1]}.{ext}"
                target = path / name
                if target.is_file() and sums.get(name) == _sha256(target):
                    continue
                with session.get(f"{_CPSC_FILES}{record}.{ext}", timeout=60, stream=True) as response:
                    response.raise_for_status()
                    atomic_write(target, _copy_from(response))
            if i % 500 == 0 or i == len(records):
                logger.info("CPSC2018: %d of %d records in %s", i, len(records), path)
        names = "".join(record.rsplit("/", 1)[-1] + "\n" for record in records)
        atomic_write(path / "RECORDS", lambda fh: fh.write(names.encode()))


def download_cpsc2018(dest: str | Path, *, progress: bool | None = None) -> Path:
    """Download PhysioNet's copy of CPSC2018 (6,877 records, roughly 1.4 GB) into ``dest`` (created if
    needed), readable as ``load_cpsc2018(dest)``.

    A ``dest`` that already holds every record, each file with PhysioNet's SHA-256, is left as it
    is and nothing is fetched. After a download every record RECORDS lists must have its `.hea`
    and a `.mat` of the size the header says, and every file PhysioNet's SHA-256. ``progress``
    shows a bar of the records fetched on a terminal (False: none).
    """
    path = _as_path(dest, "dest")
    if path.exists() and not path.is_dir():
        raise DataError(f"--dest: {path} is a file, not a directory to download CPSC2018 into")
    if (path / CPSC_SUMS).is_file() and (path / "RECORDS").is_file() and not cpsc2018_problems(path):
        logger.info(
            "%s already holds CPSC2018 (every file matches PhysioNet's SHA-256); nothing to download", path
        )
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{path}: cannot create the download directory: {e}") from e
    logger.info("downloading CPSC2018 from PhysioNet (%s) into %s", CPSC2018_URL, path)
    import requests  # a dependency of wfdb; imported here only to tell network errors from disk errors

    try:
        _fetch_cpsc2018(path, progress=progress)
    except requests.HTTPError as e:  # reached, but a file is not where it was expected, or refused
        raise DataError(
            f"could not download CPSC2018 into {path}: PhysioNet answered {e}; run it again later (what "
            f"is already there is kept), or get the files by hand from {CPSC2018_URL}"
        ) from e
    except requests.RequestException as e:
        raise DataError(
            f"could not download CPSC2018 into {path}: PhysioNet could not be reached ({e}); "
            f"check the network and run it again (what is already there is kept), or get the files by "
            f"hand from {CPSC2018_URL}"
        ) from e
    except OSError as e:
        raise DataError(f"could not download CPSC2018 into {path}: writing the files failed: {e}") from e
    problems = cpsc2018_problems(path)
    if problems:
        shown = _first_five(problems)
        raise DataError(
            f"the download into {path} is not PhysioNet's CPSC2018 ({shown}); run "
            f"`nsr-tune data download --dataset cpsc2018` again, or get the files by hand from {CPSC2018_URL}"
        )
    return path
