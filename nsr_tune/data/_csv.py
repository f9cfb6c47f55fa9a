"""`csv:PATH` datasets: fixed-length beats in a CSV file, used as they are.

The first line tells the two layouts apart (docs/data.md, "Your own beats: csv: and wfdb:"):

- no header (the first line is all numbers): the Kaggle "ECG Heartbeat Categorization" CSV, per
  row 187 samples in [0, 1] then the label 0..4 (N, S, V, F, Q), read by load_kaggle_csv;
- a header: one `label` column (an AAMI class, N S V F Q, or its index 0..4), at most one `record`
  column (the patient or record a beat comes from: a number or a name), and every other column a
  sample, in file order. Plain commas, no quoting; column names are matched without case.

The beats are taken as they are: already at 125 Hz (FS) and scaled as the user wants; nothing is
resampled or normalised. Trailing zeros of a row count as padding, as in the Kaggle CSV (its length
ends at its last nonzero value), so attacks that respect padding leave them alone.

Also here, shared with `wfdb:` (nsr_tune.data._wfdb): the path check of a `SOURCE:PATH` name,
record ids from record names, and the splits of beats read from a path (`split_beats`): `intra`
and `inter` as make_splits makes them, and `records`, a seeded patient-wise split of whole records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from nsr_tune.config import DataConfig
from nsr_tune.data._beats import AAMI_CLASSES, BEAT_LEN, BeatSet
from nsr_tune.data._kaggle import first_ragged_line, load_kaggle_csv, padded_lengths
from nsr_tune.data._spec import Dataset, Loaded
from nsr_tune.data._splits import SplitData, make_splits
from nsr_tune.errors import ConfigError, DataError

__all__ = [
    "CSV_SETTINGS",
    "CsvLayout",
    "CsvReport",
    "csv_dataset",
    "csv_layout",
    "ids_note",
    "load_csv",
    "record_ids",
    "records_split",
    "source_path",
    "split_beats",
]

logger = logging.getLogger(__name__)

#: The DataConfig fields a `csv:` dataset reads (besides the split, seed and training subset).
CSV_SETTINGS: tuple[str, ...] = ("val_fraction", "test_fraction")

#: Bump when the reading changes in a way that alters the beats: it is part of the fingerprint.
_CSV_VERSION = 1
#: Models offered for mitbih that a `csv:` beat cannot feed: rrcnn measures RR intervals over a
#: look-back of several seconds, which a beat cut by someone else need not hold.
_NEEDS_LOOKBACK = frozenset({"rrcnn"})
_LABEL, _RECORD = "label", "record"
_LABEL_HELP = f"labels are {', '.join(AAMI_CLASSES)} or 0..{len(AAMI_CLASSES) - 1}"


@dataclass(frozen=True)
class CsvLayout:
    """The columns of a beats CSV, read from its first line."""

    path: Path
    kaggle: bool  # no header: the Kaggle heartbeat format
    header: tuple[str, ...]  # the column names as written (empty for Kaggle)
    label: int  # the label's column
    record: int | None  # the record's column, if any
    samples: tuple[int, ...]  # the samples' columns, in file order

    @property
    def columns(self) -> int:
        return len(self.samples) + 1 + (self.record is not None)

    @property
    def width(self) -> int:
        """Samples per beat: the length of a model's input."""
        return len(self.samples)


@dataclass(frozen=True)
class CsvReport:
    """What load_csv read: the layout, the record names (by id, see record_ids), the fingerprint
    (sha256 of the file's bytes and the reading settings) and notes worth logging."""

    path: Path
    layout: str  # "kaggle" or "header"
    records: tuple[str, ...]
    fingerprint: str
    notes: tuple[str, ...]


# ----------------------------------------------------------------------------------------- API


def csv_dataset(path: str, *, like: Dataset) -> Dataset:
    """The Dataset `csv:PATH`: `like` (mitbih: its classes, eps grids, objectives and single-beat
    models) with its own name, splits, settings, width and loader. Only the first line is read
    here; load reads and checks every row."""
    name = f"csv:{path}"
    csv = source_path(name, directory=False)
    layout = csv_layout(csv)
    kind = "Kaggle heartbeat CSV" if layout.kaggle else "CSV with a header"
    return replace(
        like,
        name=name,
        description=f"beats in {csv} ({kind}): {layout.width} samples at 125 Hz, 5 AAMI classes",
        splits=("intra", "records") if layout.record is not None else ("intra",),
        models=tuple(m for m in like.models if m not in _NEEDS_LOOKBACK),
        settings=CSV_SETTINGS,
        shape=lambda config: (1, layout.width),
        load=partial(_load, csv),
    )


