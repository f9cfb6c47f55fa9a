"""Two finished studies of the same space side by side: FIFO and MO-ASHA.

    python tune.py --space benchmarks/moasha_record.yaml --data-dir PATH/TO/mitdb --name moasha_record
    python tune.py --space mitbih_moasha --data-dir PATH/TO/mitdb --name moasha_live
    python benchmarks/moasha_live.py runs/tune/moasha_record runs/tune/moasha_live

Prints, per study: trials by state, trial-epochs, wall time (first report to last), CPU-hours,
the validation front and its hypervolume; then which trials MO-ASHA stopped at which rung, and
where the same configuration ended in the FIFO study (both spaces sample with one seed, so the
two studies draw the same configurations).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import numpy as np

from nsr_tune.results.pareto import default_reference, hypervolume, pareto_mask
from nsr_tune.results.record import StudyRecord, TrialRecord
from nsr_tune.study.results import read_study


def _key(t: TrialRecord) -> tuple:
    c = t.config
    return (
        c["model"]["name"],
        tuple(sorted(c["model"]["knobs"].items())),
        c["objective"]["name"],
        c["objective"].get("beta"),
        c["optim"]["lr"],
    )


def _label(t: TrialRecord) -> str:
    c = t.config
    knobs = ",".join(f"{k}={v}" for k, v in sorted(c["model"]["knobs"].items()))
    obj = c["objective"]["name"] + (
        f" b={c['objective']['beta']:.2f}" if c["objective"]["name"] == "nsr" else ""
    )
    return f"{c['model']['name']}{'(' + knobs + ')' if knobs else ''} {obj} lr={c['optim']['lr']:.1e}"


def summarize(record: StudyRecord) -> dict:
    objectives = list(record.description.objectives)
    directions = ["maximize" if m == "max" else "minimize" for _, m in objectives]
    done = [t for t in record.trials if t.state == "complete"]
    values = np.array([[t.last[m] for m, _ in objectives] for t in done]).reshape(-1, len(objectives))
    on_front = pareto_mask(values, directions=directions) if len(done) else np.zeros(0, bool)
    starts = [r["timestamp"] - r["time_this_iter_s"] for t in record.trials for r in t.results[:1]]
    ends = [r["timestamp"] for t in record.trials for r in t.results]
    return {
        "states": Counter(t.state for t in record.trials),
        "epochs": sum(int(t.last.get("epoch", 0)) for t in record.trials),
        "wall": max(ends) - min(starts) if ends else 0.0,
        "cpu_hours": sum(t.last.get("time_total_s", 0.0) * t.last.get("cpus", 1.0) for t in record.trials)
        / 3600,
        "front": sorted(((done[i], values[i]) for i in np.flatnonzero(on_front)), key=lambda p: -p[1][0]),
        "hv": hypervolume(values, directions=directions, reference=default_reference(directions))
        if len(done)
        else 0.0,
        "objectives": [m for m, _ in objectives],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fifo", help="Tune experiment path of the FIFO study")
    p.add_argument("moasha", help="Tune experiment path of the MO-ASHA study")
    args = p.parse_args(argv)
    fifo, mo = read_study(args.fifo), read_study(args.moasha)
    s = {"FIFO": summarize(fifo), "MO-ASHA": summarize(mo)}
    print(
        "| study | trials (state) | trial-epochs | wall time (min) | CPU-hours | front size | hypervolume |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, x in s.items():
        states = ", ".join(f"{k} {v}" for k, v in sorted(x["states"].items(), key=lambda kv: str(kv[0])))
        print(
            f"| {name} | {sum(x['states'].values())} ({states}) | {x['epochs']} | {x['wall'] / 60:.1f} | "
            f"{x['cpu_hours']:.2f} | {len(x['front'])} | {x['hv']:.4f} |"
        )
    f, m = s["FIFO"], s["MO-ASHA"]
    print(
        f"\nMO-ASHA / FIFO: trial-epochs {m['epochs'] / f['epochs']:.2f}, "
        f"wall time {m['wall'] / f['wall']:.2f}, "
        f"CPU-hours {m['cpu_hours'] / f['cpu_hours']:.2f}, hypervolume {m['hv'] / f['hv']:.3f}"
    )
    for name, x in s.items():
        print(f"\n{name} front ({', '.join(x['objectives'])}):")
        for t, v in x["front"]:
            print(f"  {t.trial_id}  {_label(t):<40} " + "  ".join(f"{a:.3f}" for a in v))
    fifo_by_key = {_key(t): t for t in fifo.trials}
    fifo_front = {_key(t) for t, _ in f["front"]}
    print("\nTrials MO-ASHA stopped, with their rung, and the same configuration in the FIFO study:")
    print(
        "| trial | configuration | stopped after epoch | FIFO final "
        + " / ".join(f["objectives"])
        + " | on FIFO front |"
    )
    print("|---|---|---|---|---|")
    for t in sorted(
        (t for t in mo.trials if t.state == "stopped_early"), key=lambda t: (t.stopped_at, t.trial_id)
    ):
        twin = fifo_by_key.get(_key(t))
        final = (
            " / ".join(f"{twin.last[o]:.3f}" for o in f["objectives"])
            if twin and twin.state == "complete"
            else "-"
        )
        print(
            f"| {t.trial_id} | {_label(t)} | {t.stopped_at} | {final} | "
            f"{'yes' if _key(t) in fifo_front else 'no'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
