"""A study's second stage, as plain data: who its finalists are, and their final front.

A search scores hundreds of trials with a cheap attack on validation beats; a researcher acts
on the front, so the front's numbers must be the strong ones. The finalists (the validation
front and the ranks just behind it) are evaluated on the test split under a strong protocol
(nsr_tune.evaluation.finalist), with intervals that resample test records, and the front is
drawn again on those numbers here. The transfer attack runs on the study's best CE trial as its
surrogate (another trial's model, never the finalist itself). No Ray, no MLflow, no torch:
`nsr_tune.study.finalize` runs the evaluations on a cluster and the tracker writes the results.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np

from nsr_tune._io import numbers
from nsr_tune.metrics import Objective, eps_key, metric_name, objectives_eps, on_part
from nsr_tune.results.flags import flags_text
from nsr_tune.results.front import StudyFront
from nsr_tune.results.pareto import ParetoResult, default_reference, dominance, pareto_analysis, signs
from nsr_tune.results.record import STATE_COMPLETE, TrialRecord

__all__ = [
    "SURROGATE_METRIC",
    "FinalFront",
    "FinalResult",
    "choose_finalists",
    "choose_surrogate",
    "final_csv",
    "final_front",
    "final_table",
]

# What "the study's best CE trial" is best at: clean validation balanced accuracy.
SURROGATE_METRIC = metric_name("balanced_acc", part="val")


@dataclass(frozen=True)
class FinalResult:
    """One finalist's second evaluation, as plain data (it is kept as JSON beside the study).

    `metrics` are `final_*` metrics, with `final_KIND_ci_low` / `_ci_high` where intervals were
    drawn; `settings` is the FinalConfig's fingerprint; `surrogate` the trial whose model the
    transfer attack ran on ("" when none).
    """

    trial_id: str
    settings: str
    surrogate: str
    metrics: Mapping[str, float]
    flags: Mapping[str, str]
    skipped: Mapping[str, str]
    evaluation: Mapping[str, Any]
    n_beats: int
    n_records: int
    node_id: str = ""  # the Ray node that ran the evaluation ("" outside Ray)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "settings": self.settings,
            "surrogate": self.surrogate,
            "metrics": dict(self.metrics),
            "flags": dict(self.flags),
            "skipped": dict(self.skipped),
            "evaluation": dict(self.evaluation),
            "n_beats": self.n_beats,
            "n_records": self.n_records,
            "node_id": self.node_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinalResult:
        """From `to_dict`'s data, or the strict JSON kept beside the study (its nulls and "inf"s
        back to numbers)."""
        # A field with a default (added later, such as node_id) may be absent from an older file.
        kwargs = {f.name: data[f.name] for f in fields(cls) if f.name in data or f.default is MISSING}
        kwargs["metrics"] = numbers(dict(kwargs["metrics"]))
        kwargs["evaluation"] = numbers(dict(kwargs["evaluation"]))
        return cls(**kwargs)

    def interval(self, name: str) -> tuple[float, float]:
        """The (low, high) interval of a final metric; NaNs when none was drawn."""
        return (
            float(self.metrics.get(f"{name}_ci_low", math.nan)),
            float(self.metrics.get(f"{name}_ci_high", math.nan)),
        )


def choose_finalists(front: StudyFront, *, top_ranks: int) -> tuple[str, ...]:
    """The trials of validation rank below `top_ranks`, by rank, then best first objective first."""
    result = front.result
    flip = -signs(result.directions)
    order = sorted(
        (i for i in range(len(result.ids)) if result.ranks[i] < top_ranks),
        key=lambda i: (int(result.ranks[i]), *(result.values[i] * flip).tolist(), result.ids[i]),
    )
    return tuple(result.ids[i] for i in order)


def choose_surrogate(trials: Sequence[TrialRecord], *, exclude: str) -> str | None:
    """The study's best complete CE trial other than `exclude` (by SURROGATE_METRIC), or None."""
    scored = [
        (float(t.last[SURROGATE_METRIC]), t.trial_id)
        for t in trials
        if t.trial_id != exclude
        and t.state == STATE_COMPLETE
        and t.config.get("objective", {}).get("name") == "ce"
        and math.isfinite(float(t.last.get(SURROGATE_METRIC, math.nan)))
    ]
    # Highest score first; the smaller trial id on a tie, so the choice is reproducible.
    return min(scored, key=lambda s: (-s[0], s[1]))[1] if scored else None


