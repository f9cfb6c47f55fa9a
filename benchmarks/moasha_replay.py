"""Does MO-ASHA pay? Replay a recorded study's per-epoch curves through FIFO and MO-ASHA.

    # 1. a FIFO study that scores every epoch with the rung protocol (about 20 min on 2 cores)
    python tune.py --space benchmarks/moasha_record.yaml --data-dir PATH/TO/mitdb --name moasha_record
    # 2. its curves as a data file (kept in the repository: benchmarks/moasha_curves.json)
    python benchmarks/moasha_replay.py --record runs/tune/moasha_record --out benchmarks/moasha_curves.json
    # 3. the replay (seconds; no training)
    python benchmarks/moasha_replay.py

The replay runs the scheduler's own decision code (nsr_tune.study.moasha.Rungs) on the recorded
rung scores, over many random trial orders, with `--workers` trials at a time whose epochs take
the seconds they took in the recorded study. A trial that MO-ASHA lets finish has the final
objectives it had in the recorded study; the front of the finished trials gives the hypervolume
(reference: 0 for each accuracy). FIFO trains every trial to its end. Printed: trial-epochs,
simulated wall time and final hypervolume for both, their ratios, median and spread over orders.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path

import numpy as np

from nsr_tune.metrics import on_part
from nsr_tune.results.pareto import default_reference, hypervolume
from nsr_tune.study.moasha import Rungs, RungSettings
from nsr_tune.study.results import read_study
from nsr_tune.study.space import load_space

CURVES_FORMAT = "nsr-tune/curves/1"
HERE = Path(__file__).resolve().parent
DEFAULT_CURVES = HERE / "moasha_curves.json"


def extract(record_path: str) -> dict:
    """The per-epoch rung scores, epoch seconds and final objectives of every complete trial."""
    record = read_study(record_path)
    objectives = [list(p) for p in record.description.objectives]
    rung_names = [on_part(m, "rung") for m, _ in objectives]
    trials = []
    for t in record.trials:
        if t.state != "complete":
            continue
        reports = sorted(t.results, key=lambda r: r["epoch"])
        missing = [n for n in rung_names for r in reports if n not in r]
        if missing:
            raise SystemExit(
                f"{record_path}: trial {t.trial_id} lacks {missing[0]}: record with record_curves"
            )
        c = t.config
        trials.append(
            {
                "trial_id": t.trial_id,
                "model": c["model"]["name"],
                "knobs": c["model"]["knobs"],
                "objective": c["objective"]["name"],
                "beta": c["objective"].get("beta"),
                "lr": c["optim"]["lr"],
                "rung": [[r[n] for n in rung_names] for r in reports],
                "epoch_seconds": [r["time_this_iter_s"] for r in reports],
                "final": [t.last[m] for m, _ in objectives],
            }
        )
    return {
        "format": CURVES_FORMAT,
        "study": record.description.name,
        "space": record.description.experiment,
        "objectives": objectives,
        "rung_metrics": rung_names,
        "settings": record.description.params,
        "trials": trials,
    }


def replay(
    data: dict, order: list[int], *, settings: RungSettings | None, workers: int
) -> tuple[list[int], int, float, dict[str, int]]:
    """Run the trials in `order` on `workers` workers; MO-ASHA decides at its rungs (None: FIFO).

    Returns the trials that finished, the trial-epochs spent, the wall time, and the stopped
    trials with their rung epoch."""
    trials = data["trials"]
    modes = tuple(m for _, m in data["objectives"])
    rungs = Rungs(settings=settings, modes=modes) if settings is not None else None
    queue = list(order)
    events: list[tuple[float, int, int, int]] = []  # (time the epoch ends, worker, trial, epoch)

    def start(now: float, worker: int) -> None:
        if queue:
            i = queue.pop(0)
            heapq.heappush(events, (now + trials[i]["epoch_seconds"][0], worker, i, 1))

    for w in range(workers):
        start(0.0, w)
    finished, spent, wall = [], 0, 0.0
    while events:
        now, w, i, epoch = heapq.heappop(events)
        spent += 1
        wall = now
        t = trials[i]
        last = len(t["rung"])
        if epoch == last:
            finished.append(i)
            start(now, w)
            continue
        if rungs is not None:
            decision = rungs.decide(t["trial_id"], epoch, t["rung"][epoch - 1])
            if decision is not None and decision.stop:
                start(now, w)
                continue
        heapq.heappush(events, (now + t["epoch_seconds"][epoch], w, i, epoch + 1))
    return finished, spent, wall, dict(rungs.stopped) if rungs is not None else {}


def front_hypervolume(data: dict, finished: list[int]) -> float:
    directions = ["maximize" if m == "max" else "minimize" for _, m in data["objectives"]]
    values = np.array([data["trials"][i]["final"] for i in finished]).reshape(-1, len(directions))
    return hypervolume(values, directions=directions, reference=default_reference(directions))


def _spread(x: np.ndarray) -> str:
    p10, med, p90 = np.percentile(x, [10, 50, 90])
    return f"{med:.3f} [{p10:.3f}-{p90:.3f}] (min {x.min():.3f}, max {x.max():.3f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--record", help="a Tune experiment path of a record_curves study: extract its curves")
    p.add_argument("--out", type=Path, help="where --record writes the curves (default: print the replay)")
    p.add_argument("--curves", type=Path, default=DEFAULT_CURVES, help="the curves to replay")
    p.add_argument("--space", default="mitbih_moasha", help="the space whose search.scheduler is replayed")
    p.add_argument("--orders", type=int, default=500, help="random trial orders (default 500)")
    p.add_argument("--workers", type=int, default=2, help="trials at a time (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the replay's numbers here (default: print only)")
    args = p.parse_args(argv)
    if args.orders < 1 or args.workers < 1:
        p.error("--orders and --workers must be >= 1")

    if args.record:
        data = extract(args.record)
        if args.out:
            args.out.write_text(json.dumps(data, indent=1) + "\n")
            print(f"wrote {args.out}: {len(data['trials'])} trials")
            return 0
    else:
        data = json.loads(args.curves.read_text())
        if data.get("format") != CURVES_FORMAT:
            raise SystemExit(f"{args.curves}: not a curves file ({CURVES_FORMAT})")

    settings = load_space(args.space).scheduler
    if settings is None:
        raise SystemExit(f"--space {args.space}: it has no search.scheduler to replay")
    n = len(data["trials"])
    epochs = {len(t["rung"]) for t in data["trials"]}
    if epochs != {settings.max_epochs}:
        raise SystemExit(
            f"the recorded trials ran {sorted(epochs)} epochs, the scheduler expects {settings.max_epochs}"
        )
    rng = np.random.default_rng(args.seed)
    fifo_order = list(range(n))
    fifo_done, fifo_epochs, fifo_wall, _ = replay(data, fifo_order, settings=None, workers=args.workers)
    fifo_hv = front_hypervolume(data, fifo_done)

    hv, spent, wall, stops = [], [], [], np.zeros((n, len(settings.epochs) + 1))
    orders = [rng.permutation(n).tolist() for _ in range(args.orders)]
    for order in orders:
        done, e, w, stopped = replay(data, order, settings=settings, workers=args.workers)
        hv.append(front_hypervolume(data, done))
        spent.append(e)
        wall.append(w)
        # Shuffled FIFO orders only change the wall time a little; its epochs and front are fixed.
        for i, t in enumerate(data["trials"]):
            at = stopped.get(t["trial_id"])
            stops[i, settings.epochs.index(at) if at is not None else -1] += 1
    hv_r, ep_r, wall_r = np.array(hv) / fifo_hv, np.array(spent) / fifo_epochs, np.array(wall) / fifo_wall

    print(f"curves: {data['study']} ({n} trials x {settings.max_epochs} epochs, {data['space']})")
    print(
        f"objectives: {', '.join(m for m, _ in data['objectives'])}; "
        f"rung scores: {', '.join(data['rung_metrics'])}"
    )
    print(
        f"MO-ASHA: rungs at epochs {list(settings.epochs)}, reduction factor {settings.reduction_factor}; "
        f"{args.orders} random orders, {args.workers} workers\n"
    )
    print("| scheduler | trial-epochs | wall time (s) | final hypervolume |")
    print("|---|---|---|---|")
    print(f"| FIFO | {fifo_epochs} | {fifo_wall:.0f} | {fifo_hv:.4f} |")
    print(
        f"| MO-ASHA (median [p10-p90]) | {np.median(spent):.0f} [{np.percentile(spent, 10):.0f}-"
        f"{np.percentile(spent, 90):.0f}] | {np.median(wall):.0f} | {np.median(hv):.4f} "
        f"[{np.percentile(hv, 10):.4f}-{np.percentile(hv, 90):.4f}] |"
    )
    print("\nMO-ASHA / FIFO, median [p10-p90] over orders:")
    print(f"  trial-epochs  {_spread(ep_r)}")
    print(f"  wall time     {_spread(wall_r)}")
    print(f"  hypervolume   {_spread(hv_r)}")
    goal = (hv_r >= 0.98) & (ep_r <= 0.5)
    print(
        f"\ngoal (hypervolume within 2% at no more than half the trial-epochs): median "
        f"{'met' if np.median(hv_r) >= 0.98 and np.median(ep_r) <= 0.5 else 'missed'}; "
        f"met in {goal.mean():.0%} of the orders"
    )
    summary = {
        "curves": data["study"],
        "trials": n,
        "max_epochs": settings.max_epochs,
        "orders": args.orders,
        "workers": args.workers,
        "rungs": list(settings.epochs),
        "reduction_factor": settings.reduction_factor,
        "fifo": {"trial_epochs": fifo_epochs, "wall_s": fifo_wall, "hypervolume": fifo_hv},
        "moasha": {"trial_epochs": spent, "wall_s": wall, "hypervolume": hv},
        "other_rungs": [],
    }
    print("\nOther rungs on the same curves and orders (median [p10-p90] of MO-ASHA / FIFO):")
    print("| grace epochs | reduction factor | rungs | trial-epochs | hypervolume | goal met in |")
    print("|---|---|---|---|---|---|")
    for grace, factor in ((1, 2), (1, 3), (2, 2), (2, 3), (3, 2), (3, 3)):
        other = RungSettings(grace_epochs=grace, reduction_factor=factor, max_epochs=settings.max_epochs)
        o_hv, o_ep = [], []
        for order in orders:
            done, e, _, _ = replay(data, order, settings=other, workers=args.workers)
            o_hv.append(front_hypervolume(data, done) / fifo_hv)
            o_ep.append(e / fifo_epochs)
        h, ep = np.array(o_hv), np.array(o_ep)
        mark = " (this space)" if other == settings else ""
        summary["other_rungs"].append(
            {
                "grace_epochs": grace,
                "reduction_factor": factor,
                "rungs": list(other.epochs),
                "trial_epochs_ratio": float(np.median(ep)),
                "hypervolume_ratio": float(np.median(h)),
            }
        )
        print(
            f"| {grace} | {factor}{mark} | {list(other.epochs)} | {np.median(ep):.3f} "
            f"[{np.percentile(ep, 10):.3f}-{np.percentile(ep, 90):.3f}] | {np.median(h):.3f} "
            f"[{np.percentile(h, 10):.3f}-{np.percentile(h, 90):.3f}] | "
            f"{((h >= 0.98) & (ep <= 0.5)).mean():.0%} |"
        )
    front = [i for i in fifo_done if i in _front(data, fifo_done)]
    print("\nFIFO front trials and how often MO-ASHA stopped them (share of orders, by rung epoch):")
    cols = [f"rung {e}" for e in settings.epochs]
    print("| trial | model | objective | lr | " + " | ".join(cols) + " | finished |")
    print("|---|---|---|---|" + "---|" * (len(cols) + 1))
    for i in front:
        t = data["trials"][i]
        share = stops[i] / args.orders
        what = t["objective"] + (f" b={t['beta']:.2f}" if t["beta"] else "")
        print(
            f"| {t['trial_id']} | {t['model']} | {what} | {t['lr']:.1e} | "
            + " | ".join(f"{s:.0%}" for s in share[:-1])
            + f" | {share[-1]:.0%} |"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def _front(data: dict, finished: list[int]) -> set[int]:
    from nsr_tune.results.pareto import pareto_mask

    directions = ["maximize" if m == "max" else "minimize" for _, m in data["objectives"]]
    values = np.array([data["trials"][i]["final"] for i in finished])
    return {finished[k] for k in np.flatnonzero(pareto_mask(values, directions=directions))}


if __name__ == "__main__":
    sys.exit(main())
