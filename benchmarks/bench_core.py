"""Core speed figures, measured in one run on real MIT-BIH beats with the paper's CNN.

    python benchmarks/bench_core.py [--data-dir ../shared/data/mitdb] [--device cpu]

Prints:
  * NSR training step time / CE training step time, batch of 128 real beats (goal: <= 2.5);
  * PGD-100 (L-inf, eps 0.1 by default, worst of CE and margin) throughput in beats/s, with and without
    per-sample early exit, on a CNN trained for one short epoch (so the attack has work to do).
Ratios, not absolute times, are the point: both sides run on the same machine in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from nsr_tune.attacks import PGD, padding_mask
from nsr_tune.config import ObjectiveConfig
from nsr_tune.data import load_mitbih
from nsr_tune.models import build_model
from nsr_tune.objectives import OBJECTIVES

REPO = Path(__file__).resolve().parents[1]


def step_times(objectives, x, y, mask, *, repeats: int, device) -> dict[str, float]:
    """Median seconds per training step of the paper's CNN under each objective.

    The objectives take turns step by step, so a change in the machine's load during the run
    hits all of them alike and the ratio stays fair.
    """
    setups = {}
    for name in objectives:
        torch.manual_seed(0)
        model = build_model("cnn").to(device)
        setups[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-3), OBJECTIVES[name])
    times: dict[str, list[float]] = {name: [] for name in objectives}
    for i in range(repeats + 3):
        for name, (model, opt, fn) in setups.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = fn(model, x, y, config=ObjectiveConfig(name=name, beta=0.3), mask=mask)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 3:  # warm-up steps are not timed
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mitdb"))
    parser.add_argument("--records", default="208,213,223", help="records to take beats from")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--attack-beats", type=int, default=512)
    parser.add_argument("--eps", type=float, default=0.1, help="L-inf budget of the PGD throughput run")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)

    beats, _ = load_mitbih(args.data_dir, records=[int(r) for r in args.records.split(",")])
    rng = np.random.default_rng(0)
    x_all = torch.from_numpy(beats.x).to(device)
    y_all = torch.from_numpy(beats.y).to(device)
    len_all = torch.from_numpy(beats.length.astype(np.int64)).to(device)
    idx = torch.from_numpy(rng.choice(len(beats), 128, replace=False)).to(device)
    x, y = x_all[idx], y_all[idx]
    mask = padding_mask(x, len_all[idx])
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{len(beats)} real beats from records {args.records}"
    )

    steps = step_times(("ce", "nsr"), x, y, mask, repeats=args.repeats, device=device)
    ce, nsr = steps["ce"], steps["nsr"]
    torch.manual_seed(0)
    model = build_model("cnn").to(device)
    print(f"CE step  (batch 128): {ce * 1e3:8.2f} ms")
    print(f"NSR step (batch 128): {nsr * 1e3:8.2f} ms")
    print(f"NSR / CE step time:   {nsr / ce:8.2f}   (goal <= 2.5)")

    # A briefly trained model: an untrained one is wrong on most beats and leaves PGD no work.
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(beats), device=device)
    for start in range(0, len(order), 128):
        b = order[start : start + 128]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x_all[b]), y_all[b]).backward()
        opt.step()
    model.eval()
    sel = torch.from_numpy(rng.choice(len(beats), args.attack_beats, replace=False)).to(device)
    xa, ya, la = x_all[sel], y_all[sel], len_all[sel]
    with torch.no_grad():
        clean = (model(xa).argmax(1) == ya).float().mean().item()
    rates = {}
    for early in (True, False):
        attack = PGD(model, eps=args.eps, steps=100, early_exit=early)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        res = attack(xa, ya, lengths=la, generator=torch.Generator(device=device).manual_seed(0))
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rates[early] = len(xa) / dt
        print(
            f"PGD-100 eps={args.eps:g} early_exit={early!s:5}: {rates[early]:8.1f} beats/s  "
            f"(clean acc {clean:.3f}, robust acc {1 - res.broken.float().mean().item():.3f}, {dt:.1f} s)"
        )
    print(f"early-exit speed-up:  {rates[True] / rates[False]:8.2f}x")


if __name__ == "__main__":
    main()
