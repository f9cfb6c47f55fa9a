"""Rebuild the findings page, docs/results.md, from runs kept under runs/findings/.

    python benchmarks/findings.py                      # run what is missing (hours), then the page
    python benchmarks/findings.py --only intra_curves  # one finding (comma-separate several)
    python benchmarks/findings.py --skip-missing       # the page from the runs that have finished
    python benchmarks/findings.py --plan               # each finding's runs, done or not
    python benchmarks/findings.py --quick --out /tmp/f --runs /tmp/f/runs   # smoke test, bundled records

Each finding (benchmarks/_findings/) names the commands it needs: `nsr-tune train`,
`nsr-tune evaluate`, benchmark scripts. A run whose directory holds a run.json with the same
command is done; the rest run `--jobs` at a time with the cores shared out between them. Then each
finding whose runs changed is summarised into docs/results/NAME.json (numbers, intervals,
verdict, the commands with their times) and NAME.png, and the page is rebuilt from every JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _findings.base import Finding  # noqa: E402
from _findings.common import Settings  # noqa: E402
from _findings.inter import InterStrong, InterTable  # noqa: E402
from _findings.intra import IntraCurves, PaperNumber  # noqa: E402
from _findings.other import Cpsc, MoAsha, Study  # noqa: E402
from _findings.page import render  # noqa: E402
from _findings.qrs import Qrs  # noqa: E402
from _findings.runs import Executor, Run, device  # noqa: E402

FINDINGS: tuple[Finding, ...] = (
    IntraCurves(),
    PaperNumber(),
    InterTable(),
    InterStrong(),
    Cpsc(),
    Study(),
    MoAsha(),
    Qrs(),
)
FORMAT = 1  # bump when a finding's summary changes, to summarise every finding again
DATA = {
    "intra_curves": "MIT-BIH Arrhythmia Database, all 48 records, intra-patient split",
    "paper_number": "MIT-BIH Arrhythmia Database, all 48 records, intra-patient split",
    "inter_table": "MIT-BIH Arrhythmia Database, DS1 (train) and DS2 (test), de Chazal et al.",
    "inter_strong": "MIT-BIH Arrhythmia Database, DS1 (train) and DS2 (test), de Chazal et al.",
    "cpsc": "CPSC2018, the 150 shared records",
    "study": "MIT-BIH Arrhythmia Database, all 48 records",
    "moasha": "the per-epoch curves of a recorded FIFO study (benchmarks/moasha_curves.json)",
    "qrs": "MIT-BIH Arrhythmia Database, all 48 records, the reference beat annotations",
}
log = logging.getLogger("findings")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [f.name for f in FINDINGS]
    p.add_argument("--only", help=f"comma-separated findings (default: all): {', '.join(names)}")
    p.add_argument("--skip-missing", action="store_true", help="run nothing; summarise what has finished")
    p.add_argument(
        "--skip",
        default="",
        help="comma-separated runs not to start in this build (and the runs that read them): runs "
        "you will make elsewhere, e.g. on a GPU; the page lists them as not finished",
    )
    p.add_argument("--plan", action="store_true", help="list each finding's runs, done or not, and stop")
    p.add_argument("--force", action="store_true", help="summarise again even where no run changed")
    p.add_argument("--quick", action="store_true", help="bundled records, one seed, one epoch: a smoke test")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (default: 2)")
    p.add_argument(
        "--data", default="../shared/data", help="holds mitdb/, cpsc2018/ (default: ../shared/data)"
    )
    p.add_argument(
        "--runs", default="runs/findings", help="where runs keep their outputs (default: runs/findings)"
    )
    p.add_argument("--out", default="docs", help="writes OUT/results.md and OUT/results/ (default: docs)")
    args = p.parse_args(argv)
    if args.only:
        unknown = sorted(set(args.only.split(",")) - set(names))
        if unknown:
            p.error(f"--only: unknown finding(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    if args.jobs < 1:
        p.error(f"--jobs: must be at least 1, got {args.jobs}")
    if not args.quick and not (Path(args.data) / "mitdb" / "RECORDS").is_file():
        p.error(f"--data: {args.data} holds no mitdb/RECORDS (the MIT-BIH Arrhythmia Database)")
    return args


def _command(argv: tuple[str, ...]) -> str:
    return shlex.join(argv)


def summarise(f: Finding, s: Settings, out: Path, *, force: bool) -> dict:
    """Write out/results/NAME.json (and .png) unless its runs are unchanged; return its content."""
    runs = f.runs(s)
    done = {r.name: rec for r in runs if (rec := r.record(s.root)) is not None}
    stamp = json.dumps([FORMAT, s.quick, sorted((n, d["command"], d["finished"]) for n, d in done.items())])
    inputs = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    path = out / "results" / f"{f.name}.json"
    if path.is_file() and not force and json.loads(path.read_text()).get("inputs") == inputs:
        log.info("%s: no run changed; kept %s", f.name, path)
        return json.loads(path.read_text())
    numbers = f.summarise(s, done, s.root) if done else None
    seeds = sorted(
        {
            int(m.group(1))
            for d in done.values()
            if (m := re.search(r"--seed (\d+)", _command(tuple(d["command"]))))
        }
    )
    result = {
        "name": f.name,
        "title": f.title,
        "claim": f.claim,
        "inputs": inputs,
        "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "built_on": device(),
        "quick": s.quick,
        "data": "the bundled MIT-BIH records (quick mode)" if s.quick else DATA[f.name],
        "seeds": seeds,
        "runs": [_run_entry(r, done[r.name]) for r in runs if r.name in done],
        "missing": [{"name": r.name, "command": _command(r.argv)} for r in runs if r.name not in done],
        "numbers": numbers,
        "figure": None,
    }
    (out / "results").mkdir(parents=True, exist_ok=True)
    if numbers is not None and f.figure(numbers, out / "results" / f"{f.name}.png"):
        result["figure"] = f"{f.name}.png"
    path.write_text(json.dumps(result, indent=1) + "\n")
    log.info("%s: wrote %s", f.name, path)
    return result


def _run_entry(run: Run, record: dict) -> dict:
    return {
        "name": run.name,
        "command": _command(tuple(record["command"])),
        "seconds": record["seconds"],
        "finished": record["finished"],
        "device": record.get("device", "?"),
        "threads": record["threads"],
    }


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    s = Settings(quick=args.quick, data=Path(args.data), root=Path(args.runs))
    chosen = [f for f in FINDINGS if not args.only or f.name in args.only.split(",")]
    runs = list({r.name: r for f in chosen for r in f.runs(s)}.values())
    skip = {n for n in args.skip.split(",") if n}
    unknown = sorted(skip - {r.name for r in runs})
    if unknown:
        print(
            f"findings.py: error: --skip: no run named {', '.join(unknown)} in these findings",
            file=sys.stderr,
        )
        return 2
    while True:  # what reads a skipped run is skipped too
        more = {r.name for r in runs if r.name not in skip and skip.intersection(r.after)}
        if not more:
            break
        skip |= more
    if args.plan:
        for f in chosen:
            print(f"{f.name}:")
            for r in f.runs(s):
                print(f"  [{'done' if r.record(s.root) else '    '}] {r.name}: {_command(r.argv)}")
        return 0
    failed: list[str] = []
    if not args.skip_missing:
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        executor = Executor(repo=REPO, root=s.root, jobs=args.jobs, threads=threads)
        executor.run_all([r for r in runs if r.name not in skip])
        failed = executor.failed
    out = Path(args.out)
    for f in chosen:
        summarise(f, s, out, force=args.force)
    results = {}
    for f in FINDINGS:
        path = out / "results" / f"{f.name}.json"
        if path.is_file():
            results[f.name] = json.loads(path.read_text())
    (out / "results.md").write_text(render(FINDINGS, results))
    log.info("wrote %s", out / "results.md")
    if failed:
        log.error("failed runs: %s", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
