"""QRS detection on the MIT-BIH records: `rrcnn`'s own detector beside WFDB's xqrs, beat by beat.

    python benchmarks/qrs_detectors.py [--data-dir ../shared/data/mitdb] [--records 100 208] \\
        [--out qrs.json]

`rrcnn` (RRFeatures, run over a whole record by nsr_tune.models.record_peaks) sees the lead as
the model's inputs are made: MLII (V5 in 102 and 104, which have none) resampled to 125 Hz;
its peaks are mapped back to 360 Hz. xqrs (`wfdb.processing.xqrs_detect`) runs on the same lead
at 360 Hz, unresampled: MLII is channel 0 in every record but 114, where it is channel 1. Both
are scored by nsr_tune.data.detection_counts: `wfdb.processing.compare_annotations` against the
QRS annotations (QRS_SYMBOLS: WFDB's QRS codes) with the standard 150 ms window, at 360 Hz.
Prints a table per record and overall (Se = TP / (TP + FN), +P = TP / (TP + FP)) and the seconds
each detector took (the detector alone, and the whole pass with reading the records); ``--out``
writes the same as JSON. On one core: about 10 s for rrcnn, minutes for xqrs.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _detectors() -> dict[str, Callable[[Any], np.ndarray]]:
    """name -> a function of a MitbihRecord giving its R peaks at the record's own rate."""
    from wfdb.processing import xqrs_detect

    from nsr_tune.data import FS, at_record_rate
    from nsr_tune.models import record_peaks

    return {
        "rrcnn": lambda record: at_record_rate(record_peaks(record.signal, fs=FS), record.fs),
        "xqrs": lambda record: xqrs_detect(record.raw_mv, fs=record.fs, verbose=False),
    }


def run(data_dir: Path, records: list[int] | None) -> dict[str, Any]:
    """Every detector over the records: per-record and overall counts and seconds, as JSON."""
    from nsr_tune.data import MATCH_WINDOW_S, QRS_SYMBOLS, DetectionCounts, detection_counts

    out: dict[str, Any] = {"match_window_s": MATCH_WINDOW_S, "reference": "".join(sorted(QRS_SYMBOLS))}
    for name, detect in _detectors().items():
        started = time.perf_counter()
        counts = detection_counts(data_dir, detect, records=records)
        wall = time.perf_counter() - started
        total = DetectionCounts.total(counts.values())
        out[name] = {
            "records": {str(r): c.to_json() for r, c in counts.items()},
            "overall": total.to_json(),
            "detector_seconds": total.seconds,
            "wall_seconds": wall,
        }
        seconds = f"{total.seconds:.1f} s ({wall:.1f} s with reading)"
        print(f"{name}: Se {total.se:.4f}, +P {total.ppv:.4f} in {seconds}", flush=True)
    return out


def _row(label: str, counts: Mapping[str, Mapping[str, Any]]) -> str:
    cells = [f"{c['tp']:>6} {c['fp']:>5} {c['fn']:>5} {c['se']:.4f} {c['ppv']:.4f}" for c in counts.values()]
    return f"{label:>7} | " + " | ".join(cells)


def print_table(result: Mapping[str, Any], worst: int = 3) -> None:
    names = [k for k in result if isinstance(result[k], dict) and "overall" in result[k]]
    print("\n" + " " * 10 + " | ".join(f"{n:^32}" for n in names))
    print(
        f"{'record':>7} | " + " | ".join(f"{'TP':>6} {'FP':>5} {'FN':>5} {'Se':>6} {'+P':>6}" for _ in names)
    )
    for record in result[names[0]]["records"]:
        print(_row(record, {n: result[n]["records"][record] for n in names}))
    print(_row("overall", {n: result[n]["overall"] for n in names}))
    print("seconds " + "   ".join(f"{n}: {result[n]['detector_seconds']:.1f}" for n in names))
    ours = result[names[0]]["records"]
    print(f"\n{names[0]}'s worst {worst} records (by the lower of Se and +P), every detector beside:")
    for record in sorted(ours, key=lambda r: min(ours[r]["se"], ours[r]["ppv"]))[:worst]:
        print(_row(record, {n: result[n]["records"][record] for n in names}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "mitdb")
    parser.add_argument("--records", type=int, nargs="+", help="default: every record of --data-dir")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, help="write the numbers as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    torch.set_num_threads(args.threads)
    result = run(args.data_dir, args.records)
    print_table(result)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
