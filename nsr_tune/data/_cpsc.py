"""CPSC2018: 12-lead records of variable length, read as they are stored, not as beats.

The China Physiological Signal Challenge 2018 (Liu et al. 2018): 6,877 records at 500 Hz,
6 to 60 s, 9 classes. PhysioNet's copy (the PhysioNet/CinC Challenge 2020 layout) stores each
record as `AXXXX.hea` + `AXXXX.mat` with its labels in the header's `#Dx:` comment, as SNOMED CT
codes; some copies (the shared one among them) write the abbreviations instead. Both are read.

The paper's protocol (Ma & Liang): leads I, II, V1-V6 (8 independent leads) by default,
per-record max-abs scaling, records truncated to 30,720 samples (61.44 s at 500 Hz), and
records with more than one label dropped for single-label training.

Storage: the full set at 500 Hz in 8 leads, padded to 30,720 samples as float32, would take
about 7 GB. Here the records stay unpadded and in their ADC integers (int16), concatenated
along time with offsets, plus one scale per record: x = digital / scale reproduces the max-abs
scaled signal exactly, in about 0.9 GB for the full set. Batches are padded when they are made,
with a mask of the real samples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from nsr_tune.errors import DataError

__all__ = [
    "ALL_LEADS",
    "CPSC_CLASSES",
    "CPSC_FS",
    "PAPER_LEADS",
    "SNOMED_CODES",
    "CpscReport",
    "RecordSet",
    "cpsc_splits",
    "resample",
]

CPSC_CLASSES = ("Normal", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE")
CPSC_FS = 500
ALL_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
# III, aVR, aVL and aVF are sums of I and II (Einthoven, Goldberger): 8 independent leads.
PAPER_LEADS = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
# PhysioNet/CinC Challenge 2020 labels (SNOMED CT) of the nine CPSC2018 classes; 427172004
# ("premature ventricular contractions") is the Challenge's equivalent of 164884008.
SNOMED_CODES = {
    "426783006": "Normal",
    "164889003": "AF",
    "270492004": "I-AVB",
    "164909002": "LBBB",
    "59118001": "RBBB",
    "284470004": "PAC",
    "164884008": "PVC",
    "427172004": "PVC",
    "429622005": "STD",
    "164931005": "STE",
}
_ALIASES = {"SNR": "Normal", "NORMAL": "Normal", "IAVB": "I-AVB", "VEB": "PVC"}


def _label(token: str, record: str) -> str:
    token = token.strip()
    if token in CPSC_CLASSES:
        return token
    if token in SNOMED_CODES:
        return SNOMED_CODES[token]
    if token.upper() in _ALIASES:
        return _ALIASES[token.upper()]
    raise DataError(
        f"{record}: unknown label {token!r} in its #Dx line; expected one of {', '.join(CPSC_CLASSES)} "
        "or their SNOMED CT codes"
    )


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class RecordSet:
    """Multi-lead records of different lengths, stored unpadded.

    digital: (leads, total samples) int16, every record's ADC values one after the other.
    offsets: (R + 1,) int64, record r is digital[:, offsets[r]:offsets[r + 1]].
    scale: (R,) float32, the record's largest absolute ADC value over its leads (max-abs scaling).
    gain: (R,) float32, ADC units per mV (to state eps in microvolts).
    labels: (R, 9) bool, one column per CPSC_CLASSES entry.
    names: record names; leads: lead names; fs: sampling rate in Hz.
    """

    digital: np.ndarray
    offsets: np.ndarray
    scale: np.ndarray
    gain: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    leads: tuple[str, ...]
    fs: int
    # Read for multi-label training: records may carry several labels, `targets` are the
    # label sets and `y` each record's first label (for stratifying and class balance).
    multi_label: bool = False

    classes: ClassVar[tuple[str, ...]] = CPSC_CLASSES
    variable_length: ClassVar[bool] = True  # batches are padded to their longest record

    def __len__(self) -> int:
        return len(self.names)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def length(self) -> np.ndarray:
        """(R,) real samples of each record (the same name as a beat set's)."""
        return self.lengths

    @property
    def n_leads(self) -> int:
        return len(self.leads)

    @property
    def record(self) -> np.ndarray:
        """(R,) a number per record (A0123 -> 123): records are the patients of this database."""
        return np.asarray([int(re.sub(r"\D", "", n) or i) for i, n in enumerate(self.names)], dtype=np.int64)

    @property
    def amp_mv(self) -> np.ndarray:
        """(R,) millivolts that one unit of the max-abs-scaled signal stands for (eps in uV)."""
        return (self.scale / self.gain).astype(np.float32)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.digital, self.offsets, self.scale, self.gain, self.labels))

    @property
    def targets(self) -> np.ndarray:
        """(R, 9) float32 label sets (multi-hot), one column per CPSC_CLASSES entry."""
        return self.labels.astype(np.float32)

    @property
    def y(self) -> np.ndarray:
        """(R,) class index of each record: its label; in a multi-label set, its first label.
        A set read for single-label use must hold one label per record."""
        counts = self.labels.sum(axis=1)
        if self.multi_label:
            return self.labels.argmax(axis=1)  # the first True column
        if (counts != 1).any():
            bad = [self.names[i] for i in np.flatnonzero(counts != 1)[:5]]
            raise DataError(
                f"records {bad} have {sorted(set(counts.tolist()))} labels, not one each "
                "(single-label training reads the records without --multi-label)"
            )
        return self.labels.argmax(axis=1)

    def subset(self, idx: Sequence[int] | np.ndarray) -> RecordSet:
        """The records selected by an integer index array or a boolean mask of length R."""
        idx = np.asarray(idx)
        idx = np.flatnonzero(idx) if idx.dtype == np.bool_ else idx.astype(np.intp)
        parts = [self.digital[:, self.offsets[r] : self.offsets[r + 1]] for r in idx]
        lengths = np.asarray([p.shape[1] for p in parts], dtype=np.int64)
        return RecordSet(
            digital=np.concatenate(parts, axis=1) if parts else self.digital[:, :0],
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            scale=self.scale[idx],
            gain=self.gain[idx],
            labels=self.labels[idx],
            names=tuple(self.names[r] for r in idx),
            leads=self.leads,
            fs=self.fs,
            multi_label=self.multi_label,
        )

    def batch(self, idx: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (B, leads, L) float32 in [-1, 1], zero-padded to the longest record of the batch,
        and mask (B, L) bool, True on the real samples."""
        x, lengths = self.inputs(idx)
        return x, np.arange(x.shape[-1])[None, :] < lengths[:, None]

    def inputs(self, idx: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (B, leads, L) float32, zero-padded to the longest record of the batch, and the
        records' lengths (B,) int64: what a model and an attack take."""
        idx = np.asarray(idx, dtype=np.intp)
        lengths = self.lengths[idx]
        longest = int(lengths.max()) if len(idx) else 0
        x = np.zeros((len(idx), len(self.leads), longest), dtype=np.float32)
        for b, r in enumerate(idx):
            start, stop = self.offsets[r], self.offsets[r + 1]
            x[b, :, : stop - start] = self.digital[:, start:stop] / self.scale[r]
        return x, lengths.astype(np.int64)

    def class_counts(self) -> dict[str, int]:
        """Records per class (a multi-label record counts in each of its classes)."""
        return {c: int(n) for c, n in zip(CPSC_CLASSES, self.labels.sum(axis=0), strict=True)}


@dataclass(frozen=True)
class CpscReport:
    data_dir: str
    n_read: int
    dropped_multi_label: tuple[str, ...]  # single-label mode drops records with several labels
    truncated: int  # records cut to max_len


def _dx(comments: Sequence[str], record: str) -> list[str]:
    for line in comments:
        m = re.match(r"\s*Dx\s*:\s*(.*)$", line)
        if m:
            tokens = [t for t in re.split(r"[,;]", m.group(1)) if t.strip()]
            if not tokens:
                break
            return sorted({_label(t, record) for t in tokens}, key=CPSC_CLASSES.index)
    raise DataError(f"{record}: no label (its header has no #Dx line with a class)")


class _Collector:
    """The records of one directory as they are read: each cut to `max_len`, checked, appended."""

    def __init__(self, leads: Sequence[str], max_len: int) -> None:
        self.leads, self.max_len, self.truncated = tuple(leads), max_len, 0
        self.chunks: list[np.ndarray] = []
        self.offsets, self.scales, self.gains = [0], [], []
        self.labels: list[np.ndarray] = []
        self.names: list[str] = []

    def add(self, name: str, digital: np.ndarray, classes: Sequence[str], gain: float) -> None:
        """One record: digital (leads, L) ADC integers, its classes, ADC units per mV."""
        if digital.shape[1] > self.max_len:
            digital, self.truncated = digital[:, : self.max_len], self.truncated + 1
        peak = float(np.abs(digital).max())
        if peak == 0:
            raise DataError(f"{name}: every sample of leads {list(self.leads)} is zero")
        self.chunks.append(np.ascontiguousarray(digital, dtype=np.int16))
        self.offsets.append(self.offsets[-1] + digital.shape[1])
        self.scales.append(peak)
        self.gains.append(gain)
        row = np.zeros(len(CPSC_CLASSES), dtype=bool)
        row[[CPSC_CLASSES.index(c) for c in classes]] = True
        self.labels.append(row)
        self.names.append(name)

    def build(self, directory: Path, *, multi_label: bool) -> RecordSet:
        if not self.names:
            raise DataError(f"--data-dir: no record of {directory} has a single label")
        return RecordSet(
            digital=np.concatenate(self.chunks, axis=1),
            offsets=np.asarray(self.offsets, dtype=np.int64),
            scale=np.asarray(self.scales, dtype=np.float32),
            gain=np.asarray(self.gains, dtype=np.float32),
            labels=np.stack(self.labels),
            names=tuple(self.names),
            leads=self.leads,
            fs=CPSC_FS,
            multi_label=multi_label,
        )


def _check_size(directory: Path, header: object, name: str) -> None:
    """A `.mat` of 16-bit samples after a byte offset (`16+24`) must hold what its header says."""
    files = set(getattr(header, "file_name", None) or [])
    fmts = set(getattr(header, "fmt", None) or [])
    offsets = set(getattr(header, "byte_offset", None) or [])
    if len(files) != 1 or fmts != {"16"} or len(offsets) != 1:
        return  # another layout: the reader's own checks apply
    path = directory / files.pop()
    if not path.is_file():
        raise DataError(f"{name}: its signal file {path.name} is missing")
    n_sig, sig_len = int(header.n_sig), int(header.sig_len)  # type: ignore[attr-defined]
    held, extra = divmod(path.stat().st_size - int(offsets.pop() or 0), 2 * n_sig)
    if held != sig_len or extra:
        raise DataError(
            f"{name}: the header says {sig_len} samples of {n_sig} leads, its {path.name} holds "
            f"{held}{' and a partial sample' if extra else ''} (a truncated or mismatched file)"
        )


def cpsc_splits(
    records: RecordSet, *, val_per_class: int = 5, test_per_class: int = 50, seed: int = 0
) -> dict[str, np.ndarray]:
    """The paper's split: per class, `test_per_class` records to test, `val_per_class` to
    validation, the rest to training; seeded. Records are patients here, so it is patient-wise.

    Returns {"train", "val", "test"} -> sorted record indices. The sizes are parameters: the
    150 shared records cannot hold 50 test records of every class.
    """
    for name, value in (("val_per_class", val_per_class), ("test_per_class", test_per_class)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DataError(f"{name}: must be a whole number >= 0, got {value!r}")
    y = records.y
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c, name in enumerate(CPSC_CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx) < test_per_class + val_per_class + 1:
            raise DataError(
                f"{name}: {len(idx)} records, too few for {test_per_class} test and {val_per_class} "
                "validation records and at least one to train on; lower test_per_class or val_per_class"
            )
        parts["test"].append(idx[:test_per_class])
        parts["val"].append(idx[test_per_class : test_per_class + val_per_class])
        parts["train"].append(idx[test_per_class + val_per_class :])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def resample(records: RecordSet, fs: int) -> RecordSet:
    """The records at a lower sampling rate (polyphase filtering, scipy), e.g. 250 Hz for CPU runs.

    Each record is resampled on its own, so no sample of one leaks into the next, and scaled
    again by its own largest absolute value.
    """
    from math import gcd

    from scipy.signal import resample_poly

    if not isinstance(fs, int) or not 0 < fs <= records.fs:
        raise DataError(f"fs: must be a whole number of Hz in 1..{records.fs}, got {fs!r}")
    if fs == records.fs:
        return records
    g = gcd(fs, records.fs)
    up, down = fs // g, records.fs // g
    chunks, offsets, scales = [], [0], []
    for r in range(len(records)):
        part = records.digital[:, records.offsets[r] : records.offsets[r + 1]].astype(np.float64)
        out = np.clip(np.rint(resample_poly(part, up, down, axis=1)), -32768, 32767).astype(np.int16)
        chunks.append(out)
        offsets.append(offsets[-1] + out.shape[1])
        scales.append(max(float(np.abs(out).max()), 1.0))
    return RecordSet(
        digital=np.concatenate(chunks, axis=1),
        offsets=np.asarray(offsets, dtype=np.int64),
        scale=np.asarray(scales, dtype=np.float32),
        gain=records.gain,
        labels=records.labels,
        names=records.names,
        leads=records.leads,
        fs=fs,
        multi_label=records.multi_label,
    )
