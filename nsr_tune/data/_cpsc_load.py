"""Reading a CPSC2018 directory in either layout: PhysioNet's copy or the original release.

PhysioNet's copy (the PhysioNet/CinC Challenge 2020 layout) is read here; the original
release's `.mat` files and REFERENCE.csv in nsr_tune/data/_cpsc_original.py. Both give the
same RecordSet (nsr_tune/data/_cpsc.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from nsr_tune.config import CPSC_MAX_LEN
from nsr_tune.data._cpsc import ALL_LEADS, PAPER_LEADS, CpscReport, RecordSet, _check_size, _Collector, _dx
from nsr_tune.data._cpsc_original import load_cpsc2018_original
from nsr_tune.errors import DataError

__all__ = ["load_cpsc2018"]

log = logging.getLogger(__name__)


def load_cpsc2018(
    data_dir: str | Path,
    *,
    leads: Sequence[str] = PAPER_LEADS,
    max_len: int = CPSC_MAX_LEN,
    multi_label: bool = False,
) -> tuple[RecordSet, CpscReport]:
    """Read every record of a CPSC2018 directory, in either layout, as the same RecordSet.

    A directory with `*.hea` files is read as PhysioNet's copy (the PhysioNet/CinC Challenge
    2020 layout); one without, but with REFERENCE.csv and `*.mat` files, as the original CPSC2018
    release (nsr_tune/data/_cpsc_original.py). A record that cannot be used raises a DataError
    naming it.
    """
    directory = Path(data_dir)
    if (
        directory.is_dir()
        and not any(directory.glob("*.hea"))
        and (directory / "REFERENCE.csv").is_file()
        and any(directory.glob("*.mat"))
    ):
        return load_cpsc2018_original(directory, leads=leads, max_len=max_len, multi_label=multi_label)
    return _load_physionet_layout(directory, leads=leads, max_len=max_len, multi_label=multi_label)


def _load_physionet_layout(
    directory: Path,
    *,
    leads: Sequence[str],
    max_len: int,
    multi_label: bool,
) -> tuple[RecordSet, CpscReport]:
    """Read every `*.hea` record of a CPSC2018 directory (PhysioNet/CinC Challenge 2020 layout).

    A record that cannot be used (no label, an unknown label, a missing lead, a `.mat` shorter
    than its header says, or one that cannot be read) raises a DataError naming it.
    """
    import wfdb

    if not directory.is_dir():
        raise DataError(f"--data-dir: {directory} is not a directory")
    unknown = [lead for lead in leads if lead not in ALL_LEADS]
    if unknown or not leads:
        raise DataError(f"leads: unknown lead(s) {unknown}; choose from {', '.join(ALL_LEADS)}")
    if not isinstance(max_len, int) or max_len < 1:
        raise DataError(f"max_len: must be a whole number of samples >= 1, got {max_len!r}")
    headers = sorted(directory.glob("*.hea"))
    if not headers:
        raise DataError(
            f"--data-dir: {directory} holds no CPSC2018 records: neither PhysioNet's AXXXX.hea + AXXXX.mat "
            "nor the original release's AXXXX.mat + REFERENCE.csv"
        )
    collected, dropped = _Collector(leads, max_len), []
    for hea in headers:
        name = hea.stem
        where = str(hea.with_suffix(""))
        try:
            header = wfdb.rdheader(where)
        except (ValueError, OSError, IndexError) as e:
            raise DataError(f"{name}: its header cannot be read: {e}") from e
        classes = _dx(header.comments or [], name)
        if len(classes) > 1 and not multi_label:
            dropped.append(name)
            continue
        missing = [lead for lead in leads if lead not in header.sig_name]
        if missing:
            raise DataError(f"{name}: lead(s) {missing} missing (it has {', '.join(header.sig_name)})")
        channels = [header.sig_name.index(lead) for lead in leads]
        _check_size(directory, header, name)
        try:
            record = wfdb.rdrecord(where, channels=channels, physical=False)
        except (ValueError, OSError, IndexError, EOFError) as e:
            raise DataError(f"{name}: its signal cannot be read ({type(e).__name__}: {e})") from e
        d = record.d_signal  # (L, leads) ADC integers
        if d is None or d.shape[0] != header.sig_len:
            got = 0 if d is None else d.shape[0]
            raise DataError(f"{name}: the header says {header.sig_len} samples, its .mat holds {got}")
        collected.add(name, d.T, classes, float(record.adc_gain[0]))
    records = collected.build(directory, multi_label=multi_label)
    report = CpscReport(str(directory), len(headers), tuple(dropped), collected.truncated)
    log.info(
        "CPSC2018: %d records of %d read from %s (%d with several labels dropped, %d truncated), %.1f MB",
        len(records),
        len(headers),
        directory,
        len(dropped),
        collected.truncated,
        records.nbytes / 1e6,
    )
    return records, report
