"""`nsr-tune data summary` and `nsr-tune data download`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nsr_tune.cli._common import add_data_dir


def _cmd_summary(args: argparse.Namespace) -> int:
    from nsr_tune.data import load_mitbih, resolve_data_dir, summarize

    if args.dataset == "cpsc2018":
        return _summary_cpsc(args)

    data_dir = resolve_data_dir(args.data_dir)
    beats, report = load_mitbih(data_dir, progress=not args.quiet and not args.json)
    summary = summarize(beats, report, seed=args.seed)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    classes = summary["classes"]
    print(f"{summary['n_records']} records read from {summary['data_dir']}")
    for note in summary["notes"]:
        print(f"  note: {note}")
    print(f"  dropped: {json.dumps(summary['dropped'])}")
    if summary["unknown_symbols"]:
        print(f"  unknown annotation symbols (dropped): {json.dumps(summary['unknown_symbols'])}")
    header = f"{'':<14}" + "".join(f"{c:>8}" for c in classes) + f"{'total':>9}"
    print("\n" + header)

    def row(name: str, counts: dict[str, int]) -> None:
        print(f"{name:<14}" + "".join(f"{counts[c]:>8}" for c in classes) + f"{sum(counts.values()):>9}")

    row("all", summary["all"])
    for split, parts in summary["splits"].items():
        if "error" in parts:
            print(f"{split:<14}cannot be made on these records: {parts['error']}")
            continue
        for part in ("train", "val", "test"):
            row(f"{split}/{part}", parts[part])
    return 0


def _summary_cpsc(args: argparse.Namespace) -> int:
    import numpy as np

    from nsr_tune.data import ALL_LEADS, PAPER_LEADS, load_cpsc2018
    from nsr_tune.errors import DataError

    if not args.data_dir:
        raise DataError("--data-dir: give the CPSC2018 directory (AXXXX.hea + AXXXX.mat records)")
    leads = ALL_LEADS if args.all_leads else PAPER_LEADS
    records, report = load_cpsc2018(args.data_dir, leads=leads, multi_label=args.multi_label)
    seconds = records.lengths / records.fs
    summary = {
        "data_dir": report.data_dir,
        "n_headers": report.n_read,
        "n_records": len(records),
        "dropped_multi_label": list(report.dropped_multi_label),
        "truncated": report.truncated,
        "leads": list(records.leads),
        "fs": records.fs,
        "seconds": {
            "min": float(seconds.min()),
            "median": float(np.median(seconds)),
            "max": float(seconds.max()),
        },
        "storage_mb": records.nbytes / 1e6,
        "classes": records.class_counts(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['n_records']} of {report.n_read} CPSC2018 records read from {report.data_dir}")
    if report.dropped_multi_label:
        dropped = report.dropped_multi_label
        print(f"  dropped, more than one label: {len(dropped)} ({', '.join(dropped)})")
    s = summary["seconds"]
    print(
        f"  leads {', '.join(records.leads)} at {records.fs} Hz; {s['min']:.1f} to {s['max']:.1f} s "
        f"(median {s['median']:.1f} s); {report.truncated} truncated"
    )
    print(f"  held as int16 ADC values, unpadded: {summary['storage_mb']:.1f} MB")
    print("  " + "  ".join(f"{c} {n}" for c, n in summary["classes"].items()))
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from nsr_tune.data import default_cpsc_dir, default_data_dir, download_cpsc2018, download_mitdb

    if args.dataset == "cpsc2018":
        path = download_cpsc2018(Path(args.dest) if args.dest else default_cpsc_dir())
        print(
            f"CPSC2018 ready in {path} (every record complete, every file matches PhysioNet's SHA-256); "
            f"read it with --dataset cpsc2018 --data-dir {path}"
        )
        return 0
    path = download_mitdb(Path(args.dest) if args.dest else default_data_dir())
    print(f"MIT-BIH Arrhythmia Database ready in {path} (every file matches PhysioNet's SHA-256)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="get and inspect MIT-BIH and CPSC2018 data").add_subparsers(
        dest="data_command", required=True
    )
    summary = data.add_parser("summary", help="records read and beats per class, overall and per split")
    add_data_dir(summary)
    summary.add_argument("--json", action="store_true", help="machine-readable output")
    summary.add_argument("--seed", type=int, default=0, help="seed of the intra split")
    summary.add_argument(
        "--dataset", choices=("mitbih", "cpsc2018"), default="mitbih", help="which database (default mitbih)"
    )
    summary.add_argument("--all-leads", action="store_true", help="cpsc2018: all 12 leads, not the paper's 8")
    summary.add_argument(
        "--multi-label", action="store_true", help="cpsc2018: keep records with several labels"
    )
    summary.set_defaults(func=_cmd_summary)
    download = data.add_parser("download", help="fetch MIT-BIH or CPSC2018 from PhysioNet")
    download.add_argument(
        "--dataset", choices=("mitbih", "cpsc2018"), default="mitbih", help="which database (default mitbih)"
    )
    download.add_argument(
        "--dest",
        help="target directory (default: $NSR_TUNE_DATA, or $NSR_TUNE_CPSC2018 for cpsc2018, "
        "else the user cache)",
    )
    download.set_defaults(func=_cmd_download)
