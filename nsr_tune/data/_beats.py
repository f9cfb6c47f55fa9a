"""The beat container shared by every loader, and the AAMI class scheme."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import numpy as np

__all__ = ["AAMI_CLASSES", "AAMI_MAP", "BEAT_LEN", "FS", "INPUTS", "BeatInput", "BeatSet"]

#: AAMI EC57 beat classes; a label is the position in this tuple.
AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")

#: MIT-BIH beat symbol -> AAMI class index (de Chazal et al. 2004; Kachuee et al. 2018).
AAMI_MAP: Mapping[str, int] = MappingProxyType(
    {
        **dict.fromkeys(("N", "L", "R", "e", "j"), 0),
        **dict.fromkeys(("A", "a", "J", "S"), 1),
        **dict.fromkeys(("V", "E"), 2),
        "F": 3,
        **dict.fromkeys(("/", "f", "Q"), 4),
    }
)

#: Samples per beat after zero padding, and the sampling rate they are at (Kachuee et al. 2018).
BEAT_LEN = 187
FS = 125


@dataclass(frozen=True)
class BeatInput:
    """What a model sees of one beat: a window of ``width`` samples at FS, ``before`` of them
    ahead of the annotated R peak. Every sample of it is signal, so an attack can change all of it."""

    name: str
    width: int
    before: int
    description: str
    #: Keep the beats whose window starts before the record, the missing stretch filled with the
    #: record's first sample (a flat line: no slope, so no QRS for a detector to find there),
    #: instead of dropping them; long look-backs would otherwise lose a record's first beats.
    fill_before: bool = False


#: The beat representations (`data.input`, `--input`); see nsr_tune/data/_segment.py, step 5.
INPUTS: Mapping[str, BeatInput] = MappingProxyType(
    {
        "kachuee": BeatInput(
            "kachuee",
            BEAT_LEN,
            0,
            "the paper's: from the R peak, 1.2 median RR intervals, zero padded to 187 samples",
        ),
        # 187 samples either side of the R peak (1.5 s at 125 Hz): the previous and the next beat
        # at any rate above 40 bpm, so both RR intervals, the main cue for a premature beat, are
        # in the signal itself and not a side input an attacker could not touch.
        "rhythm": BeatInput(
            "rhythm",
            2 * BEAT_LEN + 1,
            BEAT_LEN,
            "1.5 s either side of the R peak (375 samples, R at sample 187): the previous and next beats",
        ),
        # 4 s before the R peak and 1.5 s after it. A beat is premature only against the patient's
        # own rate: in slow rhythms (MIT-BIH 232, RR near 1.9 s) an early beat's 0.7 s interval is a
        # normal one elsewhere, and only the interval before it tells them apart, which needs ~2.6 s.
        "context": BeatInput(
            "context",
            4 * FS + 1 + BEAT_LEN,
            4 * FS,
            "4 s before and 1.5 s after the R peak (688 samples, R at sample 500): the previous RR intervals",
        ),
        # 10 s before the R peak and 1.5 s after it: the look-back of de Chazal et al.'s local
        # average RR, the patient's own rate against which an early beat is early. The `rrcnn`
        # model measures the RR intervals in it from the signal.
        "lookback": BeatInput(
            "lookback",
            10 * FS + 1 + BEAT_LEN,
            10 * FS,
            "10 s before and 1.5 s after the R peak (1438 samples, R at sample 1250): the local mean RR",
        ),
        # 30 s before the R peak: the longer-term mean RR (de Chazal et al. also use the mean over
        # +-5 min). In MIT-BIH 232 the S beats come in runs at about 0.74 s between pauses of 2 s
        # and more; a 10 s look-back often holds only the run, against which a run's beat is not
        # early, and 30 s reaches the pauses. Beats in a record's first 30 s are kept (fill_before).
        "lookback30": BeatInput(
            "lookback30",
            30 * FS + 1 + BEAT_LEN,
            30 * FS,
            "30 s before and 1.5 s after the R peak (3938 samples, R at sample 3750): the longer-term "
            "mean RR; before a record's start, its first sample",
            fill_before=True,
        ),
    }
)


@dataclass(frozen=True, eq=False)  # eq=False: element-wise array comparison has no single truth value
class BeatSet:
    """Fixed-length heartbeats with their labels and provenance.

    x: (B, 1, W) float32, each beat scaled into [0, 1] and zero padded after ``length``; W is the
       width of the beat representation (187 for `kachuee`, 375 for `rhythm`, 688 for `context`, see INPUTS).
    y: (B,) int64 index into AAMI_CLASSES.
    length: (B,) int32 true beat length before padding, 1..W.
    record: (B,) int32 MIT-BIH record number, -1 for rows of a Kaggle CSV.
    amp_mv: (B,) float32 amplitude range (mV) the beat was divided by; NaN where unknown.
    """

    x: np.ndarray
    y: np.ndarray
    length: np.ndarray
    record: np.ndarray
    amp_mv: np.ndarray

    classes: ClassVar[tuple[str, ...]] = AAMI_CLASSES
    fs: ClassVar[int] = FS
    n_leads: ClassVar[int] = 1
    variable_length: ClassVar[bool] = False  # every beat of a set is W samples wide, padding included
    multi_label: ClassVar[bool] = False  # one AAMI class per beat

    def __post_init__(self) -> None:
        # Coerce once here so every consumer can rely on the dtypes; a mismatch in shapes
        # is a bug in the code that built the set, not a user error.
        coerced = {
            "x": np.asarray(self.x, dtype=np.float32),
            "y": np.asarray(self.y, dtype=np.int64),
            "length": np.asarray(self.length, dtype=np.int32),
            "record": np.asarray(self.record, dtype=np.int32),
            "amp_mv": np.asarray(self.amp_mv, dtype=np.float32),
        }
        x = coerced["x"]
        if x.ndim != 3 or x.shape[1] != 1 or x.shape[2] < 1:
            raise ValueError(f"BeatSet.x must have shape (B, 1, W), got {x.shape}")
        for name in ("y", "length", "record", "amp_mv"):
            if coerced[name].shape != (x.shape[0],):
                raise ValueError(f"BeatSet.{name} must have shape ({x.shape[0]},), got {coerced[name].shape}")
        y = coerced["y"]
        if y.size and (y.min() < 0 or y.max() >= len(AAMI_CLASSES)):
            raise ValueError(f"BeatSet.y must be class indices 0..{len(AAMI_CLASSES) - 1}")
        for name, value in coerced.items():
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def width(self) -> int:
        """W: samples per beat, padding included."""
        return int(self.x.shape[2])

    def subset(self, idx: np.ndarray) -> BeatSet:
        """The beats selected by an integer index array or a boolean mask of length B."""
        idx = np.asarray(idx)
        if idx.dtype == np.bool_:
            if idx.shape != (len(self),):
                raise ValueError(f"boolean idx must have shape ({len(self)},), got {idx.shape}")
        elif not np.issubdtype(idx.dtype, np.integer) and idx.size:
            raise ValueError(f"idx must be integers or booleans, got dtype {idx.dtype}")
        else:
            idx = idx.astype(np.intp)
        return BeatSet(
            x=self.x[idx],
            y=self.y[idx],
            length=self.length[idx],
            record=self.record[idx],
            amp_mv=self.amp_mv[idx],
        )

    def inputs(self, idx: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (B, 1, W) float32 and the beats' true lengths (B,) int64."""
        idx = np.asarray(idx, dtype=np.intp)
        return self.x[idx], self.length[idx].astype(np.int64)

    @property
    def targets(self) -> np.ndarray:
        """(B, 5) float32 one-hot labels (the label-set form a multi-label dataset gives)."""
        return np.eye(len(AAMI_CLASSES), dtype=np.float32)[self.y]

    def class_counts(self) -> dict[str, int]:
        """Beats per AAMI class, all five classes in AAMI order, zeros included."""
        counts = np.bincount(self.y, minlength=len(AAMI_CLASSES))
        return {name: int(counts[i]) for i, name in enumerate(AAMI_CLASSES)}