@dataclass(frozen=True)
class FinalFront:
    """The front drawn again on the finalists' final numbers, beside the validation front."""

    validation: StudyFront
    result: ParetoResult  # the finalists, ranked on the final objectives
    finals: Mapping[str, FinalResult]  # id -> its second evaluation
    intervals: Mapping[str, tuple[tuple[float, float], ...]]  # id -> (low, high) per objective
    # Trials on the validation front that are not on the final one -> why (attack, flags).
    fell_off: Mapping[str, str] = field(default_factory=dict)
    # Finalists off the final front whose intervals overlap, on every objective, those of a
    # finalist that dominates them: the test beats cannot tell the two apart at this level.
    not_separable: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return self.result.names


def _main_attack(final: FinalResult, eps: float | None) -> str:
    """Which attack of the cascade broke the most beats at `eps` (the largest eps without one)."""
    ev = final.evaluation
    by_attack: Mapping[str, Mapping[str, float]] = ev.get("robust_acc_by_attack") or {}
    grid = [float(e) for e in ev.get("eps", [])]
    if not grid:
        return ""
    e = eps if eps is not None and eps in grid else grid[-1]
    key = eps_key(e)
    if not by_attack:
        return f"{ev.get('attack', 'the attack')} left {ev['robust_acc'][key]:.3f} at eps {key}"
    previous, best, best_drop = float(ev["clean_acc"]), "", -1.0
    for name, curve in by_attack.items():
        drop = previous - float(curve[key])
        if drop > best_drop:
            best, best_drop = name, drop
        previous = float(curve[key])
    if best_drop <= 0:
        return f"no attack broke a clean-correct sample at eps {key}"
    return f"{best} broke the most beats at eps {key} ({best_drop:.3f} of them)"


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    if any(math.isnan(v) for v in (*a, *b)):
        return False
    return a[0] <= b[1] and b[0] <= a[1]


def final_front(validation: StudyFront, finals: Mapping[str, FinalResult]) -> FinalFront:
    """Rank the finalists (ids of `validation`) on the final counterparts of its objectives."""
    objectives = [
        Objective(on_part(n, "final"), d)
        for n, d in zip(validation.result.names, validation.result.directions, strict=True)
    ]
    names = [o.metric for o in objectives]
    directions = [o.direction for o in objectives]
    ids = [i for i in validation.result.ids if i in finals]
    values = np.array(
        [[float(finals[i].metrics.get(n, math.nan)) for n in names] for i in ids], dtype=float
    ).reshape(len(ids), len(names))
    result = pareto_analysis(
        ids, values, names=names, directions=directions, reference=default_reference(directions)
    )
    intervals = {i: tuple(finals[i].interval(n) for n in names) for i in ids}
    dominates = dominance(values, directions=directions)  # [j, k]: finalist j dominates finalist k
    val_rank = dict(zip(validation.result.ids, validation.result.ranks, strict=True))
    eps = next(iter(objectives_eps(objectives)), None)
    fell_off, not_separable = {}, {}
    for k, i in enumerate(ids):
        dominators = [ids[j] for j in np.flatnonzero(dominates[:, k])]
        if val_rank.get(i) == 0 and result.ranks[k] > 0:
            fell_off[i] = _why_fell_off(finals[i], eps, [validation.run_names.get(d, d) for d in dominators])
        overlapping = tuple(
            d
            for d in dominators
            if all(_overlap(a, b) for a, b in zip(intervals[i], intervals[d], strict=True))
        )
        if overlapping:
            not_separable[i] = overlapping
    return FinalFront(
        validation=validation,
        result=result,
        finals=dict(finals),
        intervals=intervals,
        fell_off=fell_off,
        not_separable=not_separable,
    )


