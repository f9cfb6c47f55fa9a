"""Memory of CPSC2018 records as nsr-tune holds them, against the padded float32 they would take.

    python benchmarks/bench_cpsc_memory.py [--data-dir ../shared/data/cpsc2018]

Prints, measured in one run:
  * the bytes of the records as held (int16 ADC values, unpadded, one scale per record) and the
    bytes of the same records as float32 padded to 30,720 samples, and their ratio;
  * the peak RSS of `nsr-tune data summary --dataset cpsc2018` and of a one-epoch
    `nsr-tune train --dataset cpsc2018` (each a fresh process), and of a fresh Python that
    only imports numpy and torch, for scale;
  * the full set (6,877 records) extrapolated from the mean record length here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _peak_rss_mb(code: list[str]) -> float:
    """Peak resident memory of one child process, in MB.

    Each command runs under a fresh Python parent that reports its own children's peak
    (Linux reports kB), so one measurement never carries another's maximum.
    """
    probe = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *code], check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "cpsc2018"))
    args = parser.parse_args()

    from nsr_tune.config import CPSC_MAX_LEN
    from nsr_tune.data import load_cpsc2018

    records, _ = load_cpsc2018(args.data_dir)
    held = records.nbytes
    padded = len(records) * len(records.leads) * CPSC_MAX_LEN * 4
    print(
        f"{len(records)} records, {len(records.leads)} leads, "
        f"mean {records.lengths.mean() / records.fs:.1f} s"
    )
    print(f"  held (int16, unpadded): {held / 1e6:8.1f} MB")
    print(f"  float32 padded to {CPSC_MAX_LEN}: {padded / 1e6:8.1f} MB   ratio {padded / held:.1f} x")
    full = 6877 / len(records)
    print(
        f"  full set (6,877 records), extrapolated: held {held * full / 1e9:.2f} GB, "
        f"padded {padded * full / 1e9:.2f} GB"
    )
    cli = [sys.executable, "-m", "nsr_tune.cli"]
    base = _peak_rss_mb([sys.executable, "-c", "import numpy, torch"])
    summary = _peak_rss_mb([*cli, "data", "summary", "--dataset", "cpsc2018", "--data-dir", args.data_dir])
    with tempfile.TemporaryDirectory() as out:
        # One epoch of the CPU variant on every record at 500 Hz (the paper's rate), with a
        # short evaluation: what training holds besides the records.
        train = [*cli, "train", "--dataset", "cpsc2018", "--data-dir", args.data_dir, "-q"]
        train += ["--val-per-class", "1", "--test-per-class", "2", "--knob", "width=16", "--knob", "blocks=1"]
        train += ["--epochs", "1", "--batch-size", "16", "--pgd-steps", "2", "--eps", "0.01", "--out", out]
        trained = _peak_rss_mb(train)
    print(
        f"  peak RSS: python + numpy + torch {base:.0f} MB; "
        f"nsr-tune data summary --dataset cpsc2018 {summary:.0f} MB; "
        f"one-epoch nsr-tune train (CPU ResNet-18, 500 Hz, batch 16) {trained:.0f} MB"
    )


if __name__ == "__main__":
    main()
