"""Memory of CPSC2018 records as nsr-tune holds them, against the padded float32 they would take.

    python benchmarks/bench_cpsc_memory.py [--data-dir ../shared/data/cpsc2018]

Prints, measured in one run:
  * the bytes of the records as held (int16 ADC values, unpadded, one scale per record) and the
    bytes of the same records as float32 padded to 30,720 samples, and their ratio;
  * the peak RSS of `nsr-tune data summary --dataset cpsc2018` (a fresh process), and of a
    fresh Python that only imports numpy and torch, for scale;
  * the full set (6,877 records) extrapolated from the mean record length here.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _peak_rss_mb(code: list[str]) -> float:
    """Peak resident memory of a child process, in MB (Linux reports kB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(code, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "cpsc2018"))
    args = parser.parse_args()

    from nsr_tune.data import load_cpsc2018
    from nsr_tune.data._cpsc import CPSC_MAX_LEN

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
    # The first child sets the baseline the second is compared with: ru_maxrss of children is a
    # running maximum, so the smaller process runs first.
    base = _peak_rss_mb([sys.executable, "-c", "import numpy, torch"])
    summary = _peak_rss_mb(
        [
            sys.executable,
            "-m",
            "nsr_tune.cli",
            "data",
            "summary",
            "--dataset",
            "cpsc2018",
            "--data-dir",
            args.data_dir,
        ]
    )
    print(
        f"  peak RSS: python + numpy + torch {base:.0f} MB; "
        f"nsr-tune data summary --dataset cpsc2018 {summary:.0f} MB"
    )


if __name__ == "__main__":
    main()
