"""`wfdb:DIR` datasets: any WFDB database with reference beat annotations (`.atr`), cut into beats
by the built-in MIT-BIH loader's own pipeline (_records reads, _segment cuts, _mitbih.load_records
ties them and caches), so that `wfdb:` on MIT-BIH gives exactly load_mitbih's beats.

- Records: those the RECORDS file lists (each must have its `.atr`), else every `.hea` header with
  an `.atr` beside it.
- Lead: `lead`, by name, in every record (a record without it is refused, named). None: MLII
  where a record has it, else its first signal: what load_mitbih does with its default, MLII,
  whose only records without it (102, 104) use their first lead.
- Record ids (BeatSet.record): the record number when every name is one (MIT-BIH's 100..234,
  the Supraventricular database's 800..894), else the name's position in name order.
- Splits: `records` (the default: patient-wise, nsr_tune.data._csv.records_split), `intra`, and
  `inter` (de Chazal's DS1/DS2) when every record is a MIT-BIH record.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from nsr_tune.config import DataConfig
from nsr_tune.data._beats import FS, INPUTS, BeatSet
from nsr_tune.data._csv import ids_note, record_ids, source_path, split_beats, unused_data_dir
from nsr_tune.data._mitbih import LoadReport, load_records
from nsr_tune.data._records import RecordInfo, inspect_record
from nsr_tune.data._segment import PREPROCESS_VERSION, WINDOW_S
from nsr_tune.data._spec import Dataset, Loaded
from nsr_tune.data._splits import DS1, DS2, PACED
from nsr_tune.errors import ConfigError, DataError

__all__ = ["WFDB_SETTINGS", "WfdbRecords", "list_annotated", "load_wfdb", "wfdb_dataset"]

logger = logging.getLogger(__name__)

#: The DataConfig fields a `wfdb:` dataset reads (besides the split, seed and training subset).
WFDB_SETTINGS: tuple[str, ...] = ("val_records", "val_fraction", "test_fraction", "input", "lead")

_MITBIH_RECORDS = frozenset((*DS1, *DS2, *PACED))


@dataclass(frozen=True)
class WfdbRecords:
    """The annotated records of a directory: names (paths below it, without extension) in name
    order, numeric where they are numbers, and the id each one's beats carry."""

    root: Path
    names: tuple[str, ...]
    ids: tuple[int, ...]
    numbered: bool  # the ids are the names

    @property
    def mitbih(self) -> bool:
        """Every record is a MIT-BIH record, so de Chazal's DS1/DS2 (`inter`) mean something."""
        return self.numbered and set(self.ids) <= _MITBIH_RECORDS


# ----------------------------------------------------------------------------------------- API


def wfdb_dataset(path: str, *, like: Dataset) -> Dataset:
    """The Dataset `wfdb:DIR`: `like` (mitbih: its classes, eps grids, objectives, models and
    inputs) with its own name, splits, settings and loader. Only the record list is read here;
    load checks every record before decoding one."""
    name = f"wfdb:{path}"
    records = list_annotated(source_path(name, directory=True))
    return replace(
        like,
        name=name,
        description=f"{len(records.names)} annotated WFDB records in {records.root}: single-lead beats "
        "at 125 Hz, 5 AAMI classes",
        splits=("records", "intra", *(("inter",) if records.mitbih else ())),
        settings=WFDB_SETTINGS,
        load=partial(_load, records.root),
    )


