"""``load_mitbih``: MIT-BIH records -> cached, AAMI-labelled beats, and the LoadReport of what was read.

Reading a record is in _records, cutting it into beats in _segment, whose docstring documents every
preprocessing choice; caching is in _cache.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm import tqdm

from nsr_tune.data import _cache
from nsr_tune.data._beats import FS, INPUTS, BeatSet
from nsr_tune.data._download import resolve_data_dir
from nsr_tune.data._records import RecordInfo, inspect_record, list_records, read_record
from nsr_tune.data._segment import PREPROCESS_VERSION, WINDOW_S, RecordBeats, resample_to_fs, segment_beats
from nsr_tune.errors import ConfigError, DataError

__all__ = ["LoadReport", "MitbihRecord", "load_mitbih", "load_records", "read_mitbih_record"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadReport:
    """What load_mitbih read and what it left out.

    ``leads`` maps record -> lead name used; ``dropped_non_beat`` and ``unknown_symbols`` map an
    annotation symbol -> how many were dropped; ``fingerprint`` is the cache key (sha256 hex over
    the source files, settings and PREPROCESS_VERSION).
    """

    data_dir: str
    records: tuple[int, ...]
    leads: Mapping[int, str]
    notes: tuple[str, ...]
    dropped_out_of_record: int
    dropped_non_beat: Mapping[str, int]
    unknown_symbols: Mapping[str, int]
    fingerprint: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["records"] = list(self.records)
        data["leads"] = {str(rec): name for rec, name in self.leads.items()}
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadReport:
        return cls(
            data_dir=str(data["data_dir"]),
            records=tuple(int(r) for r in data["records"]),
            leads={int(rec): str(name) for rec, name in data["leads"].items()},
            notes=tuple(str(n) for n in data["notes"]),
            dropped_out_of_record=int(data["dropped_out_of_record"]),
            dropped_non_beat={str(k): int(v) for k, v in data["dropped_non_beat"].items()},
            unknown_symbols={str(k): int(v) for k, v in data["unknown_symbols"].items()},
            fingerprint=str(data["fingerprint"]),
        )


class MitbihRecord(NamedTuple):
    """One lead of a MIT-BIH record as the beats are cut from it, and its reference annotations.

    ``signal`` (n,) is the lead in mV at FS (step 2 of _segment: resample_poly, no other filter;
    the per-window min-max scaling of step 6 is left out); ``ann_at_fs`` (k,) the annotations'
    positions at FS, rounded as the beats' R peaks are; ``symbols`` (k,) their WFDB codes, every
    annotation, beat or not; ``raw_mv`` (n0,), ``ann_samples`` (k,) and ``fs`` the lead and the
    annotations at the record's own rate (360 Hz); ``lead`` the lead's name.
    """

    number: int
    lead: str
    signal: np.ndarray
    ann_at_fs: np.ndarray
    symbols: tuple[str, ...]
    raw_mv: np.ndarray
    ann_samples: np.ndarray
    fs: float


# ----------------------------------------------------------------------------------------- API


def load_mitbih(
    data_dir: str | Path,
    *,
    records: Sequence[int] | None = None,
    lead: str = "MLII",
    input: str = "kachuee",
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[BeatSet, LoadReport]:
    """Read MIT-BIH records from ``data_dir`` and cut them into beats (see the docstring of _segment).

    ``data_dir``: a directory of WFDB records, or "bundled" for the records shipped with nsr-tune.
    ``records``: record numbers to read (default: all listed in RECORDS, else all *.hea files).
    ``lead``: signal name to use, e.g. "MLII" or "V5". ``input``: the beat representation, a key
    of INPUTS (kachuee: the paper's; rhythm: a window over the previous and next beats;
    context: 4 s back and 1.5 s ahead; lookback: 10 s back and 1.5 s ahead;
    lookback30: 30 s back and 1.5 s ahead).
    ``cache_dir``: where preprocessed beats are cached (default: default_cache_dir()).
    ``progress``: show a progress bar while reading.
    Raises DataError naming the file and the problem for anything wrong with the data.
    """
    wanted = _check_arguments(records, lead, input, cache_dir, progress)
    root = resolve_data_dir(data_dir)
    chosen = _chosen_records(root, wanted)
    infos = [inspect_record(root, rec, lead) for rec in chosen]
    settings = {
        "preprocess_version": PREPROCESS_VERSION,
        "lead": lead,
        "fs": FS,
        "beat_len": INPUTS[input].width,
        "window_s": WINDOW_S,
        "records": list(chosen),
    }
    if input != "kachuee":  # kachuee's cache key, and so its fingerprint, predate the choice
        settings["input"] = input
    return load_records(root, infos, settings=settings, input=input, cache_dir=cache_dir, progress=progress)


def load_records(
    root: Path,
    infos: Sequence[RecordInfo],
    *,
    settings: Mapping[str, Any],
    input: str,
    cache_dir: str | Path | None,
    progress: bool,
    what: str = "MIT-BIH records",
) -> tuple[BeatSet, LoadReport]:
    """The beats of the inspected records `infos` (each beat's record id is its RecordInfo's
    `number`), from the cache when it holds them under the fingerprint of their files and
    `settings`, else cut (steps 2-7 of _segment) and cached: the pipeline that load_mitbih and
    the `wfdb:` datasets share. `what` names the records on the progress bar."""
    started = time.perf_counter()
    key = _cache.fingerprint([f for info in infos for f in info.files], settings)
    cache_root = (
        Path(os.fspath(cache_dir)).expanduser() if cache_dir is not None else _cache.default_cache_dir()
    )
    cached = _cache.load(cache_root, key)
    if cached is not None:
        arrays, report_json = cached
        # The same bytes may live in another directory now; report where they were read from today.
        report = LoadReport.from_json({**report_json, "data_dir": str(root)})
        for note in report.notes:
            logger.info("%s", note)
        beats = BeatSet(**arrays)
        where = _cache.cache_file(cache_root, key)
        seconds = time.perf_counter() - started
        logger.info(
            "loaded %d beats from %d records from the cache %s in %.2f s",
            len(beats),
            len(infos),
            where,
            seconds,
        )
        return beats, report
    beats, report = _preprocess(root, infos, input=input, key=key, progress=progress, what=what)
    _cache.save(cache_root, key, {name: getattr(beats, name) for name in _cache.ARRAY_KEYS}, report.to_json())
    seconds = time.perf_counter() - started
    logger.info("preprocessed %d beats from %d records in %.2f s", len(beats), len(infos), seconds)
    return beats, report


def read_mitbih_record(data_dir: str | Path, record: int, *, lead: str = "MLII") -> MitbihRecord:
    """One record's lead as load_mitbih reads it (by name: MLII, or V5 in 102 and 104, which have
    none), resampled to FS, with its annotations at FS and at the record's own rate. Not cached.
    Raises DataError for anything wrong with the files, ConfigError for a bad argument."""
    (number,) = _check_records_arg([record])
    _check_arguments(None, lead, "kachuee", None, False)
    root = resolve_data_dir(data_dir)
    info = inspect_record(root, _chosen_records(root, (number,))[0], lead)
    if info.note:
        logger.info("%s", info.note)
    raw = read_record(info)
    signal, ann_at_fs = resample_to_fs(raw.signal_mv, raw.fs, raw.ann_samples)
    return MitbihRecord(
        number=number,
        lead=info.lead,
        signal=signal,
        ann_at_fs=ann_at_fs,
        symbols=tuple(raw.ann_symbols),
        raw_mv=raw.signal_mv,
        ann_samples=raw.ann_samples,
        fs=raw.fs,
    )


def _preprocess(
    root: Path, infos: Sequence[RecordInfo], *, input: str, key: str, progress: bool, what: str
) -> tuple[BeatSet, LoadReport]:
    """The beats of every record, and the report of what was read and left out."""
    parts: list[RecordBeats] = []
    for info in tqdm(infos, desc=what, unit="record", disable=not progress):
        if info.note:
            logger.info("%s", info.note)
        parts.append(_record_beats(info, input))
    report = LoadReport(
        data_dir=str(root),
        records=tuple(info.number for info in infos),
        leads={info.number: info.lead for info in infos},
        notes=tuple(info.note for info in infos if info.note),
        dropped_out_of_record=sum(p.dropped_out_of_record for p in parts),
        dropped_non_beat=_sorted_counts(sum((p.dropped_non_beat for p in parts), Counter())),
        unknown_symbols=_sorted_counts(sum((p.unknown_symbols for p in parts), Counter())),
        fingerprint=key,
    )
    beats = BeatSet(
        x=np.concatenate([p.x for p in parts])[:, None, :],
        y=np.concatenate([p.y for p in parts]),
        length=np.concatenate([p.length for p in parts]),
        record=np.concatenate(
            [np.full(len(p.y), info.number, np.int32) for p, info in zip(parts, infos, strict=True)]
        ),
        amp_mv=np.concatenate([p.amp_mv for p in parts]),
    )
    return beats, report


# ------------------------------------------------------------------------------------ helpers


def _check_arguments(
    records: Sequence[int] | None, lead: str, input: str, cache_dir: str | Path | None, progress: bool
) -> tuple[int, ...] | None:
    """load_mitbih's arguments, each checked before any file is read; the records wanted."""
    wanted = _check_records_arg(records)
    if not isinstance(lead, str) or not lead.strip():
        raise ConfigError(f"lead must be a non-empty signal name such as 'MLII', got {lead!r}")
    if not isinstance(input, str) or input not in INPUTS:
        raise ConfigError(f"input: unknown beat representation {input!r}; choose one of {', '.join(INPUTS)}")
    if cache_dir is not None and (not isinstance(cache_dir, (str, os.PathLike)) or not os.fspath(cache_dir)):
        raise ConfigError(f"cache_dir must be a non-empty path or None, got {cache_dir!r}")
    if not isinstance(progress, bool):
        raise ConfigError(f"progress must be True or False, got {progress!r}")
    return wanted