def load_csv(path: str | Path) -> tuple[BeatSet, CsvReport]:
    """Read a beats CSV in either layout (module docstring): every row checked first, refused with
    a DataError naming the file and line. `record` is -1 without a record column, `amp_mv` NaN."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ConfigError(f"path must be a non-empty path to a CSV file, got {path!r}")
    csv = Path(os.fspath(path)).expanduser()
    if not csv.is_file():
        raise DataError(f"{csv}: no such CSV file")
    layout = csv_layout(csv)
    raw = _read_bytes(csv)
    fingerprint = _fingerprint(raw, layout)
    if layout.kaggle:
        beats, names = load_kaggle_csv(csv), ()
    else:
        beats, names = _read_beats(csv, layout, raw)
        logger.info("read %d beats of %d samples from %s", len(beats), layout.width, csv)
    notes = [] if not names or record_ids(names)[1] else [ids_note(names)]
    return beats, CsvReport(csv, "kaggle" if layout.kaggle else "header", names, fingerprint, tuple(notes))


def csv_layout(csv: Path) -> CsvLayout:
    """The layout the first line of `csv` says; a DataError naming the file when it says none."""
    try:
        with csv.open(encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{csv}: cannot read the CSV: {e}") from e
    if not first.strip():
        raise DataError(f"{csv}: the first line is empty; it must be the header or the first beat")
    cells = [c.strip() for c in first.rstrip("\r\n").split(",")]
    if all(_is_number(c) for c in cells):
        if len(cells) != BEAT_LEN + 1:
            raise DataError(
                f"{csv}: a CSV without a header must be the Kaggle heartbeat format ({BEAT_LEN} samples, "
                f"then the label), but its first line has {len(cells)} columns; for beats of another "
                f"width, add a header with a `{_LABEL}` column"
            )
        return CsvLayout(csv, True, (), BEAT_LEN, None, tuple(range(BEAT_LEN)))
    names = [c.lower() for c in cells]
    if names.count(_LABEL) != 1 or names.count(_RECORD) > 1:
        raise DataError(
            f"{csv}: the header must have one `{_LABEL}` column and at most one `{_RECORD}` column, "
            f"it has {names.count(_LABEL)} and {names.count(_RECORD)} (a CSV without a header must be "
            f"the Kaggle heartbeat format: numbers only)"
        )
    samples = tuple(i for i, n in enumerate(names) if n not in (_LABEL, _RECORD))
    if not samples:
        raise DataError(f"{csv}: the header names no sample columns besides `{_LABEL}` and `{_RECORD}`")
    record = names.index(_RECORD) if _RECORD in names else None
    return CsvLayout(csv, False, tuple(cells), names.index(_LABEL), record, samples)


def source_path(name: str, *, directory: bool) -> Path:
    """The path of the dataset `name` (SOURCE:PATH), refused in one line naming the dataset when
    it is not there, or not a directory (`directory`) or not a file."""
    source, _, given = name.partition(":")
    kind = "directory" if directory else "file"
    if not given:
        example = "DIR" if directory else "beats.csv"
        raise ConfigError(f"dataset: {name}: name the {kind} after the colon, e.g. {source}:{example}")
    path = Path(given).expanduser()
    if not path.exists():
        raise ConfigError(f"dataset: {name}: no such {kind} {path.absolute()}")
    if path.is_dir() != directory:
        why = "is not a directory" if directory else "is a directory, not a CSV file"
        raise ConfigError(f"dataset: {name}: {path.absolute()} {why}")
    return path.absolute()  # the same place whatever the working directory is at load time


def record_ids(names: Sequence[str]) -> tuple[np.ndarray, bool]:
    """The id (int32) the samples of each record name carry, and whether the ids are the names:
    the number itself when every name is a record number (MIT-BIH's 100..234), else the name's
    position among the names sorted, so that the ids never depend on the order rows come in."""
    numbers = [_record_number(n) for n in names]
    if all(n is not None for n in numbers):
        return np.array(numbers, dtype=np.int32), True
    position = {n: i for i, n in enumerate(sorted(set(names)))}
    return np.array([position[n] for n in names], dtype=np.int32), False


def ids_note(names: Sequence[str]) -> str:
    """Which record an id is, where the ids are positions among the names rather than the names."""
    shown = ", ".join(f"{i} = {n}" for i, n in list(enumerate(names))[:3])
    more = f", ..., {len(names) - 1} = {names[-1]}" if len(names) > 3 else ""
    return f"record ids are the records' positions in name order: {shown}{more}"


def split_beats(beats: BeatSet, config: DataConfig) -> SplitData:
    """`config.split` of beats read from a path: `records` (records_split), or `intra` and `inter`
    as make_splits makes them."""
    if config.split == "records":
        return records_split(
            beats, seed=config.seed, val_fraction=config.val_fraction, test_fraction=config.test_fraction
        )
    return make_splits(beats, **config.split_arguments())


def records_split(beats: BeatSet, *, seed: int, val_fraction: float, test_fraction: float) -> SplitData:
    """Patient-wise: the records shuffled with `seed`, a `test_fraction` of them (rounded, at least
    one) tests, a `val_fraction` of the rest validates, the others train; no record on two sides.
    Not stratified: a class that few records hold may miss a part (its recall is then left out)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {seed!r}")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ConfigError(f"{name}: must lie strictly between 0 and 1, got {value!r}")
    records = np.unique(beats.record)
    if (records == -1).any():
        raise DataError("the records split needs the record of every beat; some beats have none (-1)")
    if records.size < 3:
        raise DataError(
            f"the records split needs beats of at least 3 records (for train, val and test); these "
            f"come from {records.size}"
        )
    order = np.random.default_rng(seed).permutation(records)
    n = records.size
    n_test = min(max(1, _round_half_up(test_fraction * n)), n - 2)
    n_val = min(max(1, _round_half_up(val_fraction * (n - n_test))), n - n_test - 1)
    parts = {
        "test": np.sort(order[:n_test]),
        "val": np.sort(order[n_test : n_test + n_val]),
        "train": np.sort(order[n_test + n_val :]),
    }
    for part in ("val", "test"):
        logger.info("records split: %s records %s", part, ", ".join(map(str, parts[part])))
    split = SplitData(
        train=beats.subset(np.isin(beats.record, parts["train"])),
        val=beats.subset(np.isin(beats.record, parts["val"])),
        test=beats.subset(np.isin(beats.record, parts["test"])),
        split="records",
    )
    logger.info(
        "records split: %d train, %d val, %d test beats", len(split.train), len(split.val), len(split.test)
    )
    return split


def unused_data_dir(name: str, data_dir: str | Path | None) -> None:
    """A `SOURCE:PATH` dataset names its own path: say so when a data directory was given too."""
    if data_dir is not None:
        logger.info("the dataset %s names its own path; the data directory %s is not read", name, data_dir)


# ------------------------------------------------------------------------------------ helpers


def _load(csv: Path, config: DataConfig, data_dir: str | Path | None, progress: bool) -> Loaded:
    unused_data_dir(config.dataset, data_dir)
    beats, report = load_csv(csv)
    return Loaded(split_beats(beats, config), csv, report.fingerprint, report.notes)


def _read_bytes(csv: Path) -> bytes:
    try:
        return csv.read_bytes()
    except OSError as e:
        raise DataError(f"{csv}: cannot read the CSV: {e}") from e


def _fingerprint(raw: bytes, layout: CsvLayout) -> str:
    # The bytes, not the file's name: a renamed copy holds the same beats.
    settings = {"source": "csv", "layout": "kaggle" if layout.kaggle else "header", "version": _CSV_VERSION}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(raw)
    return digest.hexdigest()


def _read_beats(csv: Path, layout: CsvLayout, raw: bytes) -> tuple[BeatSet, tuple[str, ...]]:
    """The beats of a CSV with a header, every row checked; and the record names by id."""
    try:
        lines = raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{csv}: cannot read the CSV: not UTF-8 text ({e.reason} at byte {e.start})") from e
    ragged = first_ragged_line(lines[1:], layout.columns, first=2)
    if ragged is not None:
        raise DataError(f"{csv}: line {ragged[0]} has {ragged[1]} columns, the header has {layout.columns}")
    numbers = np.array([i for i, line in enumerate(lines, start=1) if i > 1 and line.strip()], dtype=np.int64)
    if numbers.size == 0:
        raise DataError(f"{csv}: the CSV has a header but no beats")
    body = [lines[i - 1] for i in numbers]
    values = _samples(csv, layout, body, numbers)
    y = _labels(csv, _column(body, layout.label), numbers)
    record, names = (
        (np.full(len(body), -1, np.int32), ())
        if layout.record is None
        else _records(csv, _column(body, layout.record), numbers)
    )
    beats = BeatSet(
        x=values.astype(np.float32)[:, None, :],
        y=y,
        length=padded_lengths(values),
        record=record,
        amp_mv=np.full(len(body), np.nan, np.float32),  # the CSV keeps no amplitude in mV
    )
    return beats, names


def _samples(csv: Path, layout: CsvLayout, body: list[str], numbers: np.ndarray) -> np.ndarray:
    """(B, W) float64 samples, each a finite number."""
    try:
        values = np.loadtxt(
            body, delimiter=",", usecols=layout.samples, dtype=np.float64, comments=None, ndmin=2
        )
    except ValueError as e:
        raise DataError(_bad_sample(csv, layout, body, numbers) or f"{csv}: {e}") from e
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        column = layout.header[layout.samples[int(np.argmin(np.isfinite(values[bad[0]])))]]
        raise DataError(f"{csv}: line {numbers[bad[0]]}, column {column}: the sample is not a finite number")
    return values


def _bad_sample(csv: Path, layout: CsvLayout, body: list[str], numbers: np.ndarray) -> str | None:
    """The first sample numpy could not read, named by line and column (None if none is found)."""
    for number, line in zip(numbers, body, strict=True):
        cells = line.split(",")
        for c in layout.samples:
            if not _is_number(cells[c].strip()):
                return (
                    f"{csv}: line {number}, column {layout.header[c]}: {cells[c].strip()!r} is not a number"
                )
    return None


def _column(body: list[str], index: int) -> np.ndarray:
    """One column's cells as stripped strings."""
    cells = np.loadtxt(body, delimiter=",", usecols=(index,), dtype=str, comments=None, ndmin=1)
    return np.char.strip(cells)


def _labels(csv: Path, cells: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """(B,) class indices from AAMI class names or indices; an unknown label is refused."""
    unique, inverse = np.unique(cells, return_inverse=True)
    classes = [_label_index(str(u)) for u in unique]
    unknown = np.flatnonzero(np.isin(cells, [u for u, c in zip(unique, classes, strict=True) if c is None]))
    if unknown.size:
        first = unknown[0]
        raise DataError(f"{csv}: line {numbers[first]}: unknown label {str(cells[first])!r}; {_LABEL_HELP}")
    return np.array(classes, dtype=np.int64)[inverse.reshape(-1)]


def _records(csv: Path, cells: np.ndarray, numbers: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """(B,) record ids (record_ids) and the record names by id order."""
    empty = np.flatnonzero(cells == "")
    if empty.size:
        raise DataError(f"{csv}: line {numbers[empty[0]]}: the `{_RECORD}` cell is empty")
    unique, inverse = np.unique(cells, return_inverse=True)
    names = tuple(str(u) for u in unique)
    ids, _ = record_ids(names)
    return ids[inverse.reshape(-1)], tuple(names[i] for i in np.argsort(ids, kind="stable"))


def _label_index(cell: str) -> int | None:
    if cell in AAMI_CLASSES:
        return AAMI_CLASSES.index(cell)
    if not _is_number(cell):
        return None
    value = float(cell)  # "2" and "2.0" alike: labels written as floats (pandas, Kaggle)
    if not (math.isfinite(value) and value == int(value) and 0 <= value < len(AAMI_CLASSES)):
        return None
    return int(value)


def _record_number(name: str) -> int | None:
    # Canonical digits only, so that the number maps back to exactly one name; int32, as BeatSet keeps.
    if name.isascii() and name.isdigit() and str(int(name)) == name and int(name) < 2**31:
        return int(name)
    return None


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)
