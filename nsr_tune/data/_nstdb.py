"""The noise records of the MIT-BIH Noise Stress Test Database, read and resampled to the beats' rate.

The records (Moody, Muldrow & Mark 1984) are real noise recorded from active volunteers with the
electrodes placed so that no ECG is visible: ``bw`` baseline wander, ``ma`` muscle artifact and
``em`` electrode motion, each 2 channels at 360 Hz. ``load_nstdb`` returns each in mV, both
channels, resampled with ``scipy.signal.resample_poly`` as the MIT-BIH beats are (see _segment), so
that a segment of it can be added to a beat at the beats' rate. Nothing is written to disk: the
resampled arrays are kept in memory, one per record file and rate.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from nsr_tune.data._beats import FS
from nsr_tune.data._cache import user_cache_root
from nsr_tune.data._records import _TO_MV, _check_signal_size
from nsr_tune.errors import ConfigError, DataError

__all__ = [
    "NSTDB_KINDS",
    "NSTDB_URL",
    "default_nstdb_dir",
    "load_nstdb",
    "nstdb_if_present",
    "resolve_nstdb_dir",
]

log = logging.getLogger(__name__)

NSTDB_URL = "https://physionet.org/content/nstdb/1.0.0/"
#: The noise records of the database: baseline wander, muscle artifact, electrode motion.
NSTDB_KINDS: tuple[str, ...] = ("bw", "ma", "em")


def _how_to_get(path: Path) -> str:
    return (
        f"get the noise records with `python -c \"import wfdb; wfdb.dl_database('nstdb', '{path}', "
        f"records=['bw', 'ma'])\"` (or from {NSTDB_URL}), or point NSR_TUNE_NSTDB at a directory holding them"
    )


def default_nstdb_dir() -> Path:
    """$NSR_TUNE_NSTDB when set, else ``<user cache>/nsr-tune/nstdb`` (the directory need not exist)."""
    env = os.environ.get("NSR_TUNE_NSTDB", "")
    return Path(env).expanduser() if env else user_cache_root() / "nsr-tune" / "nstdb"


def resolve_nstdb_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The directory of the noise records: ``data_dir``, else $NSR_TUNE_NSTDB, else the user cache.

    It must exist; whether it holds the records is checked when they are read.
    """
    if data_dir is None:
        path = default_nstdb_dir()
        source = "from NSR_TUNE_NSTDB" if os.environ.get("NSR_TUNE_NSTDB") else "the default location"
    elif isinstance(data_dir, (str, os.PathLike)) and os.fspath(data_dir):
        path, source = Path(os.fspath(data_dir)).expanduser(), "as given"
    else:
        raise ConfigError(f"data_dir must be a non-empty path (str or Path) or None, got {data_dir!r}")
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise DataError(f"noise stress test directory {path} ({source}) {what}; {_how_to_get(path)}")
    return path.resolve()


def load_nstdb(
    data_dir: str | os.PathLike[str] | None = None, *, kinds: tuple[str, ...] = ("bw", "ma"), fs: int = FS
) -> dict[str, np.ndarray]:
    """Each noise record of ``kinds``: a read-only float64 array (channels, n) in mV at ``fs`` Hz.

    Both channels are kept; the 360 Hz records are resampled with ``resample_poly`` (n =
    ceil(650000 * fs / 360) samples for fs=125: 225695). A missing, truncated or unreadable record
    is a DataError naming the file. Repeated calls on the same files and rate cost nothing.
    """
    if isinstance(kinds, str):
        kinds = (kinds,)
    unknown = [k for k in kinds if k not in NSTDB_KINDS]
    if unknown or not kinds:
        raise ConfigError(f"kinds: each must be one of {', '.join(NSTDB_KINDS)}, got {list(kinds)!r}")
    if isinstance(fs, bool) or not isinstance(fs, int) or fs <= 0:
        raise ConfigError(f"fs: must be a positive whole number of Hz, got {fs!r}")
    root = resolve_nstdb_dir(data_dir)
    out = {}
    for kind in dict.fromkeys(kinds):
        hea, dat = _record_files(root, kind)
        # The files' size and mtime are part of the key, so a record replaced on disk is read again.
        stamp = tuple((st.st_size, st.st_mtime_ns) for st in (hea.stat(), dat.stat()))
        out[kind] = _read_resampled(root / kind, fs, stamp)
    return out


