"""`nsr-tune data summary` and `nsr-tune data download`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nsr_tune._io import strict_json
from nsr_tune.cli._common import add_data_dir, examples, progress


def _cmd_summary(args: argparse.Namespace) -> int:
    from nsr_tune.data import load_mitbih, resolve_data_dir, summarize

    if args.dataset == "cpsc2018":
        return _summary_cpsc(args)

    data_dir = resolve_data_dir(args.data_dir)
    beats, report = load_mitbih(data_dir, input=args.input, progress=progress(args) and not args.json)
    summary = summarize(beats, report, seed=args.seed)
    summary["input"] = {"name": args.input, "width": beats.width}
    if args.json:
        print(strict_json(summary, indent=2))
        return 0
    classes = summary["classes"]
    print(f"{summary['n_records']} records read from {summary['data_dir']}")
    print(f"  input: {args.input}, {beats.width} samples per beat at {beats.fs} Hz")
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
    import resource

    import numpy as np

    from nsr_tune.data import ALL_LEADS, CPSC_CLASSES, PAPER_LEADS, cpsc_dir, load_cpsc2018

    leads = ALL_LEADS if args.all_leads else PAPER_LEADS
    # Read every record, then say which have several labels: single-label training leaves
    # them out (the paper's protocol), --multi-label keeps them.
    every, report = load_cpsc2018(cpsc_dir(args.data_dir), leads=leads, multi_label=True)
    several = every.labels.sum(axis=1) > 1
    records = every if args.multi_label else every.subset(np.flatnonzero(~several))
    seconds = records.lengths / records.fs
    counts = dict.fromkeys(CPSC_CLASSES, 0)
    summary = {
        "data_dir": report.data_dir,
        "n_headers": report.n_read,
        "n_records": len(records),
        "dropped_multi_label": [] if args.multi_label else [every.names[i] for i in np.flatnonzero(several)],
        "several_labels": {
            every.names[i]: [c for c, on in zip(CPSC_CLASSES, every.labels[i], strict=True) if on]
            for i in np.flatnonzero(several)
        },
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
        "classes_single_label": {**counts, **every.subset(np.flatnonzero(~several)).class_counts()},
        "classes_multi_label": {
            c: int(n) for c, n in zip(CPSC_CLASSES, every.labels[several].sum(axis=0), strict=True)
        },
        # Linux reports kB: the peak resident memory of this command, reading included.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    if args.json:
        print(strict_json(summary, indent=2))
        return 0
    kept = "kept (--multi-label)" if args.multi_label else "left out of single-label training"
    print(f"{summary['n_records']} of {report.n_read} CPSC2018 records used, from {report.data_dir}")
    if summary["several_labels"]:
        listed = ", ".join(f"{n} {'+'.join(c)}" for n, c in summary["several_labels"].items())
        print(f"  {len(summary['several_labels'])} with several labels, {kept}: {listed}")
    s = summary["seconds"]
    print(
        f"  leads {', '.join(records.leads)} at {records.fs} Hz; length min {s['min']:.1f} s, "
        f"median {s['median']:.1f} s, max {s['max']:.1f} s; {report.truncated} truncated"
    )
    print(
        f"  held as int16 ADC values, unpadded: {summary['storage_mb']:.1f} MB; "
        f"peak memory of this command: {summary['peak_rss_mb']:.0f} MB RSS"
    )
    print(f"  {'records':<16}" + "".join(f"{c:>7}" for c in CPSC_CLASSES))
    for label, table in (
        ("one label", summary["classes_single_label"]),
        ("several labels", summary["classes_multi_label"]),
    ):
        print(f"  {label:<16}" + "".join(f"{table[c]:>7}" for c in CPSC_CLASSES))
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from nsr_tune.data import default_cpsc_dir, default_data_dir, download_cpsc2018, download_mitdb

    if args.dataset == "cpsc2018":
        path = download_cpsc2018(
            Path(args.dest) if args.dest else default_cpsc_dir(), progress=not args.quiet
        )
        print(
            f"CPSC2018 ready in {path} (every record complete, every file matches PhysioNet's SHA-256); "
            f"read it with --dataset cpsc2018 --data-dir {path}"
        )
        return 0
    path = download_mitdb(Path(args.dest) if args.dest else default_data_dir())
    print(f"MIT-BIH Arrhythmia Database ready in {path} (every file matches PhysioNet's SHA-256)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from nsr_tune.data import DATASETS, INPUTS

    data = sub.add_parser(
        "data",
        help="get and inspect MIT-BIH and CPSC2018 data",
        epilog=examples("nsr-tune data summary --data-dir bundled", "nsr-tune data download"),
    ).add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    summary = data.add_parser(
        "summary",
        help="records read and beats per class, overall and per split",
        epilog=examples(
            "nsr-tune data summary --data-dir bundled",
            "nsr-tune data summary --dataset cpsc2018 --data-dir ../shared/data/cpsc2018 --json",
        ),
    )
    add_data_dir(summary)
    summary.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    summary.add_argument("--seed", type=int, default=0, help="seed of the intra split")
    summary.add_argument(
        "--input",
        choices=tuple(INPUTS),
        default="kachuee",
        help="mitbih: the beat representation (the windowed ones drop a record's first and last beats too)",
    )
    summary.add_argument("--dataset", choices=tuple(DATASETS), default="mitbih", help="which database")
    summary.add_argument("--all-leads", action="store_true", help="cpsc2018: all 12 leads, not the paper's 8")
    summary.add_argument(
        "--multi-label", action="store_true", help="cpsc2018: keep records with several labels"
    )
    summary.set_defaults(func=_cmd_summary)
    download = data.add_parser(
        "download",
        help="fetch MIT-BIH or CPSC2018 from PhysioNet (checked against its SHA-256 sums)",
        epilog=examples(
            "nsr-tune data download", "nsr-tune data download --dataset cpsc2018 --dest data/cpsc2018"
        ),
    )
    download.add_argument("--dataset", choices=tuple(DATASETS), default="mitbih", help="which database")
    download.add_argument(
        "--dest",
        help="target directory (default: $NSR_TUNE_DATA, or $NSR_TUNE_CPSC2018 for cpsc2018, "
        "else the user cache)",
    )
    download.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar (there is none off a terminal)"
    )
    download.set_defaults(func=_cmd_download)
