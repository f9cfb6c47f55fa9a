"""Train / validation / test splits of a BeatSet.

``inter`` is the patient-wise split of de Chazal, O'Dwyer & Reilly (IEEE TBME 51(7), 2004): DS1 records
train, DS2 records test, no patient on both sides, paced records left out. Validation records are
carved out of DS1 so that model selection never sees a test patient either.

``intra`` is a seeded, stratified random split of all beats, as in the Kaggle data the NSR paper
used. Beats of one patient land in train and test alike (their neighbours even), so its scores are
optimistic and say little about new patients; it is here to reproduce that setting.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nsr_tune.data._beats import AAMI_CLASSES, BeatSet
from nsr_tune.data._cpsc import RecordSet
from nsr_tune.errors import ConfigError, DataError

__all__ = ["DEFAULT_VAL_RECORDS", "DS1", "DS2", "PACED", "SPLITS", "SplitData", "make_splits"]

logger = logging.getLogger(__name__)

# fmt: off
#: de Chazal et al. 2004 training records.
DS1: tuple[int, ...] = (
    101, 106, 108, 109, 112, 114, 115, 116, 118, 119, 122,
    124, 201, 203, 205, 207, 208, 209, 215, 220, 223, 230,
)
#: de Chazal et al. 2004 test records.
DS2: tuple[int, ...] = (
    100, 103, 105, 111, 113, 117, 121, 123, 200, 202, 210,
    212, 213, 214, 219, 221, 222, 228, 231, 232, 233, 234,
)
# fmt: on
#: Paced records, excluded from `inter` (AAMI EC57 recommends leaving them out).
PACED: tuple[int, ...] = (102, 104, 107, 217)
#: Patient-wise validation records carved from DS1.
DEFAULT_VAL_RECORDS: tuple[int, ...] = (101, 118, 124, 205, 223)
SPLITS: tuple[str, ...] = ("inter", "intra")


@dataclass(frozen=True)
class SplitData:
    """Train / validation / test parts of one dataset: beats (MIT-BIH) or records (CPSC2018).

    Both kinds give inputs (B, leads, L) with their real lengths (`inputs(idx)`), labels `y`,
    a patient id per sample (`record`), `classes`, `fs` and `amp_mv` (millivolts per unit).
    """

    train: BeatSet | RecordSet
    val: BeatSet | RecordSet
    test: BeatSet | RecordSet
    split: str

    def describe(self) -> dict[str, dict[str, int]]:
        """Beats per class in each part: {"train": {...}, "val": {...}, "test": {...}}."""
        return {
            "train": self.train.class_counts(),
            "val": self.val.class_counts(),
            "test": self.test.class_counts(),
        }


def make_splits(
    beats: BeatSet,
    *,
    split: str = "inter",
    seed: int = 0,
    val_records: Sequence[int] = DEFAULT_VAL_RECORDS,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> SplitData:
    """Split ``beats`` into train / val / test (see the module docstring).

    ``inter``: train = DS1 records present minus ``val_records``, val = DS1 records present in
    ``val_records``, test = DS2 records present; other records are ignored. ``intra``: per class, a
    ``test_fraction`` of the beats (rounded) goes to test and a ``val_fraction`` of the rest to val,
    shuffled with ``seed``. Raises ConfigError for bad arguments, DataError when a part would be empty.
    """
    if not isinstance(beats, BeatSet):
        raise TypeError(f"beats must be a BeatSet, got {type(beats).__name__}")
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    _check_fraction(val_fraction, "val_fraction")
    _check_fraction(test_fraction, "test_fraction")
    val_set = _check_val_records(val_records)

    if split == "inter":
        parts = _inter(beats, val_set)
    else:
        parts = _intra(beats, int(seed), float(val_fraction), float(test_fraction))
    for name, idx in zip(("train", "val", "test"), parts, strict=True):
        if idx.size == 0 and split == "intra":
            raise DataError(
                f"intra split of {len(beats)} beats leaves {name} empty "
                f"(val_fraction={val_fraction}, test_fraction={test_fraction}); load more records"
            )
    result = SplitData(
        train=beats.subset(parts[0]), val=beats.subset(parts[1]), test=beats.subset(parts[2]), split=split
    )
    logger.info(
        "%s split: %d train, %d val, %d test beats",
        split,
        len(result.train),
        len(result.val),
        len(result.test),
    )
    return result


def _check_fraction(value: float, name: str) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    if not (math.isfinite(value) and 0 < value < 1):
        raise ConfigError(f"{name} must be strictly between 0 and 1, got {value!r}")


def _check_val_records(val_records: Sequence[int]) -> frozenset[int]:
    if isinstance(val_records, (str, bytes)) or not isinstance(
        val_records, (Sequence, np.ndarray, set, frozenset)
    ):
        raise ConfigError(f"val_records must be a sequence of DS1 record numbers, got {val_records!r}")
    bad = [r for r in val_records if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, np.integer))]
    if bad:
        raise ConfigError(f"val_records must be integers such as 101, got {bad[0]!r}")
    val_set = frozenset(int(r) for r in val_records)
    if not val_set:
        raise ConfigError("val_records must name at least one DS1 record")
    outside = sorted(val_set - set(DS1))
    if outside:
        # A DS2 record in validation would leak test patients; any other record would be ignored.
        raise ConfigError(f"val_records must be DS1 records; {', '.join(map(str, outside))} not in DS1")
    return val_set


def _inter(beats: BeatSet, val_set: frozenset[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    present = {int(r) for r in np.unique(beats.record)}
    groups = {
        "train": sorted((set(DS1) - val_set) & present),
        "val": sorted(set(DS1) & val_set & present),
        "test": sorted(set(DS2) & present),
    }
    empty = [name for name, recs in groups.items() if not recs]
    if empty:
        needed = {
            "train": "a DS1 record not in val_records",
            "val": f"one of val_records {sorted(val_set)}",
            "test": "a DS2 record",
        }
        shown = ", ".join(map(str, sorted(present - {-1}))) or "none"
        if -1 in present:
            shown += " (Kaggle rows have no record)"
        raise DataError(
            "inter split cannot be made: "
            + "; ".join(f"{name} is empty, it needs {needed[name]}" for name in empty)
            + f"; records present: {shown}"
        )
    train, val, test = (
        np.flatnonzero(np.isin(beats.record, groups[name])) for name in ("train", "val", "test")
    )
    return train, val, test


def _intra(
    beats: BeatSet, seed: int, val_fraction: float, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for cls in range(len(AAMI_CLASSES)):
        idx = rng.permutation(np.flatnonzero(beats.y == cls))
        n_test = _round_half_up(test_fraction * idx.size)
        n_val = _round_half_up(val_fraction * (idx.size - n_test))
        test.append(idx[:n_test])
        val.append(idx[n_test : n_test + n_val])
        train.append(idx[n_test + n_val :])
    # Sorted, so each part keeps the record/time order of the input; training shuffles anyway.
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val)), np.sort(np.concatenate(test))


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)
