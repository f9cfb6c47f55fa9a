"""Reading MIT-BIH records: listing them, inspecting headers, finding the lead by name, reading it.

Step 1 of the preprocessing documented in _segment: the lead is looked up by name, and every file is
checked before any signal is decoded, so damage is reported as a DataError naming the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from nsr_tune.errors import DataError

__all__ = ["RecordInfo", "RecordSignal", "inspect_record", "list_records", "read_record"]

logger = logging.getLogger(__name__)

#: Records with no MLII lead at all; with lead="MLII" they fall back to their first lead.
_NO_MLII_RECORDS = frozenset({102, 104})

#: Bytes per sample of the fixed-width WFDB signal formats (212 is handled apart: 3 bytes per 2).
_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "61": 2, "80": 1, "160": 2, "24": 3, "32": 4}

#: Physical units the lead may be in, and the factor that turns them into mV.
_TO_MV = {"mV": 1.0, "mv": 1.0, "uV": 1e-3, "µV": 1e-3, "μV": 1e-3, "V": 1e3}


@dataclass(frozen=True)
class RecordInfo:
    """A record whose header parsed and whose files are all present and long enough."""

    number: int
    base: Path  # path without extension, as wfdb wants it
    channel: int
    lead: str
    to_mv: float
    sig_len: int | None
    files: tuple[Path, ...]  # .hea, signal file(s), .atr: exactly what the fingerprint hashes
    note: str | None


class RecordSignal(NamedTuple):
    """One lead of a record in mV, its sampling rate, and its reference annotations."""

    signal_mv: np.ndarray
    fs: float
    ann_samples: np.ndarray
    ann_symbols: list[str]


def list_records(root: Path) -> tuple[int, ...]:
    """Record numbers from RECORDS when present, else from the *.hea files."""
    listing = root / "RECORDS"
    if listing.is_file():
        try:
            lines = listing.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{listing}: cannot read the record list: {e}") from e
        names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not names:
            raise DataError(f"{listing}: the record list is empty; no records to read in {root}")
        bad = [n for n in names if not _is_record_number(n)]
        if bad:
            raise DataError(
                f"{listing}: record names must be MIT-BIH record numbers such as 100, "
                f"got {', '.join(bad[:5])}"
            )
    else:
        stems = sorted(p.stem for p in root.glob("*.hea"))
        names = [s for s in stems if _is_record_number(s)]
        if len(names) < len(stems):
            # Another database's headers may sit beside MIT-BIH's; they cannot be MIT-BIH records.
            logger.warning(
                "%s: ignoring headers that are not MIT-BIH record numbers: %s",
                root,
                ", ".join(s for s in stems if not _is_record_number(s)),
            )
        if not names:
            raise DataError(f"{root}: no MIT-BIH records here (no RECORDS file and no NNN.hea header files)")
    return tuple(sorted({int(n) for n in names}))


def _is_record_number(name: str) -> bool:
    # Canonical digits only, so that the record number maps back to exactly one file name.
    return name.isascii() and name.isdigit() and str(int(name)) == name


def inspect_record(root: Path, rec: int | str, lead: str) -> RecordInfo:
    """Parse the header and check every file before any signal is decoded or hashed."""
    import wfdb

    base = root / str(rec)
    hea = root / f"{rec}.hea"
    if not hea.is_file():
        raise DataError(f"{hea}: header file of record {rec} is missing")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as e:
        # wfdb reports a malformed header as whatever its parser tripped on (IndexError,
        # ValueError, HeaderSyntaxError, ...); all of them mean the same thing to the user.
        raise DataError(f"{hea}: cannot parse the header of record {rec}: {type(e).__name__}: {e}") from e

    names = [str(n) for n in (header.sig_name or [])]
    file_names = list(header.file_name or [])
    if not names or len(file_names) != len(names) or not header.fs or header.fs <= 0:
        raise DataError(
            f"{hea}: header of record {rec} describes no usable signal (leads {names}, fs {header.fs})"
        )
    note = None
    if lead in names:
        channel = names.index(lead)
    elif lead == "MLII" and rec in _NO_MLII_RECORDS:
        channel = 0
        note = f"record {rec} has no MLII; using its first lead {names[0]}"
    else:
        raise DataError(f"{hea}: record {rec} has no lead {lead!r}; its leads are {', '.join(names)}")

    units = (header.units or [None] * len(names))[channel] or "mV"  # WFDB's default unit is mV
    if units not in _TO_MV:
        raise DataError(f"{hea}: lead {names[channel]} of record {rec} is in {units!r}, not a voltage unit")

    signal_files: list[Path] = []
    for fname in dict.fromkeys(file_names):  # unique, in header order
        dat = root / fname
        if not dat.is_file():
            raise DataError(f"{dat}: signal file of record {rec} is missing")
        _check_signal_size(dat, hea, header, [i for i, f in enumerate(file_names) if f == fname])
        signal_files.append(dat)
    atr = root / f"{rec}.atr"
    if not atr.is_file():
        raise DataError(f"{atr}: annotation file of record {rec} is missing")
    return RecordInfo(
        number=rec,
        base=base,
        channel=channel,
        lead=names[channel],
        to_mv=_TO_MV[units],
        sig_len=int(header.sig_len) if header.sig_len is not None else None,
        files=(hea, *signal_files, atr),
        note=note,
    )


def _check_signal_size(dat: Path, hea: Path, header: Any, channels: list[int]) -> None:
    """Fail clearly on a signal file shorter than its header promises (wfdb's own error is cryptic)."""
    fmts = {str(header.fmt[i]) for i in channels} if header.fmt else set()
    if header.sig_len is None or len(fmts) != 1:
        return
    fmt = fmts.pop()
    per_frame = sum(int((header.samps_per_frame or [1] * (max(channels) + 1))[i] or 1) for i in channels)
    n_samples = int(header.sig_len) * per_frame
    if fmt == "212":
        need = (3 * n_samples + 1) // 2  # two 12-bit samples in 3 bytes; an odd last one takes 2
    elif fmt in _BYTES_PER_SAMPLE:
        need = n_samples * _BYTES_PER_SAMPLE[fmt]
    else:
        return  # packed or compressed formats: rely on the sample count check after reading
    offsets = header.byte_offset or []
    need += int(offsets[channels[0]] or 0) if offsets else 0
    size = dat.stat().st_size
    if size < need:
        raise DataError(
            f"{dat}: truncated: {size} bytes, but {hea.name} promises {header.sig_len} samples x "
            f"{len(channels)} channel(s) in format {fmt} = {need} bytes"
        )


def read_record(info: RecordInfo) -> RecordSignal:
    """The lead of ``info`` (checked: as long as the header says, no invalid samples) and its annotations."""
    import wfdb

    dat = info.files[1]
    try:
        record = wfdb.rdrecord(str(info.base), channels=[info.channel])
    except Exception as e:
        # As with headers, wfdb's failures on damaged signal files have no common type.
        raise DataError(
            f"{dat}: cannot read the signal of record {info.number}: {type(e).__name__}: {e}"
        ) from e
    sig = np.asarray(record.p_signal, dtype=np.float64)[:, 0]
    if info.sig_len is not None and sig.shape[0] != info.sig_len:
        raise DataError(
            f"{dat}: read {sig.shape[0]} samples of record {info.number}, the header says {info.sig_len}"
        )
    bad = np.flatnonzero(np.isnan(sig))
    if bad.size:
        raise DataError(
            f"{dat}: lead {info.lead} of record {info.number} has {bad.size} invalid samples "
            f"(NaN; first at sample {bad[0]}, {bad[0] / record.fs:.2f} s)"
        )
    atr = info.files[-1]
    try:
        ann = wfdb.rdann(str(info.base), "atr")
    except Exception as e:
        raise DataError(
            f"{atr}: cannot read the annotations of record {info.number}: {type(e).__name__}: {e}"
        ) from e

    return RecordSignal(
        sig * info.to_mv, float(record.fs), np.asarray(ann.sample, dtype=np.int64), list(ann.symbol)
    )
