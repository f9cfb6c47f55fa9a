"""What each attack costs and finds, measured in one run on real MIT-BIH beats.

    python benchmarks/bench_attacks.py [--data-dir ../shared/data/mitdb] [--epochs 3] [--eps 0.05]

The paper's CNN is trained with CE and with NSR (beta 0.3) on the `intra` split (a class-
proportional subset of `--max-train-beats` beats, `--epochs` epochs). On the same test beats
(at most `--per-class` per class) each attack runs alone on the clean-correct beats, then the
attacks run as the `strong` protocol's cascade, in the order APGD-CE, APGD-T, Square, SAP,
transfer (PGD-100 on a third, CE model trained from another seed), each on the beats still correct
(as AutoAttack does). Last, the whole `strong` evaluation (cascade, bisection of each beat's
smallest breaking eps, masking checks, noise stress test) is timed against a PGD-100 evaluation,
both at the paper's eps list.
Printed per model: beats/s and beats broken by each attack, the cascade's robust accuracy next
to PGD-100's, and the cascade's time relative to PGD-100 on the same beats (ratios, measured
in the same run, are the point: absolute times depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from nsr_tune.attacks import PGD, Attack
from nsr_tune.config import PAPER_EPS, DataConfig, ModelConfig, ObjectiveConfig, OptimConfig, TrialConfig
from nsr_tune.data import load_mitbih, load_nstdb, make_splits
from nsr_tune.evaluation.cascade import cascade
from nsr_tune.evaluation.run import evaluate
from nsr_tune.evaluation.scores import stratified_cap
from nsr_tune.models import build_model
from nsr_tune.protocol import protocol
from nsr_tune.trial import run_trial

REPO = Path(__file__).resolve().parents[1]


def train(
    splits, objective: str, beta: float, *, epochs: int, max_train_beats: int, seed: int = 0
) -> torch.nn.Module:
    config = TrialConfig(
        data=DataConfig(split="intra", max_train_beats=max_train_beats),
        model=ModelConfig(name="cnn"),
        objective=ObjectiveConfig(name=objective, beta=beta),
        optim=OptimConfig(epochs=epochs, batch_size=128),
        val_eval=None,
        test_eval=None,
        seed=seed,
    )
    *_, last = run_trial(config, splits, progress=False)
    model = build_model("cnn")
    model.load_state_dict(last.checkpoint["model_state"])
    return model.eval()


def run(
    attack: Attack, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """(broken (B,), seconds) of one attack, its random starts seeded alike for every attack."""
    t0 = time.perf_counter()
    broken = attack(x, y, lengths=lengths, generator=torch.Generator().manual_seed(0)).broken
    return broken, time.perf_counter() - t0


def bench_model(model: torch.nn.Module, surrogate: torch.nn.Module, test, args: argparse.Namespace) -> None:
    x = torch.from_numpy(test.x)  # (N, 1, 187)
    y = torch.from_numpy(test.y)
    lengths = torch.from_numpy(test.length.astype(np.int64))
    with torch.no_grad():
        idx = torch.nonzero(model(x).argmax(1) == y).squeeze(1)
    xc, yc, lc, n = x[idx], y[idx], lengths[idx], len(idx)
    print(f"  clean accuracy {n / len(y):.3f} ({n} of {len(y)} beats attacked)")
    pgd_broken, pgd_s = run(PGD(model, eps=args.eps, steps=100), xc, yc, lc)
    print(f"  {'attack':<10} {'beats/s':>9} {'broken':>7} {'alone: s':>9} {'x PGD-100':>10}")
    print(f"  {'PGD-100':<10} {n / pgd_s:9.1f} {int(pgd_broken.sum()):7d} {pgd_s:9.1f} {1.0:10.2f}")
    # The strong protocol's own cascade (nsr_tune.evaluation.cascade) at this eps and these budgets.
    strong = protocol("strong", apgd_steps=args.steps, square_queries=args.queries, sap_steps=args.steps)
    chain = {
        name.upper(): attack for name, attack in cascade(model, args.eps, strong, surrogate=surrogate).items()
    }
    for name, attack in chain.items():
        broken, s = run(attack, xc, yc, lc)
        print(f"  {name:<10} {n / s:9.1f} {int(broken.sum()):7d} {s:9.1f} {s / pgd_s:10.2f}")
    # The cascade: each attack on the beats that every attack before it left correct.
    alive = torch.ones(n, dtype=torch.bool)
    total, found = 0.0, {}
    for name, attack in chain.items():
        todo = torch.nonzero(alive).squeeze(1)
        broken, s = (
            run(attack, xc[todo], yc[todo], lc[todo]) if len(todo) else (torch.zeros(0, dtype=bool), 0.0)
        )
        total += s
        found[name] = int(broken.sum())
        alive[todo[broken]] = False
    cascade_acc = int(alive.sum()) / len(y)
    pgd_acc = (n - int(pgd_broken.sum())) / len(y)
    print("  cascade: " + ", ".join(f"{k} +{v}" for k, v in found.items()))
    print(
        f"  robust accuracy: cascade {cascade_acc:.3f}, PGD-100 {pgd_acc:.3f}; "
        f"cascade time {total:.1f} s = {total / pgd_s:.2f} x PGD-100 (goal <= 5)"
    )
    # The whole `strong` evaluation at the paper's eps list: the cascade, then the bisection of
    # each broken beat's eps, the masking checks and the noise stress test, against a PGD-100
    # evaluation (no bisection) of the same beats at the same eps.
    every = {"per_class_cap": None, "eps": args.protocol_eps}
    t0 = time.perf_counter()
    evaluate(model, test, config=protocol("standard", bisect_steps=0, **every), split="intra")
    plain_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = evaluate(
        model,
        test,
        config=dataclasses.replace(strong, **every),
        split="intra",
        surrogate=surrogate,
        nstdb=args.nstdb_records,
    )
    full_s = time.perf_counter() - t0
    t = full.timings
    print(
        f"  evaluate() at eps {','.join(f'{e:g}' for e in args.protocol_eps)}: strong {full_s:.1f} s = "
        f"{full_s / plain_s:.2f} x PGD-100 ({plain_s:.1f} s); without the median-eps bisection "
        f"{(full_s - t['bisection']) / plain_s:.2f} x; flags: {', '.join(full.flags) or 'none'}"
    )
    print("    of which " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mitdb"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-train-beats", type=int, default=20000)
    parser.add_argument("--per-class", type=int, default=60, help="test beats per class")
    parser.add_argument("--eps", type=float, default=0.05, help="L-inf budget on [0, 1] beats")
    parser.add_argument("--steps", type=int, default=100, help="APGD and SAP steps")
    parser.add_argument("--queries", type=int, default=1000, help="Square's query budget per beat")
    parser.add_argument("--nstdb", default=str(REPO.parent / "shared" / "data" / "nstdb"))
    parser.add_argument(
        "--protocol-eps",
        type=lambda t: tuple(float(v) for v in t.split(",")),
        default=PAPER_EPS,
        help="eps list of the whole-evaluation comparison (default: the paper's)",
    )
    args = parser.parse_args()
    args.nstdb_records = load_nstdb(args.nstdb)
    torch.manual_seed(0)
    beats, report = load_mitbih(args.data_dir)
    splits = make_splits(beats, split="intra", seed=0)
    test = splits.test.subset(stratified_cap(splits.test.y, cap=args.per_class, seed=0))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(beats)} beats from "
        f"{len(report.records)} records; {len(test)} test beats (<= {args.per_class} per class); "
        f"L-inf eps {args.eps:g}"
    )
    # The transfer attack's surrogate: another CE model, from another seed.
    surrogate = train(splits, "ce", 0.0, epochs=args.epochs, max_train_beats=args.max_train_beats, seed=1)
    for objective, beta in (("ce", 0.0), ("nsr", 0.3)):
        t0 = time.perf_counter()
        model = train(splits, objective, beta, epochs=args.epochs, max_train_beats=args.max_train_beats)
        print(
            f"\n{objective} (beta {beta:g}): trained {args.epochs} epochs in {time.perf_counter() - t0:.0f} s"
        )
        bench_model(model, surrogate, test, args)


if __name__ == "__main__":
    main()
