"""Dump evaluations and a short trial as JSON, so that two versions of nsr-tune can be compared
number for number (a refactoring must leave every figure as it was).

    python benchmarks/same_results.py OUT.json [--shared ../shared/data]

    # the same script against another commit, then compare:
    git worktree add /tmp/other COMMIT
    (cd /tmp/other && PYTHONPATH=/tmp/other python /path/to/benchmarks/same_results.py other.json)
    python benchmarks/same_results.py --compare other.json this.json

It writes, on the bundled MIT-BIH records and the shared CPSC2018 records, with untrained
seeded models: the strong protocol's EvalResult (every attack alone and as a cascade, the
transfer attack, the noise stress test, bisection, the masking checks) with each beat's
outcome; the standard protocol's; a multi-label evaluation; and a two-epoch NSR trial (its
per-epoch metrics, final evaluations, weights and saved config). Seconds are left out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from nsr_tune.config import DataConfig, EvalConfig, ModelConfig, ObjectiveConfig, OptimConfig, TrialConfig
from nsr_tune.data import load_dataset, load_mitbih, load_nstdb, make_splits
from nsr_tune.models import build_model
from nsr_tune.trial import run_trial

try:
    from nsr_tune.evaluation.run import evaluate
    from nsr_tune.protocol import protocol
except ImportError:  # commits before the evaluation package and protocol.py existed
    from nsr_tune.config import protocol  # type: ignore[attr-defined,no-redef]
    from nsr_tune.evaluation import evaluate  # type: ignore[attr-defined,no-redef]

REPO = Path(__file__).resolve().parents[1]


def _plain(value: Any) -> Any:
    """JSON-able, without timings (they differ between runs), NaN as a string (JSON has none)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in ("seconds", "timings", "epoch_seconds")}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _evaluations(shared: Path) -> dict[str, Any]:
    beats, _ = load_mitbih("bundled")
    test = make_splits(beats, split="inter", seed=0).test
    torch.manual_seed(0)
    target = build_model("cnn").eval()
    torch.manual_seed(1)
    surrogate = build_model("cnn").eval()
    strong = protocol(
        "strong",
        per_class_cap=20,
        apgd_steps=10,
        square_queries=50,
        sap_steps=10,
        transfer_steps=5,
        each_attack=True,
    )
    nstdb = load_nstdb(shared / "nstdb")
    r = evaluate(
        target, test, config=strong, split="inter", surrogate=surrogate, nstdb=nstdb, keep_beats=True
    )
    out = {
        "strong": r.to_dict(),
        "strong_flat": r.flat_metrics("final"),
        "strong_beats": [
            r.beats.clean_correct.tolist(),
            r.beats.survived.tolist(),
            r.beats.robust_pred.tolist(),
        ],
    }
    standard = protocol("standard", per_class_cap=20, steps=10, bisect_steps=2)
    out["standard"] = evaluate(target, test, config=standard, split="inter").to_dict()
    data = DataConfig(
        dataset="cpsc2018",
        split="records",
        sample_rate=100,
        val_per_class=1,
        test_per_class=2,
        multi_label=True,
    )
    records = load_dataset(data, shared / "cpsc2018").splits.test
    torch.manual_seed(0)
    sets = build_model("resnet18", {"width": 8, "blocks": 1}, n_classes=9, in_leads=8)
    config = EvalConfig(eps=(0.01, 0.03), steps=5, per_class_cap=5)
    out["multilabel"] = evaluate(sets, records, config=config, split="records", keep_beats=True).to_dict()
    return out


def _trial() -> dict[str, Any]:
    beats, _ = load_mitbih("bundled")
    config = TrialConfig(
        data=DataConfig(split="inter", max_train_beats=400),
        model=ModelConfig(name="cnn"),
        objective=ObjectiveConfig(name="nsr", beta=0.3),
        optim=OptimConfig(epochs=2, batch_size=64),
        val_eval=EvalConfig(eps=(0.01, 0.05), steps=5, per_class_cap=10, bisect_steps=0),
        test_eval=EvalConfig(eps=(0.01, 0.05), steps=5, per_class_cap=10),
    )
    results = list(run_trial(config, make_splits(beats, split="inter", seed=0)))
    last = results[-1]
    return {
        "trial_metrics": [dict(r.metrics) for r in results],
        "trial_val": last.val.flat_metrics("val"),
        "trial_test": last.test.flat_metrics("test"),
        "trial_weights": {k: v.double().sum().item() for k, v in last.checkpoint["model_state"].items()},
        "trial_config": last.checkpoint["config"],
    }


def _compare(a_path: Path, b_path: Path) -> int:
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    for key in sorted(a.keys() | b.keys()):
        print(f"{key:16s} {'DIFFERENT' if key in differ else 'the same'}")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, help="the JSON file to write")
    parser.add_argument(
        "--shared", type=Path, default=REPO.parent / "shared" / "data", help="the shared data"
    )
    parser.add_argument("--compare", nargs=2, type=Path, metavar="JSON", help="compare two dumps instead")
    args = parser.parse_args()
    if args.compare:
        return _compare(*args.compare)
    if args.out is None:
        parser.error("give OUT.json, or --compare A.json B.json")
    torch.set_num_threads(1)  # the same arithmetic in every run, whatever the machine's load
    out = _plain({**_evaluations(args.shared), **_trial()})
    args.out.write_text(json.dumps(out, indent=1, sort_keys=True))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
