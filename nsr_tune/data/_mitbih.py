"""MIT-BIH Arrhythmia Database -> fixed-length, AAMI-labelled heartbeats.

The beats follow Kachuee, Fazeli & Sarrafzadeh, "ECG Heartbeat Classification: A Deep Transferable
Representation" (IEEE ICHI 2018), the data the NSR paper (Ma & Liang, arXiv 2110.09759) trained on,
with these pinned choices. Any change to them must bump PREPROCESS_VERSION so caches are rebuilt.

1. Reading. Each record is read with ``wfdb.rdrecord`` and its reference annotations with
   ``wfdb.rdann(..., "atr")``. One lead is used, looked up by *name* (default MLII), never by channel
   number: MLII is channel 0 in 45 records but channel 1 in record 114. Records 102 and 104 have no
   MLII at all (they are paced records recorded with V5 and V2); when MLII is asked for they use their
   first lead (V5), and a note says so in the LoadReport and the log, because dropping them would
   silently change the paced/Q class. Any other record without the lead asked for is an error.
   Before any signal is decoded the header is parsed and every file is checked to exist and, for
   fixed-width formats, to be as long as the header says: wfdb itself fails on a truncated format
   212 file with an unrelated numpy broadcasting error. A lead containing invalid samples (NaN in
   wfdb's physical signal, i.e. -2048 in format 212) is an error, as NaN would poison the min-max.
2. Resampling. 360 Hz -> 125 Hz (FS) with ``scipy.signal.resample_poly(sig, 25, 72)`` (the ratio is
   derived from the header's rate, which is 360 Hz in every MIT-BIH record). An annotation at sample
   s moves to round(s * 125 / 360), rounding halves up, computed in integers so it is exact.
3. Windows. The resampled record is cut into consecutive 10 s windows (1250 samples); the last one
   is shorter. Each window is min-max normalised to [0, 1] (Kachuee step 2). A flat window
   (max == min) is divided by 1 instead of 0: its beats become all zeros with amp_mv 0, rather than
   NaN; no MIT-BIH record has such a window.
4. Beat period. T is the median RR interval, in 125 Hz samples, between consecutive beats whose R
   peaks both lie in the window. "Beats" here are all beat annotations of any class: the AAMI
   symbols plus the other WFDB beat codes (B r n ?); not the ventricular flutter waves "!" that
   record 207 has during flutter, which are not beats for AAMI. A window holding fewer than two
   beats has no RR interval and uses the median RR over the whole record instead. Kachuee et al.
   detect R peaks with a threshold; we use the reference annotations instead, so every labelled
   beat is used exactly once and the label is certain.
5. Segments. A beat's segment starts at its R peak and is round(1.2 * T) samples long (halves up,
   at least 1). It is truncated or zero-padded to 187 samples (BEAT_LEN); ``length`` is
   min(segment length, 187), the number of real samples. A beat is kept only if its whole segment
   lies inside the record; the others (the last beat or two of a record) are counted in
   ``dropped_out_of_record``.
6. Normalisation. A beat is scaled with the min and max of its R peak's 10 s window. When its stored
   samples run past the end of that window, the spill-over samples are included in the min and max,
   so that every stored value stays in [0, 1] (a spill-over sample can be higher than anything in
   the window, e.g. the next window's biggest R wave); elsewhere this is exactly Kachuee's
   per-window scaling. ``amp_mv`` is that max - min in mV, so the original amplitude can be
   recovered (x * amp_mv + min).
7. Labels. Symbols in AAMI_MAP become AAMI classes (N: N L R e j; S: A a J S; V: V E; F: F;
   Q: / f Q). Non-beat annotations (rhythm, noise, artefacts, comments, flutter: + ~ | x " ! [ ]
   etc.) are dropped and counted per symbol in ``dropped_non_beat``. WFDB beat codes outside the
   AAMI map (B r n ?) and symbols WFDB does not define are dropped too, counted in
   ``unknown_symbols`` and logged as a warning; they do not stop the load.

Everything per record is vectorised with numpy; the full database takes a few seconds uncached.
Results are cached (see _cache) under a fingerprint of the source bytes, settings and
PREPROCESS_VERSION.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import wfdb
from scipy.signal import resample_poly
from tqdm import tqdm

from nsr_tune.data import _cache
from nsr_tune.data._beats import AAMI_MAP, BEAT_LEN, FS, BeatSet
from nsr_tune.data._download import resolve_data_dir
from nsr_tune.errors import ConfigError, DataError

__all__ = ["PREPROCESS_VERSION", "WINDOW_S", "LoadReport", "load_mitbih"]

logger = logging.getLogger(__name__)

#: Bump whenever the preprocessing changes in any way that alters the beats or the report.
PREPROCESS_VERSION = "1"
WINDOW_S = 10
_WINDOW = FS * WINDOW_S

#: Records with no MLII lead at all; with lead="MLII" they fall back to their first lead.
_NO_MLII_RECORDS = frozenset({102, 104})

#: WFDB beat codes (isqrs) that AAMI_MAP leaves out: counted as unknown, used for RR intervals.
_OTHER_BEAT_SYMBOLS = frozenset({"B", "r", "n", "?"})

#: WFDB annotation codes that are not beats. "!" (ventricular flutter wave) is here on purpose, see 4.
_NON_BEAT_SYMBOLS = frozenset(
    {
        "+",
        "~",
        "|",
        "x",
        '"',
        "!",
        "[",
        "]",
        "s",
        "T",
        "*",
        "D",
        "=",
        "p",
        "t",
        "u",
        "^",
        "@",
        "(",
        ")",
        "`",
        "'",
    }
)

#: Bytes per sample of the fixed-width WFDB signal formats (212 is handled apart: 3 bytes per 2).
_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "61": 2, "80": 1, "160": 2, "24": 3, "32": 4}

#: Physical units the lead may be in, and the factor that turns them into mV.
_TO_MV = {"mV": 1.0, "mv": 1.0, "uV": 1e-3, "µV": 1e-3, "μV": 1e-3, "V": 1e3}


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


@dataclass(frozen=True)
class _RecordInfo:
    """A record whose header parsed and whose files are all present and long enough."""

    number: int
    base: Path  # path without extension, as wfdb wants it
    channel: int
    lead: str
    to_mv: float
    sig_len: int | None
    files: tuple[Path, ...]  # .hea, signal file(s), .atr: exactly what the fingerprint hashes
    note: str | None


@dataclass(frozen=True)
class _RecordBeats:
    x: np.ndarray
    y: np.ndarray
    length: np.ndarray
    amp_mv: np.ndarray
    dropped_out_of_record: int
    dropped_non_beat: Counter[str]
    unknown_symbols: Counter[str]


# ----------------------------------------------------------------------------------------- API


def load_mitbih(
    data_dir: str | Path,
    *,
    records: Sequence[int] | None = None,
    lead: str = "MLII",
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[BeatSet, LoadReport]:
    """Read MIT-BIH records from ``data_dir`` and cut them into beats (see the module docstring).

    ``data_dir``: a directory of WFDB records, or "bundled" for the records shipped with nsr-tune.
    ``records``: record numbers to read (default: all listed in RECORDS, else all *.hea files).
    ``lead``: signal name to use, e.g. "MLII" or "V5". ``cache_dir``: where preprocessed beats are
    cached (default: default_cache_dir()). ``progress``: show a progress bar while reading.
    Raises DataError naming the file and the problem for anything wrong with the data.
    """
    wanted = _check_records_arg(records)
    if not isinstance(lead, str) or not lead.strip():
        raise ConfigError(f"lead must be a non-empty signal name such as 'MLII', got {lead!r}")
    if cache_dir is not None and (not isinstance(cache_dir, (str, os.PathLike)) or not os.fspath(cache_dir)):
        raise ConfigError(f"cache_dir must be a non-empty path or None, got {cache_dir!r}")
    if not isinstance(progress, bool):
        raise ConfigError(f"progress must be True or False, got {progress!r}")

    started = time.perf_counter()
    root = resolve_data_dir(data_dir)
    available = _list_records(root)
    if wanted is None:
        chosen = available
    else:
        missing = sorted(set(wanted) - set(available))
        if missing:
            raise DataError(
                f"{root}: no record {', '.join(map(str, missing))} in this directory "
                f"(it has {len(available)}: {_short_list(available)})"
            )
        chosen = tuple(sorted(wanted))

    infos = [_inspect_record(root, rec, lead) for rec in chosen]
    settings = {
        "preprocess_version": PREPROCESS_VERSION,
        "lead": lead,
        "fs": FS,
        "beat_len": BEAT_LEN,
        "window_s": WINDOW_S,
        "records": list(chosen),
    }
    key = _cache.fingerprint([f for info in infos for f in info.files], settings)
    cache_root = (
        Path(os.fspath(cache_dir)).expanduser() if cache_dir is not None else _cache.default_cache_dir()
    )

    cached = _cache.load(cache_root, key)
    if cached is not None:
        arrays, report_json = cached
        # The same bytes may live in another directory now; report where they were read from today.
        report = LoadReport.from_json({**report_json, "data_dir": str(root)})
        beats = BeatSet(**arrays)
        for note in report.notes:
            logger.info("%s", note)
        logger.info(
            "loaded %d beats from %d records from the cache %s in %.2f s",
            len(beats),
            len(chosen),
            _cache.cache_file(cache_root, key),
            time.perf_counter() - started,
        )
        return beats, report

    parts: list[_RecordBeats] = []
    for info in tqdm(infos, desc="MIT-BIH records", unit="record", disable=not progress):
        if info.note:
            logger.info("%s", info.note)
        parts.append(_record_beats(info))

    report = LoadReport(
        data_dir=str(root),
        records=chosen,
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
    _cache.save(cache_root, key, {name: getattr(beats, name) for name in _cache.ARRAY_KEYS}, report.to_json())
    logger.info(
        "preprocessed %d beats from %d records in %.2f s",
        len(beats),
        len(chosen),
        time.perf_counter() - started,
    )
    return beats, report


# -------------------------------------------------------------------------- records and files


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


def _list_records(root: Path) -> tuple[int, ...]:
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


def _inspect_record(root: Path, rec: int, lead: str) -> _RecordInfo:
    """Parse the header and check every file before any signal is decoded or hashed."""
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
    return _RecordInfo(
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


# ---------------------------------------------------------------------------- preprocessing


def _record_beats(info: _RecordInfo) -> _RecordBeats:
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

    beats = segment_beats(
        sig * info.to_mv,
        float(record.fs),
        np.asarray(ann.sample, dtype=np.int64),
        list(ann.symbol),
        where=f"{atr} (record {info.number})",
    )
    if beats.unknown_symbols:
        logger.warning(
            "record %d: dropped %d annotation(s) whose symbol is not an AAMI beat nor a known non-beat: %s",
            info.number,
            sum(beats.unknown_symbols.values()),
            dict(beats.unknown_symbols),
        )
    return beats


def segment_beats(
    signal_mv: np.ndarray, fs: float, ann_samples: np.ndarray, ann_symbols: Sequence[str], *, where: str
) -> _RecordBeats:
    """Steps 2-7 of the module docstring for one lead of one record (``where`` names it in errors)."""
    ratio = Fraction(FS) / Fraction(fs).limit_denominator(10_000)
    up, down = ratio.numerator, ratio.denominator
    x = resample_poly(signal_mv, up, down)
    n = x.shape[0]

    symbols = list(ann_symbols)
    pos_all = (2 * ann_samples * up + down) // (2 * down)  # round(s * up / down), halves up, exact
    cls_all = np.fromiter((AAMI_MAP.get(s, -1) for s in symbols), dtype=np.int64, count=len(symbols))
    is_beat = cls_all >= 0
    is_rr_beat = is_beat | np.fromiter(
        (s in _OTHER_BEAT_SYMBOLS for s in symbols), dtype=bool, count=len(symbols)
    )
    non_beat = Counter(s for s in symbols if s in _NON_BEAT_SYMBOLS)
    unknown = Counter(s for s in symbols if s not in AAMI_MAP and s not in _NON_BEAT_SYMBOLS)

    empty = _RecordBeats(
        x=np.zeros((0, BEAT_LEN), np.float32),
        y=np.zeros(0, np.int64),
        length=np.zeros(0, np.int32),
        amp_mv=np.zeros(0, np.float32),
        dropped_out_of_record=0,
        dropped_non_beat=non_beat,
        unknown_symbols=unknown,
    )
    if not is_beat.any():
        return empty

    # Step 4: twice the median RR (an integer, so round(1.2 T) below is exact) per window and overall.
    rr_pos = np.sort(pos_all[is_rr_beat])
    if rr_pos.size < 2:
        raise DataError(
            f"{where}: only one beat annotation; at least two are needed to measure an RR interval"
        )
    rr = np.diff(rr_pos)
    rr_win = rr_pos // _WINDOW
    n_groups = max(-(-n // _WINDOW), int(rr_win[-1]) + 1)
    same = rr_win[1:] == rr_win[:-1]
    win_m2 = _twice_median_per_group(rr[same], rr_win[1:][same], n_groups)
    rec_m2 = _twice_median_per_group(rr, np.zeros_like(rr), 1)[0]

    # Step 5: segment lengths, and which segments fit inside the record.
    pos, y = pos_all[is_beat], cls_all[is_beat]
    win = pos // _WINDOW
    m2 = np.where(win_m2[win] >= 0, win_m2[win], rec_m2)
    seg_len = np.maximum((6 * m2 + 5) // 10, 1)  # round(1.2 * T) = round(0.6 * 2T), halves up
    inside = pos + seg_len <= n
    dropped_out = int((~inside).sum())
    pos, y, win, seg_len = pos[inside], y[inside], win[inside], seg_len[inside]
    if pos.size == 0:
        return replace(empty, dropped_out_of_record=dropped_out)
    length = np.minimum(seg_len, BEAT_LEN)

    # Step 6: scale by the window's range, widened by any stored samples past the window's end.
    offsets = np.arange(BEAT_LEN)
    idx = pos[:, None] + offsets
    stored = offsets < length[:, None]
    raw = x[np.minimum(idx, n - 1)]  # only padding positions can be clipped, and they are zeroed below
    starts = np.arange(0, n, _WINDOW)
    lo_win, hi_win = np.minimum.reduceat(x, starts)[win], np.maximum.reduceat(x, starts)[win]
    spill = stored & (idx >= ((win + 1) * _WINDOW)[:, None])
    lo = np.minimum(lo_win, np.where(spill, raw, np.inf).min(axis=1))
    hi = np.maximum(hi_win, np.where(spill, raw, -np.inf).max(axis=1))
    amp = hi - lo
    scale = np.where(amp > 0, amp, 1.0)  # flat window: all-zero beat instead of 0/0
    beats = np.where(stored, (raw - lo[:, None]) / scale[:, None], 0.0).astype(np.float32)

    return _RecordBeats(
        x=beats,
        y=y,
        length=length.astype(np.int32),
        amp_mv=amp.astype(np.float32),
        dropped_out_of_record=dropped_out,
        dropped_non_beat=non_beat,
        unknown_symbols=unknown,
    )


def _twice_median_per_group(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """2 x median of the integer ``values`` in each group 0..n_groups-1; -1 for an empty group."""
    out = np.full(n_groups, -1, dtype=np.int64)
    if values.size == 0:
        return out
    order = np.lexsort((values, groups))
    sorted_values = values[order]
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has = counts > 0
    lower = starts[has] + (counts[has] - 1) // 2
    upper = starts[has] + counts[has] // 2
    out[has] = sorted_values[lower] + sorted_values[upper]
    return out


def _sorted_counts(counts: Counter[str]) -> dict[str, int]:
    return {symbol: int(counts[symbol]) for symbol in sorted(counts)}


def _short_list(records: Sequence[int], limit: int = 12) -> str:
    shown = ", ".join(map(str, records[:limit]))
    return shown + (", ..." if len(records) > limit else "")
