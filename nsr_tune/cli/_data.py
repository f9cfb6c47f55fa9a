"""`nsr-tune data summary` and `nsr-tune data download`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nsr_tune.cli._common import add_data_dir


def _cmd_summary(args: argparse.Namespace) -> int:
    from nsr_tune.data import load_mitbih, resolve_data_dir, summarize

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


def _cmd_download(args: argparse.Namespace) -> int:
    from nsr_tune.data import default_data_dir, download_mitdb

    path = download_mitdb(Path(args.dest) if args.dest else default_data_dir())
    print(f"MIT-BIH Arrhythmia Database ready in {path} (every file matches PhysioNet's SHA-256)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="get and inspect MIT-BIH data").add_subparsers(
        dest="data_command", required=True
    )
    summary = data.add_parser("summary", help="records read and beats per class, overall and per split")
    add_data_dir(summary)
    summary.add_argument("--json", action="store_true", help="machine-readable output")
    summary.add_argument("--seed", type=int, default=0, help="seed of the intra split")
    summary.set_defaults(func=_cmd_summary)
    download = data.add_parser("download", help="fetch the MIT-BIH Arrhythmia Database from PhysioNet")
    download.add_argument("--dest", help="target directory (default: the user cache directory)")
    download.set_defaults(func=_cmd_download)
