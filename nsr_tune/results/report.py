"""A study's report as plain data: the fronts, the finalists' evaluations, cost and search space.

Built from the study's own files (Tune's results and the kept final results), so it needs
neither Ray, MLflow nor torch; `nsr_tune.plots.report_html` draws it as one self-contained HTML
file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nsr_tune.metrics import Direction
from nsr_tune.results.finalists import FinalFront, FinalResult, final_front
from nsr_tune.results.front import StudyFront, front_from_record, run_name, trial_params
from nsr_tune.results.pareto import hypervolume
from nsr_tune.results.record import STATE_COMPLETE, StudyRecord

__all__ = ["StudyReport", "TrialCost", "build_report", "hypervolume_by_trial"]

# The trial params shown when a point is hovered: what distinguishes one trial from another.
HOVER_PARAMS = (
    "model.name",
    "objective.name",
    "objective.beta",
    "optim.lr",
    "optim.batch_size",
    "optim.epochs",
)


@dataclass(frozen=True)
class TrialCost:
    name: str
    state: str
    seconds: float  # wall time of training and evaluation, from Tune's reports
    cpu_hours: float  # of the trial and of its final evaluation, if it had one
    gpu_hours: float
    final_seconds: float = 0.0  # the finalist's second evaluation


@dataclass(frozen=True)
class StudyReport:
    name: str
    experiment: str
    experiment_path: str
    space_text: str
    params: Mapping[str, Any]  # the study's params (split, beats, samples, ...)
    validation: StudyFront
    final: FinalFront | None
    hover: Mapping[str, Mapping[str, str]]  # trial id -> params worth showing
    costs: Mapping[str, TrialCost]  # trial id -> its cost, in the order trials started
    hypervolume: Sequence[tuple[int, float]]  # (trials finished so far, hypervolume of their front)


def hypervolume_by_trial(
    values: Sequence[Sequence[float]], *, directions: Sequence[Direction | str], reference: Sequence[float]
) -> list[tuple[int, float]]:
    """The hypervolume of the first k points, for k = 1..n (NaN rows count but add nothing)."""
    out = []
    for k in range(1, len(values) + 1):
        seen = np.asarray(values[:k], dtype=float)
        seen = seen[np.isfinite(seen).all(axis=1)]
        hv = hypervolume(seen, directions=directions, reference=reference) if len(seen) else 0.0
        out.append((k, float(hv)))
    return out


def build_report(record: StudyRecord, finals: Mapping[str, FinalResult] | None = None) -> StudyReport:
    """The report of a study from its record and, when it has them, its finalists' results."""
    validation = front_from_record(record)
    final = final_front(validation, finals) if finals else None
    settings = record.description.settings
    cpu = float(settings.get("cpus_per_trial") or 1.0)
    gpu = float(settings.get("gpus_per_trial") or 0.0)
    # Trials in the order they started (Tune's first report timestamp), for cost and progress.
    started = sorted(
        record.trials, key=lambda t: t.results[0].get("timestamp", math.inf) if t.results else math.inf
    )
    costs = {}
    for t in started:
        seconds = float(t.last.get("time_total_s", 0.0))
        extra = (
            float(finals[t.trial_id].evaluation.get("seconds", 0.0))
            if finals and t.trial_id in finals
            else 0.0
        )
        costs[t.trial_id] = TrialCost(
            name=run_name(t.config, t.trial_id),
            state=t.state or "unfinished",
            seconds=seconds,
            cpu_hours=(seconds + extra) * cpu / 3600.0,
            gpu_hours=(seconds + extra) * gpu / 3600.0,
            final_seconds=extra,
        )
    result = validation.result
    index = {rid: i for i, rid in enumerate(result.ids)}
    values = [
        result.values[index[t.trial_id]]
        if t.state == STATE_COMPLETE and t.trial_id in index
        else [math.nan] * len(result.names)
        for t in started
        if t.state is not None
    ]
    hv = (
        hypervolume_by_trial(values, directions=result.directions, reference=result.reference)
        if len(result.names) <= 3
        else []
    )
    hover = {}
    for t in record.trials:
        params = trial_params(t.config)
        hover[t.trial_id] = {k: str(params[k]) for k in HOVER_PARAMS if k in params}
        hover[t.trial_id].update({k: str(v) for k, v in params.items() if k.startswith("model.knobs.")})
    return StudyReport(
        name=record.description.name,
        experiment=record.description.experiment,
        experiment_path=record.experiment_path,
        space_text=record.description.texts.get("search_space.yaml", ""),
        params=dict(record.description.params),
        validation=validation,
        final=final,
        hover=hover,
        costs=costs,
        hypervolume=hv,
    )