def load_wfdb(
    data_dir: str | Path,
    *,
    lead: str | None = None,
    input: str = "kachuee",
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[BeatSet, LoadReport]:
    """The beats of every annotated record in `data_dir` (module docstring), cut as load_mitbih
    cuts them and cached the same way. Every record's header and files are checked before any
    signal is decoded; the report's notes say which lead each record gave and what ids mean."""
    if not isinstance(data_dir, (str, os.PathLike)) or not os.fspath(data_dir):
        raise ConfigError(f"data_dir must be a non-empty path to a WFDB directory, got {data_dir!r}")
    if lead is not None and (not isinstance(lead, str) or not lead.strip()):
        raise ConfigError(f"lead: must be a signal name such as 'MLII' or 'V1', or None, got {lead!r}")
    if not isinstance(input, str) or input not in INPUTS:
        raise ConfigError(f"input: unknown beat representation {input!r}; choose one of {', '.join(INPUTS)}")
    root = Path(os.fspath(data_dir)).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: no such directory of WFDB records")
    records = list_annotated(root)
    infos = [_inspect(root, name, rid, lead) for name, rid in zip(records.names, records.ids, strict=True)]
    settings = {
        "source": "wfdb",
        "preprocess_version": PREPROCESS_VERSION,
        "lead": lead,
        "fs": FS,
        "input": input,
        "beat_len": INPUTS[input].width,
        "window_s": WINDOW_S,
        "records": list(records.names),
    }
    beats, report = load_records(
        root,
        infos,
        settings=settings,
        input=input,
        cache_dir=cache_dir,
        progress=progress,
        what="WFDB records",
    )
    notes = [_lead_note(records.names, infos)]
    if not records.numbered:
        notes.append(ids_note(records.names))
    for note in notes:
        logger.info("%s", note)
    return beats, replace(report, notes=(*notes, *report.notes))


def list_annotated(root: Path) -> WfdbRecords:
    """The records of `root`: RECORDS's, each with its `.atr`, else every `.hea` with an `.atr`
    beside it. A DataError naming the directory or file when there are none."""
    listing = root / "RECORDS"
    if listing.is_file():
        names = _listed(listing)
        for name in names:
            if not (root / f"{name}.atr").is_file():
                raise DataError(
                    f"{root / name}.atr: record {name}, listed in RECORDS, has no beat annotations"
                )
    else:
        headers = sorted(p.stem for p in root.glob("*.hea"))
        names = [n for n in headers if (root / f"{n}.atr").is_file()]
        if len(names) < len(headers):
            logger.info(
                "%s: leaving out %d record(s) without .atr annotations: %s",
                root,
                len(headers) - len(names),
                ", ".join(sorted(set(headers) - set(names))[:10]),
            )
        if not names:
            raise DataError(
                f"{root}: no annotated records here (no RECORDS file, and no .hea header with an .atr "
                "annotation file beside it)"
            )
    ids, numbered = record_ids(names)
    order = sorted(range(len(names)), key=lambda i: (int(ids[i]), names[i]))
    return WfdbRecords(
        root=root,
        names=tuple(names[i] for i in order),
        ids=tuple(int(ids[i]) for i in order),
        numbered=numbered,
    )


# ------------------------------------------------------------------------------------ helpers


def _load(root: Path, config: DataConfig, data_dir: str | Path | None, progress: bool) -> Loaded:
    unused_data_dir(config.dataset, data_dir)
    beats, report = load_wfdb(root, lead=config.lead, input=config.input, progress=progress)
    return Loaded(split_beats(beats, config), root, report.fingerprint, report.notes)


def _listed(listing: Path) -> list[str]:
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{listing}: cannot read the record list: {e}") from e
    names = list(dict.fromkeys(s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")))
    if not names:
        raise DataError(f"{listing}: the record list is empty")
    return names


def _inspect(root: Path, name: str, rid: int, lead: str | None) -> RecordInfo:
    """The record `name` checked (header parsed, every file present and long enough) with the lead
    chosen for it; its beats carry the id `rid`."""
    base = root / name
    signals = _signal_names(base)
    chosen = lead
    if lead is None:
        chosen = signals[0] if signals and "MLII" not in signals else "MLII"
    elif signals and lead not in signals:
        raise ConfigError(
            f"lead: record {name} in {root} has no signal {lead!r}; its signals are {', '.join(signals)}"
        )
    # inspect_record takes a record by any name (it only formats it into file names), refuses a
    # header it cannot parse and any missing or short file, naming it; the id is set after.
    info = inspect_record(base.parent, base.name, chosen)  # type: ignore[arg-type]
    return replace(info, number=rid)


def _signal_names(base: Path) -> tuple[str, ...]:
    """The signal names of a record's header; empty when it cannot be parsed (inspect_record then
    says why, naming the file)."""
    import wfdb

    try:
        header = wfdb.rdheader(str(base))
    except Exception:  # wfdb's failures on a bad header have no common type
        return ()
    return tuple(str(s) for s in header.sig_name or ())


def _lead_note(names: Sequence[str], infos: Sequence[RecordInfo]) -> str:
    """Which lead the records gave, e.g. `lead MLII in 46 records; V5 in 102, 104`."""
    by_lead: dict[str, list[str]] = defaultdict(list)
    for name, info in zip(names, infos, strict=True):
        by_lead[info.lead].append(name)
    if len(by_lead) == 1:
        ((lead, which),) = by_lead.items()
        return f"lead {lead} in all {len(which)} records"
    parts = sorted(by_lead.items(), key=lambda item: (-len(item[1]), item[0]))
    return "lead " + "; ".join(
        f"{lead} in {len(which)} records" if len(which) > 5 else f"{lead} in {', '.join(which)}"
        for lead, which in parts
    )
