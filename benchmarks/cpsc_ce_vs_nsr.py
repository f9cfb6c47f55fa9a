"""CE against NSR on CPSC2018: macro F1, balanced accuracy and robust F1 under two protocols.

    python benchmarks/cpsc_ce_vs_nsr.py --data-dir ../shared/data/cpsc2018          # 150 records
    python benchmarks/cpsc_ce_vs_nsr.py --data-dir CPSC2018 --sample-rate 500 \\
        --val-per-class 5 --test-per-class 50 --width 64 --blocks 2 --epochs 30      # the full set

Trains one model per objective (CE; NSR, the paper's MSE + margin + beta * R, and NSR on top of
CE, at each beta) with the same seed, data and
schedule, plus a second CE model (another seed) as the transfer attack's surrogate, then
evaluates each on every test record under the `standard` protocol (PGD-100) and the `strong`
one (APGD-CE, APGD-T, Square, SAP, transfer; masking checks). Prints one table and writes the
numbers to --out. On 150 records the test split holds a few records per class: the table
shows that the pipeline works end to end, not the paper's numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "cpsc2018"))
    parser.add_argument("--sample-rate", type=int, default=100)
    parser.add_argument("--val-per-class", type=int, default=1)
    parser.add_argument("--test-per-class", type=int, default=3)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--betas", default="0.3,1.0", help="NSR weights, comma-separated")
    parser.add_argument(
        "--nsr-eps",
        type=float,
        default=0.01,
        help="the eps inside the NSR term: the middle of the grid, since on 8 x thousands of samples "
        "the gradient's L1 norm is far larger than on a 187-sample beat",
    )
    parser.add_argument("--out", default="cpsc_ce_vs_nsr.json")
    args = parser.parse_args()

    import torch

    from nsr_tune.config import DataConfig, ModelConfig, ObjectiveConfig, OptimConfig, TrialConfig
    from nsr_tune.data import load_dataset
    from nsr_tune.evaluation.run import evaluate
    from nsr_tune.protocol import protocol
    from nsr_tune.trial import new_model, run_trial

    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = DataConfig(
        dataset="cpsc2018",
        sample_rate=args.sample_rate,
        val_per_class=args.val_per_class,
        test_per_class=args.test_per_class,
    )
    loaded = load_dataset(data, args.data_dir)
    splits = loaded.splits
    print(
        f"CPSC2018 from {loaded.data_dir}: train {len(splits.train)}, val {len(splits.val)}, "
        f"test {len(splits.test)} records at {splits.test.fs} Hz, {splits.test.n_leads} leads"
    )

    def train(objective: ObjectiveConfig, seed: int = 0) -> tuple[torch.nn.Module, float]:
        config = TrialConfig(
            data=data,
            model=ModelConfig(name="resnet18", knobs={"width": args.width, "blocks": args.blocks}),
            objective=objective,
            optim=OptimConfig(lr=args.lr, batch_size=16, epochs=args.epochs),
            test_eval=None,
            seed=seed,
        )
        started = time.perf_counter()
        *_, last = run_trial(config, splits)
        model = new_model(config)
        model.load_state_dict(last.checkpoint["model_state"])
        return model.eval(), time.perf_counter() - started

    runs = {"ce": ObjectiveConfig(name="ce")}
    for beta in (float(b) for b in args.betas.split(",") if b.strip()):
        runs[f"nsr b={beta:g}"] = ObjectiveConfig(name="nsr", beta=beta, nsr_eps=args.nsr_eps)
        runs[f"nsr_ce b={beta:g}"] = ObjectiveConfig(name="nsr_ce", beta=beta, nsr_eps=args.nsr_eps)
    surrogate, _ = train(ObjectiveConfig(name="ce"), seed=1)
    protocols = {
        "standard": protocol("standard", "cpsc2018", per_class_cap=None),
        "strong": protocol("strong", "cpsc2018", per_class_cap=None),
    }
    results = {}
    for name, objective in runs.items():
        model, seconds = train(objective)
        row = {"train_seconds": seconds, "epochs": args.epochs}
        for pname, pconfig in protocols.items():
            res = evaluate(model, splits.test, config=pconfig, split=data.split, surrogate=surrogate)
            row[pname] = {
                "macro_f1": res.macro_f1,
                "balanced_acc": res.balanced_acc,
                "robust_macro_f1": {f"{e:g}": res.robust_macro_f1[e] for e in res.eps},
                "robust_balanced_acc": {f"{e:g}": res.robust_balanced_acc[e] for e in res.eps},
                "eps_uv": {f"{e:g}": res.eps_uv[e] for e in res.eps},
                "flags": dict(res.flags),
                "skipped": dict(res.skipped),
                "attack": res.attack,
                "seconds": res.seconds,
            }
        results[name] = row
        print(f"{name}: trained {args.epochs} epochs in {seconds:.0f} s; evaluated", flush=True)

    eps = list(results["ce"]["standard"]["robust_macro_f1"])
    uv = results["ce"]["standard"]["eps_uv"]
    print(
        f"\ntest: {len(splits.test)} records; eps (max-abs units) and median uV: "
        + ", ".join(f"{e} ({uv[e]:.0f} uV)" for e in eps)
    )
    head = f"{'model':<14} {'macro F1':>8} {'bal.acc':>7}  protocol  " + " ".join(f"{e:>6}" for e in eps)
    print(head + "  flags")
    for name, row in results.items():
        for pname in protocols:
            r = row[pname]
            cells = " ".join(f"{r['robust_macro_f1'][e]:>6.3f}" for e in eps)
            flags = ",".join(r["flags"]) or "-"
            print(f"{name:<14} {r['macro_f1']:>8.3f} {r['balanced_acc']:>7.3f}  {pname:<8}  {cells}  {flags}")
    print("(robust columns: robust macro F1 at each eps)")
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
