"""CPSC2018 as the challenge first released it: `AXXXX.mat` files plus `REFERENCE.csv`.

Each `.mat` holds a MATLAB struct `ECG` with fields `sex`, `age` and `data`, the 12 leads
(I, II, III, aVR, aVL, aVF, V1-V6) as a 12 x N array of doubles in millivolts at 500 Hz.
`REFERENCE.csv` (header `Recording,First_label,Second_label,Third_label`) gives each record up
to three labels, 1..9 in the order of CPSC_CLASSES.

The records come out as the same RecordSet that PhysioNet's copy gives: millivolts times 1000
ADC units per mV (the gain of PhysioNet's copy, whose samples are whole microvolts), rounded to
int16, so a record written from one layout into the other keeps its integers.
"""

from __future__ import annotations

import csv
import logging
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nsr_tune.config import CPSC_MAX_LEN
from nsr_tune.data._cpsc import (
    ALL_LEADS,
    CPSC_CLASSES,
    PAPER_LEADS,
    CpscReport,
    RecordSet,
    _Collector,
)
from nsr_tune.errors import DataError

__all__ = ["ORIGINAL_GAIN", "REFERENCE_HEADER", "load_cpsc2018_original"]

log = logging.getLogger(__name__)

#: ADC units per mV, as in PhysioNet's copy: 1 uV resolution, and +-32.767 mV fits in int16.
ORIGINAL_GAIN = 1000.0
REFERENCE_HEADER = ("Recording", "First_label", "Second_label", "Third_label")
_INT16 = np.iinfo(np.int16)


def _read_reference(path: Path) -> dict[str, list[str]]:
    """Record name -> its classes (sorted as CPSC_CLASSES), from REFERENCE.csv."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # utf-8-sig: a BOM from a spreadsheet
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path.name}: cannot be read: {e}") from e
    if not rows or tuple(cell.strip() for cell in rows[0][:4]) != REFERENCE_HEADER:
        got = ",".join(rows[0]) if rows else "nothing"
        raise DataError(f"{path.name}: its first line must be {','.join(REFERENCE_HEADER)}, got {got!r}")
    labels: dict[str, list[str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line, as some editors leave at the end
        name = row[0].strip()
        if not name:
            raise DataError(f"{path.name}: line {line} has no record name")
        if name in labels:
            raise DataError(f"{name}: listed twice in {path.name} (again on line {line})")
        classes = set()
        for cell in (c.strip() for c in row[1:]):
            if not cell:
                continue
            if not (cell.isascii() and cell.isdigit()) or not 1 <= int(cell) <= len(CPSC_CLASSES):
                raise DataError(
                    f"{name}: label {cell!r} in {path.name} (line {line}) is not one of "
                    f"1..{len(CPSC_CLASSES)} ({', '.join(CPSC_CLASSES)})"
                )
            classes.add(CPSC_CLASSES[int(cell) - 1])
        if not classes:
            raise DataError(f"{name}: no label in {path.name} (line {line})")
        labels[name] = sorted(classes, key=CPSC_CLASSES.index)
    return labels


def _read_mat(path: Path, name: str) -> np.ndarray:
    """The (12, N) millivolts of one record's `ECG.data`."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        content = loadmat(path)
    except NotImplementedError as e:  # scipy reads MATLAB files up to v7, not v7.3 (HDF5)
        raise DataError(f"{name}: {path.name} is a MATLAB v7.3 file, which cannot be read ({e})") from e
    except (MatReadError, ValueError, OSError, IndexError, EOFError, TypeError, zlib.error) as e:
        # A truncated file fails in any of these, depending on where it was cut.
        raise DataError(
            f"{name}: {path.name} cannot be read, truncated or not a MATLAB file ({type(e).__name__}: {e})"
        ) from e
    ecg = content.get("ECG")
    fields = getattr(getattr(ecg, "dtype", None), "names", None) or ()
    if not isinstance(ecg, np.ndarray) or "data" not in fields or ecg.size != 1:
        found = ", ".join(k for k in content if not k.startswith("__")) or "nothing"
        raise DataError(f"{name}: {path.name} holds no ECG struct with a data field (it holds {found})")
    data = np.asarray(ecg.flat[0]["data"])
    if data.ndim != 2 or data.shape[0] != len(ALL_LEADS) or data.shape[1] < 1:
        raise DataError(
            f"{name}: ECG.data in {path.name} has shape {data.shape}, "
            f"expected {len(ALL_LEADS)} leads x samples"
        )
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise DataError(f"{name}: ECG.data in {path.name} holds {data.dtype}, not real numbers")
    return data


