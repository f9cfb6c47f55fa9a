"""The Kaggle "ECG Heartbeat Categorization" CSV format (Kachuee et al. 2018's published beats)."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from nsr_tune.data._beats import AAMI_CLASSES, BEAT_LEN, BeatSet
from nsr_tune.errors import ConfigError, DataError

__all__ = ["first_ragged_line", "load_kaggle_csv", "padded_lengths"]

logger = logging.getLogger(__name__)


def load_kaggle_csv(path: str | Path) -> BeatSet:
    """Read a Kaggle heartbeat CSV: no header, per row 187 values in [0, 1] then the label 0..4.

    The CSV does not store beat lengths, so ``length`` is the index of the last nonzero value + 1
    (1 for an all-zero row). A beat whose true last samples are exactly 0.0 therefore comes out a
    little shorter than it was; that cannot be told apart from padding. ``record`` is -1 and
    ``amp_mv`` NaN: the CSV keeps neither.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ConfigError(f"path must be a non-empty path to a CSV file, got {path!r}")
    csv = Path(os.fspath(path)).expanduser()
    if not csv.is_file():
        raise DataError(f"{csv}: Kaggle heartbeat CSV not found")
    try:
        with warnings.catch_warnings():
            # An empty file only warns in numpy; it is reported as an error just below.
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(csv, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as e:
        raise DataError(f"{csv}: not a Kaggle heartbeat CSV (numbers only, no header): {_why(csv, e)}") from e
    if table.shape[0] == 0:
        raise DataError(f"{csv}: Kaggle heartbeat CSV has no rows")
    if table.shape[1] != BEAT_LEN + 1:
        raise DataError(
            f"{csv}: expected {BEAT_LEN + 1} columns per row ({BEAT_LEN} samples + label), "
            f"got {table.shape[1]}"
        )
    values, labels = table[:, :BEAT_LEN], table[:, BEAT_LEN]
    bad_rows = np.flatnonzero(
        ~np.isfinite(values).all(axis=1) | (values < 0).any(axis=1) | (values > 1).any(axis=1)
    )
    if bad_rows.size:
        raise DataError(f"{csv}: row {bad_rows[0] + 1} has values outside [0, 1] ({bad_rows.size} such rows)")
    bad_labels = np.flatnonzero((labels != np.round(labels)) | (labels < 0) | (labels >= len(AAMI_CLASSES)))
    if bad_labels.size:
        raise DataError(
            f"{csv}: row {bad_labels[0] + 1} has label {labels[bad_labels[0]]:g}; "
            f"labels must be 0..{len(AAMI_CLASSES) - 1}"
        )
    length = padded_lengths(values)
    n = table.shape[0]
    logger.info("read %d beats from %s", n, csv)
    return BeatSet(
        x=values.astype(np.float32)[:, None, :],
        y=labels.astype(np.int64),
        length=length,
        record=np.full(n, -1, np.int32),
        amp_mv=np.full(n, np.nan, np.float32),
    )


def padded_lengths(values: np.ndarray) -> np.ndarray:
    """(B,) int32: the samples of each row (B, W) up to its last nonzero value; trailing zeros are
    taken for padding, as a CSV keeps no lengths (1 for an all-zero row)."""
    nonzero = values != 0
    last = values.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)  # index of the last nonzero + 1
    return np.where(nonzero.any(axis=1), last, 1).astype(np.int32)


def first_ragged_line(lines: Iterable[str], width: int, *, first: int = 1) -> tuple[int, int] | None:
    """The first non-blank line of `lines` (numbered from `first`) that has not `width` comma-separated
    columns: (its number, its columns); None when all have. Counting commas is exact here, as
    numpy's CSV reading knows no quoting either."""
    for number, line in enumerate(lines, start=first):
        if line.strip() and line.count(",") + 1 != width:
            return number, line.count(",") + 1
    return None


def _why(csv: Path, error: Exception) -> str:
    """What is wrong with a CSV numpy failed on: the first line of another width, else numpy's word."""
    if isinstance(error, ValueError):
        with csv.open(encoding="utf-8", errors="replace") as fh:
            ragged = first_ragged_line(fh, BEAT_LEN + 1)
        if ragged is not None:
            line, columns = ragged
            return f"line {line} has {columns} columns, expected {BEAT_LEN + 1} ({BEAT_LEN} samples + label)"
    return str(error)
