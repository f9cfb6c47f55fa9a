"""A JSON-able overview of a load: what was read, what was dropped, and the class counts per split."""

from __future__ import annotations

from typing import Any

from nsr_tune.data._beats import AAMI_CLASSES, BeatSet
from nsr_tune.data._mitbih import LoadReport
from nsr_tune.data._splits import SPLITS, make_splits
from nsr_tune.errors import DataError

__all__ = ["summarize"]


def summarize(beats: BeatSet, report: LoadReport, *, seed: int = 0) -> dict[str, Any]:
    """Plain dict (json.dumps-able) describing ``beats`` and how each split would divide them.

    A split that cannot be made on these records appears as {"error": message} instead of counts,
    so a summary of a few records still shows everything else.
    """
    if not isinstance(beats, BeatSet):
        raise TypeError(f"beats must be a BeatSet, got {type(beats).__name__}")
    if not isinstance(report, LoadReport):
        raise TypeError(f"report must be a LoadReport, got {type(report).__name__}")
    splits: dict[str, Any] = {}
    for name in SPLITS:
        try:
            splits[name] = make_splits(beats, split=name, seed=seed).describe()
        except DataError as e:
            splits[name] = {"error": str(e)}  # reported in the summary, not lost
    return {
        "data_dir": report.data_dir,
        "records": list(report.records),
        "n_records": len(report.records),
        "leads": {str(rec): lead for rec, lead in report.leads.items()},
        "notes": list(report.notes),
        "dropped": {
            "out_of_record": report.dropped_out_of_record,
            "non_beat": dict(report.dropped_non_beat),
        },
        "unknown_symbols": dict(report.unknown_symbols),
        "fingerprint": report.fingerprint,
        "classes": list(AAMI_CLASSES),
        "n_beats": len(beats),
        "all": beats.class_counts(),
        "splits": splits,
    }
