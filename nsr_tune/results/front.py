"""The study's front: which trials enter it, on which values, and its table and CSV.

Pure data in, plain data out: no Ray, no MLflow, no torch. The tracker reads runs from MLflow
and the runner reads Tune's files; both turn them into `TrialOutcome`s and call `analyse`. Only
complete trials are ranked, on the objective values of their last report: a partly trained
or diverged trial is never on the front. Its figures are drawn by nsr_tune.plots.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nsr_tune.config import WEIGHTED
from nsr_tune.metrics import Objective, on_part, parse_metric
from nsr_tune.results.flags import flags_text, reported_flags
from nsr_tune.results.pareto import ParetoResult, default_reference, pareto_analysis
from nsr_tune.results.record import STATE_COMPLETE, StudyRecord

__all__ = [
    "StudyFront",
    "TrialOutcome",
    "analyse",
    "chance_objectives",
    "front_csv",
    "front_from_record",
    "front_table",
    "run_name",
    "trial_params",
]


def run_name(trial_config: Mapping[str, Any], trial_id: str) -> str:
    """What the trial is, at a glance: model, objective, beta or a plugin objective's settings
    (e.g. `cnn nsr β=0.3 · 3f2a_00001`, `lipschitz_cnn lmt c=0.005 · 3f2a_00002`)."""
    model = trial_config["model"]["name"]
    objective = trial_config["objective"]["name"]
    beta = trial_config["objective"]["beta"]
    weighted = objective in WEIGHTED
    # A plugin objective's own settings (ObjectiveConfig.params), such as `lmt c=0.005`.
    params = trial_config["objective"].get("params") or {}
    settings = "".join(f" {k}={v:.3g}" if isinstance(v, float) else f" {k}={v}" for k, v in params.items())
    return f"{model} {objective}" + (f" β={beta:.3g}" if weighted else settings) + f" · {trial_id}"


def trial_params(trial_config: Mapping[str, Any]) -> dict[str, Any]:
    """The trial config flattened to params such as `model.name`, `objective.beta`."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = node

    walk("", trial_config)
    return out


def chance_objectives(
    metrics: Sequence[str], *, n_balanced_classes: int, n_classes: int = 5
) -> dict[str, float]:
    """Chance-level values for a trial whose numbers cannot be trusted (it diverged).

    A broken net that predicts N for every beat scores a high plain accuracy and looks "robust"
    (nothing flips); the searcher must instead see what guessing gives: 1/k balanced accuracy
    over the k balanced classes and 1/n plain accuracy (every accuracy-like objective we offer
    is maximised).
    """
    # Guessing uniformly gives each class an F1 of about 1/k too, where the classes are balanced.
    return {
        m: 1.0 / n_balanced_classes
        if "balanced" in (kind := parse_metric(m).kind) or "f1" in kind
        else 1.0 / n_classes
        for m in metrics
    }


@dataclass(frozen=True)
class TrialOutcome:
    """One trial as the front sees it: its id (an MLflow run id or a Tune trial id), its state
    (complete, diverged, failed, or None while unfinished), the metrics of its last report and
    the labels of the masking flags that report carried (`test:zero_gradients`, ...)."""

    id: str
    name: str
    state: str | None
    metrics: Mapping[str, Any]
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudyFront:
    """The Pareto analysis of a study's complete trials, with what a table needs beside it."""

    parent_run_id: str
    result: ParetoResult
    run_names: Mapping[str, str]  # id -> run name
    test_values: Mapping[str, tuple[float, ...]]  # id -> the test counterparts of the objectives
    excluded: Mapping[str, str]  # id -> why it is not ranked (diverged, failed, ...)
    # id -> labels of its masking flags; a trial that no check flagged is absent. A flagged
    # trial's robust accuracy may come from a masked gradient, so its place on the front is suspect.
    flags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def test_names(self) -> tuple[str, ...]:
        return tuple(on_part(n, "test") for n in self.result.names)


def analyse(
    outcomes: Sequence[TrialOutcome], objectives: Sequence[Objective], *, parent_run_id: str = ""
) -> StudyFront:
    """Rank the complete trials on the objectives ((metric, direction) pairs)."""
    objectives = [Objective.of(m, d) for m, d in objectives]
    ids, values, names, tests, excluded = [], [], {}, {}, {}
    flags = {t.id: tuple(t.flags) for t in outcomes if t.flags}
    for t in outcomes:
        names[t.id] = t.name
        if t.state != STATE_COMPLETE:
            excluded[t.id] = t.state or "unfinished"
            continue
        if any(m not in t.metrics for m, _ in objectives):
            excluded[t.id] = "missing objective"
            continue
        ids.append(t.id)
        values.append([float(t.metrics[m]) for m, _ in objectives])
        tests[t.id] = tuple(float(t.metrics.get(on_part(m, "test"), math.nan)) for m, _ in objectives)
    directions = [o.direction for o in objectives]
    result = pareto_analysis(
        ids,
        np.asarray(values, dtype=float).reshape(len(ids), len(objectives)),
        names=[m for m, _ in objectives],
        directions=directions,
        reference=default_reference(directions),
    )
    return StudyFront(
        parent_run_id=parent_run_id,
        result=result,
        run_names=names,
        test_values=tests,
        excluded=excluded,
        flags=flags,
    )


def front_from_record(record: StudyRecord) -> StudyFront:
    """The front from Tune's results alone, for when MLflow is out of reach."""
    outcomes = [
        TrialOutcome(
            t.trial_id,
            run_name(t.config, t.trial_id),
            t.state,
            t.last,
            flags=tuple(f.label for f in reported_flags(t.last)),
        )
        for t in record.trials
    ]
    return analyse(outcomes, record.description.objectives)


def front_csv(front: StudyFront) -> str:
    """pareto.csv: every ranked trial, by rank, with its objectives, test values and flags."""
    result = front.result
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["run_id", "run_name", "pareto_rank", *result.names, *front.test_names, "masking_flags"]
    writer.writerow(header)
    order = sorted(range(len(result.ids)), key=lambda i: (result.ranks[i], -result.values[i][0]))
    for i in order:
        rid = result.ids[i]
        writer.writerow(
            [
                rid,
                front.run_names[rid],
                int(result.ranks[i]),
                *result.values[i],
                *front.test_values[rid],
                flags_text(front.flags.get(rid, ())),
            ]
        )
    return out.getvalue()


def front_table(front: StudyFront) -> str:
    """The front as a plain-text table: validation objectives, their test values beside them, and
    the masking flags that make a trial's robustness suspect (`-` where none fired)."""
    result = front.result
    names = list(result.names)
    header = [
        "run",
        *(n.replace("_", " ", 1) for n in names),
        *(n.replace("_", " ", 1) for n in front.test_names),
        "flags",
    ]
    rows = []
    for row in result.front_rows():
        rid = str(row["id"])
        rows.append(
            [
                front.run_names[rid],
                *(f"{row[n]:.4f}" for n in names),
                *(f"{v:.4f}" for v in front.test_values[rid]),
                flags_text(front.flags.get(rid, ()), none="-"),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    hv = "n/a" if result.hypervolume is None else f"{result.hypervolume:.4f}"
    n_front = int((result.ranks == 0).sum())
    n_flagged = sum(1 for rid in result.front_ids if rid in front.flags)
    lines.append(
        f"{n_front} of {len(result.ids)} ranked trials on the front, {n_flagged} flagged for gradient "
        f"masking; hypervolume {hv} (reference {list(result.reference)}); {len(front.excluded)} not ranked"
    )
    return "\n".join(lines)