def nstdb_if_present(
    data_dir: str | os.PathLike[str] | None = None, *, fs: int = FS
) -> dict[str, np.ndarray] | None:
    """``load_nstdb(data_dir)`` for the noise stress test, or None when nobody asked for it.

    A directory given as ``data_dir`` must hold the records (a DataError says what is missing).
    Without one, the default location ($NSR_TUNE_NSTDB, else the user cache) is tried, and when
    it holds no ``bw`` and ``ma`` records the result is None and the test runs without them (the
    evaluation's result says they were skipped), so that a user who never downloaded them can
    still evaluate under the strong protocol.
    """
    if data_dir is not None:
        return load_nstdb(data_dir, fs=fs)
    root = default_nstdb_dir()
    if not all((root / f"{k}.hea").is_file() for k in ("bw", "ma")):
        log.warning(
            "no noise stress test records at %s: the bw and ma noise are skipped; %s", root, _how_to_get(root)
        )
        return None
    return load_nstdb(root, fs=fs)


def _record_files(root: Path, kind: str) -> tuple[Path, Path]:
    hea = root / f"{kind}.hea"
    if not hea.is_file():
        raise DataError(f"{hea}: header of noise record {kind} is missing; {_how_to_get(root)}")
    dat = root / f"{kind}.dat"
    if not dat.is_file():
        raise DataError(f"{dat}: signal file of noise record {kind} is missing; {_how_to_get(root)}")
    return hea, dat


@lru_cache(maxsize=16)
def _read_resampled(base: Path, fs: int, stamp: tuple) -> np.ndarray:
    import wfdb
    from scipy.signal import resample_poly

    hea = base.with_suffix(".hea")
    kind = base.name
    try:
        header = wfdb.rdheader(str(base))
    except Exception as e:  # wfdb's parser fails with many exception types, all meaning "bad header"
        raise DataError(
            f"{hea}: cannot parse the header of noise record {kind}: {type(e).__name__}: {e}"
        ) from e
    names = list(header.sig_name or [])
    if not names or not header.fs or header.fs <= 0 or not header.sig_len:
        raise DataError(f"{hea}: header of noise record {kind} describes no usable signal")
    units = [u or "mV" for u in (header.units or ["mV"] * len(names))]  # WFDB's default unit is mV
    bad_units = [u for u in units if u not in _TO_MV]
    if bad_units:
        raise DataError(f"{hea}: noise record {kind} is in {bad_units[0]!r}, not a voltage unit")
    files = list(header.file_name or [])
    if any(f != f"{kind}.dat" for f in files):
        raise DataError(f"{hea}: noise record {kind} names signal files {files}, expected {kind}.dat")
    dat = base.with_suffix(".dat")
    _check_signal_size(dat, hea, header, list(range(len(names))))
    try:
        record = wfdb.rdrecord(str(base))
    except Exception as e:  # as with headers, wfdb's failures on damaged files have no common type
        raise DataError(f"{dat}: cannot read noise record {kind}: {type(e).__name__}: {e}") from e
    sig = np.asarray(record.p_signal, dtype=np.float64).T * np.array([_TO_MV[u] for u in units])[:, None]
    if sig.shape[1] != header.sig_len:
        raise DataError(
            f"{dat}: read {sig.shape[1]} samples of noise record {kind}, the header says {header.sig_len}"
        )
    bad = np.argwhere(np.isnan(sig))
    if bad.size:
        raise DataError(
            f"{dat}: noise record {kind} has {len(bad)} invalid samples (first in channel {bad[0, 0]} "
            f"at sample {bad[0, 1]})"
        )
    ratio = Fraction(fs) / Fraction(header.fs).limit_denominator(1000)
    if ratio != 1:
        sig = resample_poly(sig, ratio.numerator, ratio.denominator, axis=1)
    sig = np.ascontiguousarray(sig)
    sig.setflags(write=False)  # shared by every caller through the cache
    return sig
