"""The metric schema: every metric name is built and parsed here, nowhere else.

A name is ``[PART_]KIND[_eps_EPS]``: the part of the data it was measured on (``val``, ``test``,
``final`` for a study finalist's second evaluation on the test split, or none), what it measures,
and for curve metrics the noise level, written with ``:g`` (0.05, not 0.050). For example
``val_robust_balanced_acc_eps_0.05`` or ``test_clean_acc``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "CURVE_KINDS",
    "PARTS",
    "SCALAR_KINDS",
    "MetricName",
    "eps_key",
    "metric_eps",
    "metric_name",
    "objective_names",
    "on_part",
    "parse_metric",
    "without_part",
]

# `rung`: the cheap evaluation of a small fixed validation subset at an early-stopping rung
# (nsr_tune.study.moasha); only the scheduler reads it, never the searcher or the front.
PARTS = ("val", "test", "final", "rung")
# Measured once per evaluation.
SCALAR_KINDS = ("clean_acc", "balanced_acc", "macro_f1", "robust_auc", "robust_balanced_auc")
# Measured at every noise level of an evaluation.
CURVE_KINDS = ("robust_acc", "robust_balanced_acc", "robust_macro_f1", "noise_acc")

_PATTERN = re.compile(r"^(?:(?P<part>val|test|final|rung)_)?(?P<kind>.+?)(?:_eps_(?P<eps>[0-9.eE+-]+))?$")


def eps_key(eps: float) -> str:
    """How a noise level is written in a metric name: 0.05 -> "0.05", 1e-05 -> "1e-05"."""
    return f"{float(eps):g}"


@dataclass(frozen=True)
class MetricName:
    kind: str
    part: str | None = None
    eps: float | None = None

    def __str__(self) -> str:
        return metric_name(self.kind, part=self.part, eps=self.eps)


def metric_name(kind: str, *, part: str | None = None, eps: float | None = None) -> str:
    if part is not None and part not in PARTS:
        raise ValueError(f"part must be one of {PARTS} or None, got {part!r}")
    name = kind if part is None else f"{part}_{kind}"
    return name if eps is None else f"{name}_eps_{eps_key(eps)}"


def parse_metric(name: str) -> MetricName:
    """The parts of a metric name; ``parse_metric(str(m)) == m`` for every name built here."""
    match = _PATTERN.match(name)
    if match is None:  # the pattern matches every non-empty string
        raise ValueError(f"not a metric name: {name!r}")
    eps = match["eps"]
    return MetricName(kind=match["kind"], part=match["part"], eps=None if eps is None else float(eps))


def on_part(name: str, part: str) -> str:
    """The same metric measured on another part, e.g. val_clean_acc -> test_clean_acc."""
    m = parse_metric(name)
    return metric_name(m.kind, part=part, eps=m.eps)


def objective_names(eps: Iterable[float], *, part: str = "val") -> tuple[str, ...]:
    """Every metric an evaluation at these noise levels reports that a search may optimise."""
    names = [metric_name(k, part=part) for k in SCALAR_KINDS]
    for e in eps:
        names += [metric_name(k, part=part, eps=e) for k in CURVE_KINDS]
    return tuple(names)


def metric_eps(names: Iterable[str]) -> tuple[float, ...]:
    """The noise levels the metrics are measured at, sorted, each once (none for scalar metrics)."""
    return tuple(sorted({e for n in names if (e := parse_metric(n).eps) is not None}))


def without_part(name: str) -> str:
    """The metric named without its part, e.g. final_balanced_acc -> balanced_acc (for axis labels)."""
    m = parse_metric(name)
    return metric_name(m.kind, eps=m.eps)
