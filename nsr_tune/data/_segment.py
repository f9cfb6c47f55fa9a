"""MIT-BIH Arrhythmia Database -> fixed-length, AAMI-labelled heartbeats: the preprocessing.

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
5. Segments, by the beat representation (``input``, see INPUTS in _beats).
   ``kachuee`` (the paper's): a beat's segment starts at its R peak and is round(1.2 * T) samples
   long (halves up, at least 1). It is truncated or zero-padded to 187 samples (BEAT_LEN);
   ``length`` is min(segment length, 187), the number of real samples.
   ``rhythm``: 375 samples, 187 before the R peak, the R peak, and 187 after it (1.5 s either
   side), so the previous and the next beats and both RR intervals are in the input. There is no
   padding: ``length`` is 375.
   ``context``, ``lookback`` and ``lookback30`` are windows of the same kind that reach 4 s, 10 s
   and 30 s back.
   Either way a beat is kept only if its whole segment lies inside the record; the others (the
   last beat or two of a record, and for ``rhythm`` also the first) are counted in
   ``dropped_out_of_record``. ``lookback30`` keeps the beats whose window starts before the record
   (its first 30 s): the stretch before the record holds the record's first sample.
6. Normalisation. A beat is scaled with the min and max of its R peak's 10 s window. When its stored
   samples run outside that window (past its end, or for ``rhythm`` also before its start), those
   samples are included in the min and max, so that every stored value stays in [0, 1] (such a
   sample can be higher than anything in the window, e.g. the next window's biggest R wave);
   elsewhere this is exactly Kachuee's per-window scaling. ``amp_mv`` is that max - min in mV, so
   the original amplitude can be recovered (x * amp_mv + min).
7. Labels. Symbols in AAMI_MAP become AAMI classes (N: N L R e j; S: A a J S; V: V E; F: F;
   Q: / f Q). Non-beat annotations (rhythm, noise, artefacts, comments, flutter: + ~ | x " ! [ ]
   etc.) are dropped and counted per symbol in ``dropped_non_beat``. WFDB beat codes outside the
   AAMI map (B r n ?) and symbols WFDB does not define are dropped too, counted in
   ``unknown_symbols`` and logged as a warning; they do not stop the load.

Step 1 lives in _records, steps 2-7 here (``segment_beats``; step 2 alone: ``resample_to_fs``);
``load_mitbih`` in _mitbih ties them together. Everything per record is vectorised with numpy;
the full database takes a few seconds uncached. Results are cached (see _cache) under a
fingerprint of the source bytes, settings and PREPROCESS_VERSION.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from nsr_tune.data._beats import AAMI_MAP, FS, INPUTS
from nsr_tune.errors import DataError

__all__ = ["PREPROCESS_VERSION", "WINDOW_S", "RecordBeats", "resample_to_fs", "segment_beats"]

#: Bump whenever the preprocessing changes in any way that alters the beats or the report.
PREPROCESS_VERSION = "1"
WINDOW_S = 10
_WINDOW = FS * WINDOW_S

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


@dataclass(frozen=True)
class RecordBeats:
    """The beats of one record, and what of its annotations was left out."""

    x: np.ndarray
    y: np.ndarray
    length: np.ndarray
    amp_mv: np.ndarray
    dropped_out_of_record: int
    dropped_non_beat: Counter[str]
    unknown_symbols: Counter[str]


def _rr_periods(pos_all: np.ndarray, is_rr_beat: np.ndarray, n: int, where: str) -> tuple[np.ndarray, int]:
    """Step 4: twice the median RR (an integer, so round(1.2 T) below is exact) in each 10 s window
    (-1 where a window has no RR interval of its own), and over the whole record."""
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
    rec_m2 = int(_twice_median_per_group(rr, np.zeros_like(rr), 1)[0])
    return win_m2, rec_m2


def _scaled(
    x: np.ndarray, start: np.ndarray, length: np.ndarray, win: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Step 6: each segment (B, width), its stored samples scaled by its window's range widened
    by any stored samples outside the window, its padding 0; and that range in mV (B,)."""
    n = x.shape[0]
    offsets = np.arange(width)
    idx = start[:, None] + offsets
    stored = offsets < length[:, None]
    # Clipped: padding positions, zeroed below, and with fill_before the stretch before the record.
    raw = x[np.clip(idx, 0, n - 1)]
    starts = np.arange(0, n, _WINDOW)
    lo_win, hi_win = np.minimum.reduceat(x, starts)[win], np.maximum.reduceat(x, starts)[win]
    spill = stored & ((idx >= ((win + 1) * _WINDOW)[:, None]) | (idx < (win * _WINDOW)[:, None]))
    lo = np.minimum(lo_win, np.where(spill, raw, np.inf).min(axis=1))
    hi = np.maximum(hi_win, np.where(spill, raw, -np.inf).max(axis=1))
    amp = hi - lo
    scale = np.where(amp > 0, amp, 1.0)  # flat window: all-zero beat instead of 0/0
    return np.where(stored, (raw - lo[:, None]) / scale[:, None], 0.0).astype(np.float32), amp


