"""Findings 5 to 7: CPSC2018 on the shared records, a real study's final front, and MO-ASHA."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from _findings import figures
from _findings.base import Finding
from _findings.common import Settings
from _findings.runs import Run

FULL_CPSC = (
    "python benchmarks/cpsc_ce_vs_nsr.py --data-dir CPSC2018 --sample-rate 500 --val-per-class 5 "
    "--test-per-class 50 --width 64 --blocks 2 --epochs 30 --out cpsc_full.json"
)


class Cpsc(Finding):
    name = "cpsc"
    title = "CPSC2018 on the 150 shared records"
    claim = "On 12-lead records of variable length, NSR keeps more macro F1 under attack than CE."
    note = (
        "The full CPSC2018 set (6,877 records) is not in the shared data: the same comparison on it, "
        f"not run for this page, is\n\n```bash\n{FULL_CPSC}\n```"
    )

    def runs(self, s: Settings) -> list[Run]:
        if s.quick:
            return []  # no CPSC2018 records are bundled
        argv = (
            "python", "benchmarks/cpsc_ce_vs_nsr.py", "--data-dir", str(s.data / "cpsc2018"),
            "--betas", "0.3", "--epochs", "30", "--out", s.path("cpsc", "cpsc.json"),
        )  # fmt: skip
        return [Run("cpsc", argv)]

    def summarise(self, s: Settings, done: Mapping[str, dict], root: Path) -> dict[str, Any] | None:
        if "cpsc" not in done:
            return None
        got = json.loads((root / "cpsc" / "cpsc.json").read_text())
        rows = {name: {p: r[p] for p in ("standard", "strong")} for name, r in got["results"].items()}
        eps = list(rows["ce"]["standard"]["robust_macro_f1"])
        ce, nsr = rows["ce"]["strong"], rows["nsr b=0.3"]["strong"]
        better = [e for e in eps if nsr["robust_macro_f1"][e] > ce["robust_macro_f1"][e]]
        verdict = (
            f"On {got['args']['test_per_class']} test records per class, NSR's robust macro F1 under "
            f"the strong cascade is above CE's at {len(better)} of {len(eps)} eps, clean "
            f"{nsr['macro_f1']:.3f} against {ce['macro_f1']:.3f}: "
            + "too few records to call a difference either way."
        )
        return {"rows": rows, "eps": eps, "args": got["args"], "verdict": verdict}

    def body(self, numbers: Mapping[str, Any]) -> str:
        eps = numbers["eps"]
        head = (
            "| model | attack | macro F1 | balanced acc | "
            + " | ".join(f"eps {e}" for e in eps)
            + " | flags |"
        )
        lines = [head, "|" + "---|" * (head.count("|") - 1)]
        for name, by in numbers["rows"].items():
            for protocol, r in by.items():
                cells = " | ".join(f"{r['robust_macro_f1'][e]:.3f}" for e in eps)
                flags = ", ".join(r["flags"]) or "-"
                clean = f"{r['macro_f1']:.3f} | {r['balanced_acc']:.3f}"
                lines.append(f"| {name} | {protocol} | {clean} | {cells} | {flags} |")
        a = numbers["args"]
        lines.append(
            "\nRobust columns: macro F1 under attack. One seed; "
            f"{a['test_per_class']} test records per class, {a['epochs']} epochs, a ResNet of width "
            f"{a['width']}, records at {a['sample_rate']} Hz. No intervals: "
            "with a few records per class, a resampled interval spans most of [0, 1]."
        )
        return "\n".join(lines)


STUDY = "findings-study"


class Study(Finding):
    name = "study"
    title = "A real study: the final front on the full MIT-BIH data"
    claim = "The paper's hand-picked beta 0.3 is where the accuracy-robustness trade-off is best."

    def runs(self, s: Settings) -> list[Run]:
        if s.quick:
            return []  # `python tune.py --dry-run` is the quick study, and has its own tests
        storage = str(s.root / "study")
        uri = f"sqlite:///{storage}/mlflow.db"
        tune = (
            "python", "tune.py", "--space", "benchmarks/findings_study.yaml", "--data-dir", s.mitdb,
            "--name", STUDY, "--storage", storage, "--mlflow-uri", uri, "--local-cpus", "1",
        )  # fmt: skip
        final = ("nsr-tune", "finalize", f"{storage}/{STUDY}", "--local-cpus", "1")
        front = ("nsr-tune", "pareto", "--mlflow-uri", uri, "--experiment", "findings_study",
                 "--out", str(s.root / "study-front"))  # fmt: skip
        return [
            Run("study", tune),
            Run("study-final", final, after=("study",)),
            Run("study-front", front, after=("study-final",)),
        ]

    def summarise(self, s: Settings, done: Mapping[str, dict], root: Path) -> dict[str, Any] | None:
        if "study-front" not in done:
            return None
        rows = _csv_rows(root / "study-front" / "final_front.csv")
        front = [r for r in rows if r["final_pareto_rank"] == "0"]
        names = sorted(r["run_name"].split(" · ")[0] for r in front)
        betas = [float(m.group(1)) for n in names if (m := re.search(r"nsr β=([0-9.e+-]+)", n))]
        paper = "among them" if 0.3 in betas else "not among them"
        verdict = (
            f"The final front (test beats, strong cascade) holds {len(front)} of {len(rows)} finalists: "
            f"{'; '.join(names)}. The paper's beta 0.3 (the study's second trial) is {paper}."
        )
        return {"rows": rows, "png": str(root / "study-front" / "final_front.png"), "verdict": verdict}

    def figure(self, numbers: Mapping[str, Any], path: Path) -> bool:
        shutil.copyfile(numbers["png"], path)
        return True

    def body(self, numbers: Mapping[str, Any]) -> str:
        keys = [k for k in numbers["rows"][0] if k not in ("id", "not_separable_from")]
        lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        for r in numbers["rows"]:
            lines.append("| " + " | ".join(_short(r[k]) for k in keys) + " |")
        lines.append(
            "\nThe space: `benchmarks/findings_study.yaml` (CNN and MLP, CE and NSR with beta drawn "
            "log-uniformly from 0.03 to 3, 4 trials of one epoch, one at a time). The figure is the study's "
            "`final_front.png`: the validation front against the finalists' test front."
        )
        return "\n".join(lines)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _short(value: str) -> str:
    try:
        return f"{float(value):.3f}"
    except ValueError:
        return value


class MoAsha(Finding):
    name = "moasha"
    title = "MO-ASHA: hypervolume against trial-epochs"
    claim = "MO-ASHA reaches FIFO's final hypervolume within 2% with no more than half the trial-epochs."
    note = (
        "The live benchmark, two studies of the same space side by side, one FIFO and one MO-ASHA "
        "(each about 20 minutes on 2 cores), was not run for this page:\n\n```bash\n"
        "python tune.py --space benchmarks/moasha_record.yaml --data-dir PATH/TO/mitdb --name moasha_record\n"
        "python tune.py --space mitbih_moasha --data-dir PATH/TO/mitdb --name moasha_live\n"
        "python benchmarks/moasha_live.py runs/tune/moasha_record runs/tune/moasha_live\n```"
    )

    def runs(self, s: Settings) -> list[Run]:
        orders = "20" if s.quick else "500"
        argv = (
            "python",
            "benchmarks/moasha_replay.py",
            "--orders",
            orders,
            "--json",
            s.path("moasha", "replay.json"),
        )
        return [Run("moasha", argv)]

    def summarise(self, s: Settings, done: Mapping[str, dict], root: Path) -> dict[str, Any] | None:
        if "moasha" not in done:
            return None
        r = json.loads((root / "moasha" / "replay.json").read_text())
        ep = np.array(r["moasha"]["trial_epochs"]) / r["fifo"]["trial_epochs"]
        hv = np.array(r["moasha"]["hypervolume"]) / r["fifo"]["hypervolume"]
        r["ratios"] = {
            "trial_epochs": _q(ep),
            "hypervolume": _q(hv),
            "goal_met": float(((hv >= 0.98) & (ep <= 0.5)).mean()),
        }
        met = np.median(hv) >= 0.98 and np.median(ep) <= 0.5
        r["verdict"] = (
            f"In the replay MO-ASHA spends a median {np.median(ep):.2f} of FIFO's trial-epochs for "
            f"{np.median(hv):.3f} of its final hypervolume: the median {'meets' if met else 'misses'} the "
            f"goal, but a single study is a single trial order, and only {r['ratios']['goal_met']:.0%} of "
            f"{r['orders']} orders meet it (the 10th percentile keeps {np.percentile(hv, 10):.2f} of the "
            "hypervolume: a front trial stopped early is lost)."
        )
        return r

    def figure(self, numbers: Mapping[str, Any], path: Path) -> bool:
        figures.moasha(numbers, path)
        return True

    def body(self, numbers: Mapping[str, Any]) -> str:
        f, q = numbers["fifo"], numbers["ratios"]
        lines = [
            "| scheduler | trial-epochs | final hypervolume |",
            "|---|---|---|",
            f"| FIFO | {f['trial_epochs']} | {f['hypervolume']:.4f} |",
            f"| MO-ASHA, rungs {numbers['rungs']} (ratio to FIFO, median [p10, p90]) | "
            f"{_fmt(q['trial_epochs'])} | {_fmt(q['hypervolume'])} |",
        ]
        lines += [
            "\n| grace epochs | reduction factor | rungs | trial-epochs / FIFO | hypervolume / FIFO |",
            "|---|---|---|---|---|",
        ]
        for o in numbers["other_rungs"]:
            lines.append(
                f"| {o['grace_epochs']} | {o['reduction_factor']} | {o['rungs']} | "
                f"{o['trial_epochs_ratio']:.3f} | {o['hypervolume_ratio']:.3f} |"
            )
        lines.append(
            f"\nThe replay runs the scheduler's own decision code on the per-epoch curves of a recorded FIFO "
            f"study ({numbers['curves']}, {numbers['trials']} trials x {numbers['max_epochs']} epochs, "
            f"`benchmarks/moasha_curves.json`) over {numbers['orders']} random trial orders."
        )
        return "\n".join(lines)


def _q(x: np.ndarray) -> dict[str, float]:
    return {
        "median": float(np.median(x)),
        "p10": float(np.percentile(x, 10)),
        "p90": float(np.percentile(x, 90)),
    }


def _fmt(q: Mapping[str, float]) -> str:
    return f"{q['median']:.3f} [{q['p10']:.3f}, {q['p90']:.3f}]"
