"""R-peak detectors scored beat by beat against the MIT-BIH reference annotations.

A detection matches a reference beat within the standard 150 ms (ANSI/AAMI EC57, WFDB's bxb);
the matching is `wfdb.processing.compare_annotations`, at the record's own rate (360 Hz), so a
detector that runs at FS has its peaks mapped back (`at_record_rate`) and every detector is
scored against the same, unrounded annotations. Sensitivity Se = TP / (TP + FN), positive
predictivity +P = TP / (TP + FP).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from nsr_tune.data._beats import FS
from nsr_tune.data._download import resolve_data_dir
from nsr_tune.data._mitbih import MitbihRecord, read_mitbih_record
from nsr_tune.data._records import list_records

__all__ = ["MATCH_WINDOW_S", "QRS_SYMBOLS", "DetectionCounts", "at_record_rate", "detection_counts"]

#: The reference beats: every WFDB QRS code (`wfdb.io.annotation.is_qrs`, WFDB's isqrs): the
#: AAMI_MAP symbols (paced '/' and 'f' and unclassifiable 'Q' among them, so the paced records
#: 102, 104, 107 and 217 count in full), the other beat codes B r n ? (left out of the AAMI
#: classes, but each a ventricular depolarisation a detector should find), and the ventricular
#: flutter waves '!' of record 207. These are no beats to classify (data._segment leaves them
#: out) but are QRS complexes to detect: EC57 would leave the flutter episode out altogether,
#: detections included; keeping its waves as reference counts a detector that fires on them as
#: right, where dropping only the reference would count every such detection a false positive.
QRS_SYMBOLS = frozenset("NLRaVFJASEj/QB?!enfr")
#: A detection within this of a reference beat matches it (compare_annotations: strictly closer
#: than round(0.15 s x fs) samples, i.e. 53 samples = 147 ms at 360 Hz).
MATCH_WINDOW_S = 0.15


@dataclass(frozen=True)
class DetectionCounts:
    """One record's (or a sum of records') true positives, false positives and missed beats, and
    the seconds the detector took on it."""

    tp: int
    fp: int
    fn: int
    seconds: float = 0.0

    @property
    def se(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def ppv(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    def __add__(self, other: DetectionCounts) -> DetectionCounts:
        return DetectionCounts(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.seconds + other.seconds
        )

    @classmethod
    def total(cls, counts: Iterable[DetectionCounts]) -> DetectionCounts:
        return sum(counts, cls(0, 0, 0))

    def to_json(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "se": self.se,
            "ppv": self.ppv,
            "seconds": self.seconds,
        }


def at_record_rate(peaks_at_fs: np.ndarray, fs: float) -> np.ndarray:
    """(P,) sample indices at FS -> (P,) at the record's rate ``fs``, rounded, halves up (exact)."""
    ratio = Fraction(fs).limit_denominator(10_000) / FS
    up, down = ratio.numerator, ratio.denominator
    return (2 * np.asarray(peaks_at_fs, dtype=np.int64) * up + down) // (2 * down)


def detection_counts(
    data_dir: str | Path,
    detect: Callable[[MitbihRecord], np.ndarray],
    *,
    records: Sequence[int] | None = None,
    lead: str = "MLII",
    window_s: float = MATCH_WINDOW_S,
) -> Mapping[int, DetectionCounts]:
    """Each record's counts for ``detect``: a `read_mitbih_record` record -> (P,) its R peaks in
    samples at the record's own rate (``record.fs``), matched against the QRS_SYMBOLS annotations.

    ``records``: default every record of ``data_dir``. Only the call to ``detect`` is timed."""
    from wfdb.processing import compare_annotations  # here, so that importing nsr_tune.data stays cheap

    root = resolve_data_dir(data_dir)
    out = {}
    for number in records if records is not None else list_records(root):
        record = read_mitbih_record(root, number, lead=lead)
        started = time.perf_counter()
        peaks = np.sort(np.asarray(detect(record), dtype=np.int64))  # (P,)
        seconds = time.perf_counter() - started
        reference = record.ann_samples[np.isin(np.array(record.symbols), sorted(QRS_SYMBOLS))]  # (R,)
        if reference.size and peaks.size:  # compare_annotations divides by both counts
            matched = compare_annotations(reference, peaks, round(window_s * record.fs))
            out[number] = DetectionCounts(int(matched.tp), int(matched.fp), int(matched.fn), seconds)
        else:
            out[number] = DetectionCounts(0, int(peaks.size), int(reference.size), seconds)
    return out