def resample_to_fs(
    signal_mv: np.ndarray, fs: float, ann_samples: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: a lead (n0,) at ``fs`` -> (n,) at FS, and annotation samples (k,) -> (k,) at FS.

    No filtering besides resample_poly's own anti-aliasing filter; what every beat is cut from."""
    from scipy.signal import resample_poly  # here, so that importing nsr_tune.data stays cheap

    ratio = Fraction(FS) / Fraction(fs).limit_denominator(10_000)
    up, down = ratio.numerator, ratio.denominator
    at_fs = (2 * np.asarray(ann_samples) * up + down) // (2 * down)  # round(s * up / down), halves up, exact
    return resample_poly(signal_mv, up, down), at_fs


def segment_beats(
    signal_mv: np.ndarray,
    fs: float,
    ann_samples: np.ndarray,
    ann_symbols: Sequence[str],
    *,
    where: str,
    input: str = "kachuee",
) -> RecordBeats:
    """Steps 2-7 of the module docstring for one lead of one record (``where`` names it in errors).

    ``input`` names the beat representation (a key of INPUTS)."""
    spec = INPUTS[input]
    x, pos_all = resample_to_fs(signal_mv, fs, ann_samples)
    n = x.shape[0]

    symbols = list(ann_symbols)
    cls_all = np.fromiter((AAMI_MAP.get(s, -1) for s in symbols), dtype=np.int64, count=len(symbols))
    is_beat = cls_all >= 0
    is_rr_beat = is_beat | np.fromiter(
        (s in _OTHER_BEAT_SYMBOLS for s in symbols), dtype=bool, count=len(symbols)
    )
    empty = RecordBeats(
        x=np.zeros((0, spec.width), np.float32),
        y=np.zeros(0, np.int64),
        length=np.zeros(0, np.int32),
        amp_mv=np.zeros(0, np.float32),
        dropped_out_of_record=0,
        dropped_non_beat=Counter(s for s in symbols if s in _NON_BEAT_SYMBOLS),
        unknown_symbols=Counter(s for s in symbols if s not in AAMI_MAP and s not in _NON_BEAT_SYMBOLS),
    )
    if not is_beat.any():
        return empty
    win_m2, rec_m2 = _rr_periods(pos_all, is_rr_beat, n, where)

    # Step 5: where each segment starts, how long it is, and which segments fit inside the record.
    pos, y = pos_all[is_beat], cls_all[is_beat]
    win = pos // _WINDOW
    if spec.before == 0:  # kachuee: 1.2 T from the R peak
        m2 = np.where(win_m2[win] >= 0, win_m2[win], rec_m2)
        seg_len = np.maximum((6 * m2 + 5) // 10, 1)  # round(1.2 * T) = round(0.6 * 2T), halves up
    else:  # a fixed window around the R peak
        seg_len = np.full_like(pos, spec.width)
    start = pos - spec.before
    inside = ((start >= 0) | spec.fill_before) & (start + seg_len <= n)
    dropped_out = int((~inside).sum())
    start, y, win, seg_len = start[inside], y[inside], win[inside], seg_len[inside]
    if start.size == 0:
        return replace(empty, dropped_out_of_record=dropped_out)
    length = np.minimum(seg_len, spec.width)
    beats, amp = _scaled(x, start, length, win, spec.width)
    return replace(
        empty,
        x=beats,
        y=y,
        length=length.astype(np.int32),
        amp_mv=amp.astype(np.float32),
        dropped_out_of_record=dropped_out,
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
