"""How long `nsr-tune --help` takes, and what building the parser imports.

    python benchmarks/bench_cli.py [--runs 5]

Prints, for `nsr-tune --help`, `nsr-tune --version` and each subcommand's `--help`, the median
wall time of fresh processes, beside a bare `python -c pass` measured in the same run (the
interpreter's own start-up). Then the heavy libraries that building the parser imported: none of
torch, scipy, ray, mlflow, optuna, wfdb or matplotlib should appear. Goal: `nsr-tune --help`
under 1 s on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "scipy", "ray", "mlflow", "optuna", "wfdb", "matplotlib", "plotly")
COMMANDS = ("train", "evaluate", "export", "tune", "finalize", "report", "pareto", "sync-mlflow", "data")


def _seconds(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _imported_by_the_parser() -> list[str]:
    code = (
        "import sys; from nsr_tune.cli import build_parser; build_parser(); "
        f"print(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return out.stdout.split()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per command (default: 5)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs: must be at least 1, got {args.runs}")
    exe = shutil.which("nsr-tune") or str(Path(sys.executable).with_name("nsr-tune"))
    if not Path(exe).exists():
        parser.error("no nsr-tune on PATH: install the project first (pip install -e .)")
    bare = _seconds([sys.executable, "-c", "pass"], args.runs)
    print(f"median of {args.runs} fresh processes; python -c pass: {bare:.3f} s")
    rows = [("nsr-tune --help", [exe, "--help"]), ("nsr-tune --version", [exe, "--version"])]
    rows += [(f"nsr-tune {c} --help", [exe, c, "--help"]) for c in COMMANDS]
    for label, argv in rows:
        seconds = _seconds(argv, args.runs)
        print(f"{label:<30} {seconds:6.3f} s  ({seconds / bare:4.1f}x python -c pass)")
    heavy = _imported_by_the_parser()
    print(f"heavy libraries imported by build_parser(): {', '.join(heavy) if heavy else 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
