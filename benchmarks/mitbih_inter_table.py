"""Clean inter-patient results on every DS2 beat, in the form the ECG literature reports them.

    python benchmarks/mitbih_inter_table.py NAME=MODEL.pt [NAME=MODEL.pt ...] \\
        --data-dir ../shared/data/mitdb --out table.json

For each model (a model.pt or checkpoint.pt of `nsr-tune train --split inter`, with its own beat
representation) it predicts every beat of the DS2 test records (no cap, no subset) and prints,
per AAMI class N, S, V, F, the sensitivity (Se) and positive predictivity (+P), then the mean
sensitivity over N, S, V, F and the accuracy over all DS2 beats, beside published
inter-patient (DS1 -> DS2) results. The DS2 records hold 7 Q beats: they count in the accuracy,
as they do in the references. The windowed inputs also leave out the few beats too near a
record's start or end, so their beat counts are a little lower. A second table splits the S
sensitivity into record 232 and the rest; last come the confusion matrices over N, S, V, F, Q.

Give several models one NAME (the same recipe trained with different seeds) and a last table
shows the spread over them: a single run's row says little when seeds differ by a few points.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FOUR = ("N", "S", "V", "F")

# Published inter-patient results (DS1 -> DS2, AAMI classes), as summarised in the project's
# issue tracker; only the figures given there. None: not given.
LITERATURE: tuple[dict[str, object], ...] = (
    {"name": "de Chazal et al. 2004, linear discriminants", "mean_se": 0.83, "acc": 0.86, "note": ""},
    {"name": "Mondejar-Guerra et al. 2019, SVM ensemble", "mean_se": 0.70, "acc": 0.945, "note": ""},
    {"name": "Sellami & Hwang 2019, CNN", "mean_se": None, "acc": 0.88, "note": "sensitivity 0.91"},
    {
        "name": "Niu et al. 2020, multi-perspective CNN",
        "mean_se": None,
        "acc": 0.96,
        "note": "F1 S 0.77, V 0.90",
    },
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="NAME=MODEL", help="a label and a model file")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mitdb"))
    parser.add_argument("--out", type=Path, help="write the numbers as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from nsr_tune.checkpoints import load_model_file
    from nsr_tune.data import AAMI_CLASSES, load_dataset
    from nsr_tune.evaluation.batching import predict_samples
    from nsr_tune.evaluation.scores import per_class

    named = []
    for item in args.models:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"models: expected NAME=MODEL.pt, got {item!r}")
        named.append((name, Path(path)))

    torch.set_num_threads(1)
    rows, loaded = [], {}
    for name, path in named:
        config, model = load_model_file(path)
        if config.data.dataset != "mitbih" or config.data.split != "inter":
            parser.error(f"{path}: trained on {config.data.dataset}/{config.data.split}, not mitbih/inter")
        if any(r["name"] == name and r["seed"] == config.seed for r in rows):
            parser.error(f"models: {name!r} names two models of seed {config.seed}; give one per seed")
        key = config.data.input
        if key not in loaded:
            loaded[key] = load_dataset(config.data, args.data_dir).splits.test
        test = loaded[key]
        pred = predict_samples(model, test, device="cpu", batch_size=1024)
        metrics = per_class(pred, test.y)
        rows.append(
            {
                "name": name,
                "model": str(path),
                "input": key,
                "objective": config.objective.name,
                "beta": config.objective.beta,
                "epochs": config.optim.epochs,
                "seed": config.seed,
                "n_beats": len(test),
                "support": {c: metrics[c].support for c in FOUR},
                "se": {c: metrics[c].sensitivity for c in FOUR},
                "ppv": {c: metrics[c].precision for c in FOUR},
                "mean_se": float(np.mean([metrics[c].sensitivity for c in FOUR])),
                "acc": float((pred == test.y).mean()),
                # Record 232 holds three quarters of DS2's S beats, at a slow rate (see the README).
                "s_se_232": _s_sensitivity(pred, test, test.record == 232),
                "s_se_other": _s_sensitivity(pred, test, test.record != 232),
                # rows: the annotated class, columns: the predicted one (AAMI_CLASSES order)
                "confusion": _confusion(test.y, pred, len(AAMI_CLASSES)).tolist(),
            }
        )

    runs = Counter(r["name"] for r in rows)
    for r in rows:
        r["label"] = f"{r['name']}, seed {r['seed']}" if runs[r["name"]] > 1 else r["name"]

    def cell(v: object) -> str:
        return "-" if v is None else f"{v:.3f}"

    header = "| model | beats | " + " | ".join(f"Se {c} | +P {c}" for c in FOUR) + " | mean Se | acc |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        cells = " | ".join(f"{cell(r['se'][c])} | {cell(r['ppv'][c])}" for c in FOUR)
        print(f"| {r['label']} | {r['n_beats']} | {cells} | {cell(r['mean_se'])} | {cell(r['acc'])} |")
    for r in LITERATURE:
        cells = " | ".join("- | -" for _ in FOUR)
        note = f" ({r['note']})" if r["note"] else ""
        print(f"| {r['name']}{note} | - | {cells} | {cell(r['mean_se'])} | {cell(r['acc'])} |")
    print("\n| model | S Se, record 232 | S Se, the other DS2 records |\n|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {cell(r['s_se_232'])} | {cell(r['s_se_other'])} |")
    for r in rows:
        print(f"\n{r['label']}: annotated (rows) against predicted (columns)")
        print("| | " + " | ".join(AAMI_CLASSES) + " |\n|---|" + "---|" * len(AAMI_CLASSES))
        for c, counts in zip(AAMI_CLASSES, r["confusion"], strict=True):
            print(f"| {c} | " + " | ".join(str(k) for k in counts) + " |")
    spreads = _over_seeds(rows)
    if spreads:
        print("\nover seeds: the mean, and the lowest and highest run in brackets")
        print("| model | runs (seeds) | " + " | ".join(f"Se {c}" for c in FOUR) + " | mean Se | acc |")
        print("|" + "---|" * (len(FOUR) + 4))
        for s in spreads:
            cells = " | ".join(_spread(s["se"][c]) for c in FOUR)
            seeds = f"{len(s['seeds'])} ({', '.join(str(k) for k in s['seeds'])})"
            print(f"| {s['name']} | {seeds} | {cells} | {_spread(s['mean_se'])} | {_spread(s['acc'])} |")
    if args.out:
        out = {"models": rows, "over_seeds": spreads, "literature": list(LITERATURE)}
        args.out.write_text(json.dumps(out, indent=2))
        print(f"\nwrote {args.out}")


def _over_seeds(rows: list[dict]) -> list[dict]:
    """For each NAME given to more than one model: the mean, lowest and highest of each figure."""
    spreads = []
    for name, runs in Counter(r["name"] for r in rows).items():
        if runs < 2:
            continue
        group = [r for r in rows if r["name"] == name]
        spreads.append(
            {
                "name": name,
                "seeds": [r["seed"] for r in group],
                "se": {c: _stats([r["se"][c] for r in group]) for c in FOUR},
                "mean_se": _stats([r["mean_se"] for r in group]),
                "acc": _stats([r["acc"] for r in group]),
            }
        )
    return spreads


def _stats(values: list[float | None]) -> dict[str, float] | None:
    """Mean, lowest and highest; None where a run has no such beats (a class absent from the data)."""
    if any(v is None or not np.isfinite(v) for v in values):
        return None
    return {"mean": float(np.mean(values)), "min": float(min(values)), "max": float(max(values))}


def _spread(s: dict[str, float] | None) -> str:
    return "-" if s is None else f"{s['mean']:.3f} ({s['min']:.3f}-{s['max']:.3f})"


def _confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: rows the annotated class, columns the predicted one."""
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def _s_sensitivity(pred: np.ndarray, test: object, where: np.ndarray) -> float | None:
    s = where & (test.y == 1)  # type: ignore[attr-defined]
    return float((pred[s] == 1).mean()) if s.any() else None


if __name__ == "__main__":
    main()