def load_cpsc2018_original(
    data_dir: str | Path,
    *,
    leads: Sequence[str] = PAPER_LEADS,
    max_len: int = CPSC_MAX_LEN,
    multi_label: bool = False,
) -> tuple[RecordSet, CpscReport]:
    """Read every record of a directory in the original CPSC2018 layout (`*.mat` + REFERENCE.csv).

    The result is what `load_cpsc2018` gives for PhysioNet's copy of the same records. A record
    without a REFERENCE.csv row, a row without its `.mat`, a label outside 1..9, a `.mat` that
    cannot be read or holds no 12-lead `ECG.data`, or samples int16 cannot hold at 1000 ADC
    units per mV raise a DataError naming the record.
    """
    directory = Path(data_dir)
    if not directory.is_dir():
        raise DataError(f"--data-dir: {directory} is not a directory")
    unknown = [lead for lead in leads if lead not in ALL_LEADS]
    if unknown or not leads:
        raise DataError(f"leads: unknown lead(s) {unknown}; choose from {', '.join(ALL_LEADS)}")
    if not isinstance(max_len, int) or max_len < 1:
        raise DataError(f"max_len: must be a whole number of samples >= 1, got {max_len!r}")
    reference = directory / "REFERENCE.csv"
    if not reference.is_file():
        raise DataError(f"--data-dir: {directory} has no REFERENCE.csv (the original CPSC2018 labels)")
    labels_of = _read_reference(reference)
    mats = sorted(directory.glob("*.mat"))
    if not mats:
        raise DataError(f"--data-dir: {directory} has REFERENCE.csv but no AXXXX.mat records")
    # Both directions are checked before any signal is read, so a mismatch costs no time.
    unlisted = [m.stem for m in mats if m.stem not in labels_of]
    if unlisted:
        raise DataError(f"{unlisted[0]}: {unlisted[0]}.mat has no row in REFERENCE.csv")
    on_disk = {m.stem for m in mats}
    absent = [name for name in labels_of if name not in on_disk]
    if absent:
        raise DataError(f"{absent[0]}: listed in REFERENCE.csv, but {absent[0]}.mat is missing")
    channels = [ALL_LEADS.index(lead) for lead in leads]
    collected, dropped = _Collector(leads, max_len), []
    for mat in mats:
        name = mat.stem
        classes = labels_of[name]
        if len(classes) > 1 and not multi_label:
            dropped.append(name)
            continue
        mv = _read_mat(mat, name)[channels]
        if not np.isfinite(mv).all():
            raise DataError(f"{name}: ECG.data in {mat.name} holds NaN or infinite samples")
        digital = np.rint(mv * ORIGINAL_GAIN)
        if digital.min() < _INT16.min or digital.max() > _INT16.max:
            raise DataError(
                f"{name}: samples beyond +-{_INT16.max / ORIGINAL_GAIN:.3f} mV in {mat.name}, "
                f"more than int16 holds at {ORIGINAL_GAIN:.0f} ADC units per mV"
            )
        collected.add(name, digital, classes, ORIGINAL_GAIN)
    records = collected.build(directory, multi_label=multi_label)
    report = CpscReport(str(directory), len(mats), tuple(dropped), collected.truncated)
    log.info(
        "CPSC2018 (original layout): %d records of %d read from %s (%d with several labels dropped, "
        "%d truncated), %.1f MB",
        len(records),
        len(mats),
        directory,
        len(dropped),
        collected.truncated,
        records.nbytes / 1e6,
    )
    return records, report