def _why_fell_off(final: FinalResult, eps: float | None, dominators: Sequence[str]) -> str:
    """One line: the attack that did the most, who dominates the finalist now, its flags."""
    why = [_main_attack(final, eps), "dominated by " + ", ".join(dominators)]
    if final.flags:
        why.append("flags: " + ", ".join(final.flags))
    return "; ".join(w for w in why if w)


def _with_interval(value: float, interval: tuple[float, float]) -> str:
    if any(math.isnan(v) for v in interval):
        return f"{value:.4f}"
    return f"{value:.4f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def final_table(front: FinalFront, *, level: float = 0.95) -> str:
    """The finalists as a plain-text table: validation objectives, final objectives with their
    intervals, both ranks, the masking flags of the final evaluation, and notes."""
    v = front.validation.result
    names = list(v.names)
    val_index = {rid: k for k, rid in enumerate(v.ids)}
    fin_index = {rid: k for k, rid in enumerate(front.result.ids)}
    header = [
        "run",
        *(n.replace("_", " ", 1) for n in names),
        "val rank",
        *(f"{n.replace('_', ' ', 1)} [{level:.0%} CI]" for n in front.names),
        "final rank",
        "flags",
        "note",
    ]
    order = sorted(
        fin_index, key=lambda i: (int(front.result.ranks[fin_index[i]]), int(v.ranks[val_index[i]]))
    )
    rows = []
    for rid in order:
        k, j = val_index[rid], fin_index[rid]
        note = []
        if rid in front.fell_off:
            note.append("fell off the front")
        if rid in front.not_separable:
            names_ = ", ".join(front.validation.run_names.get(d, d) for d in front.not_separable[rid])
            note.append(f"not separable at {level:.0%} from {names_}")
        rows.append(
            [
                front.validation.run_names.get(rid, rid),
                *(f"{x:.4f}" for x in v.values[k]),
                str(int(v.ranks[k])),
                *(
                    _with_interval(x, ci)
                    for x, ci in zip(front.result.values[j], front.intervals[rid], strict=True)
                ),
                str(int(front.result.ranks[j])),
                flags_text(list(front.finals[rid].flags), none="-"),
                "; ".join(note) or "-",
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    some = next(iter(front.finals.values()), None)
    if some is not None:
        attack = str(some.evaluation.get("attack", ""))
        lines.append(
            f"final: {attack + ' ' if attack else ''}on {some.n_beats} test beats from "
            f"{some.n_records} records; intervals resample records"
        )
    for rid, why in front.fell_off.items():
        lines.append(f"fell off: {front.validation.run_names.get(rid, rid)}: {why}")
    return "\n".join(lines)


def final_csv(front: FinalFront) -> str:
    """final_front.csv: each finalist's validation and final objectives, intervals, ranks and notes."""
    v = front.validation.result
    val_index = {rid: k for k, rid in enumerate(v.ids)}
    out = io.StringIO()
    writer = csv.writer(out)
    cis = [f"{n}_ci_{side}" for n in front.names for side in ("low", "high")]
    writer.writerow(
        [
            "id",
            "run_name",
            *v.names,
            "pareto_rank",
            *front.names,
            *cis,
            "final_pareto_rank",
            "final_masking_flags",
            "fell_off",
            "not_separable_from",
        ]
    )
    for j, rid in enumerate(front.result.ids):
        k = val_index[rid]
        writer.writerow(
            [
                rid,
                front.validation.run_names.get(rid, rid),
                *v.values[k],
                int(v.ranks[k]),
                *front.result.values[j],
                *(x for ci in front.intervals[rid] for x in ci),
                int(front.result.ranks[j]),
                flags_text(list(front.finals[rid].flags)),
                front.fell_off.get(rid, ""),
                ",".join(front.not_separable.get(rid, ())),
            ]
        )
    return out.getvalue()