def _chosen_records(root: Path, wanted: tuple[int, ...] | None) -> tuple[int, ...]:
    """The records to read: those wanted (each must be in `root`), else every one there."""
    available = list_records(root)
    if wanted is None:
        return tuple(available)
    missing = sorted(set(wanted) - set(available))
    if missing:
        raise DataError(
            f"{root}: no record {', '.join(map(str, missing))} in this directory "
            f"(it has {len(available)}: {_short_list(available)})"
        )
    return tuple(sorted(wanted))


def _check_records_arg(records: Sequence[int] | None) -> tuple[int, ...] | None:
    if records is None:
        return None
    if isinstance(records, (str, bytes)) or not isinstance(records, (Sequence, np.ndarray)):
        raise ConfigError(f"records must be a sequence of record numbers such as [100, 101], got {records!r}")
    bad = [r for r in records if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, np.integer))]
    if bad:
        raise ConfigError(f"records must be integers such as 100, got {bad[0]!r}")
    wanted = tuple(int(r) for r in records)
    if not wanted:
        raise ConfigError("records must name at least one record (or be None for all)")
    dupes = sorted(r for r, n in Counter(wanted).items() if n > 1)
    if dupes:
        raise ConfigError(f"records lists {', '.join(map(str, dupes))} more than once")
    return wanted


def _record_beats(info: RecordInfo, input: str) -> RecordBeats:
    signal = read_record(info)
    beats = segment_beats(
        signal.signal_mv,
        signal.fs,
        signal.ann_samples,
        signal.ann_symbols,
        where=f"{info.files[-1]} (record {info.number})",
        input=input,
    )
    if beats.unknown_symbols:
        logger.warning(
            "record %d: dropped %d annotation(s) whose symbol is not an AAMI beat nor a known non-beat: %s",
            info.number,
            sum(beats.unknown_symbols.values()),
            dict(beats.unknown_symbols),
        )
    return beats


def _sorted_counts(counts: Counter[str]) -> dict[str, int]:
    return {symbol: int(counts[symbol]) for symbol in sorted(counts)}


def _short_list(records: Sequence[int], limit: int = 12) -> str:
    shown = ", ".join(map(str, records[:limit]))
    return shown + (", ..." if len(records) > limit else "")
