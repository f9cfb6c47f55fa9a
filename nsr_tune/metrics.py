"""The metric schema: every metric name is built and parsed here, nowhere else.

A name is ``[PART_]KIND[_eps_EPS]``: the part of the data it was measured on (``val``, ``test``,
``final`` for a study finalist's second evaluation on the test split, or none), what it measures,
and for curve metrics the noise level, written with ``:g`` (0.05, not 0.050). For example
``val_robust_balanced_acc_eps_0.05`` or ``test_clean_acc``.

A study's objective is a metric and the `Direction` in which it is better; directions are this
one type everywhere (search spaces, the front, the scheduler), written "max" and "min".
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "CURVE_KINDS",
    "PARTS",
    "SCALAR_KINDS",
    "Direction",
    "MetricName",
    "Objective",
    "eps_key",
    "metric_eps",
    "metric_name",
    "objective_names",
    "objectives_eps",
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


class Direction(str, enum.Enum):
    """Whether an objective is better higher or lower.

    It is written "max" and "min" (as a search space, Ray Tune and a study's files write it) and
    is read from, and equal to, "maximize" and "minimize" too (as Optuna and the Pareto analysis
    write it), so a direction is this one type whichever spelling it came in. It hashes as its
    value ("max"), the spelling it is stored under.
    """

    MAXIMIZE = "max"
    MINIMIZE = "min"

    @classmethod
    def _missing_(cls, value: object) -> Direction | None:
        words = {"maximize": cls.MAXIMIZE, "minimize": cls.MINIMIZE}
        return words.get(value) if isinstance(value, str) else None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Direction):
            return self is other
        if isinstance(other, str):
            return other in (self.value, self.word)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(self.value)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def sign(self) -> float:
        """+1 where higher is better, -1 where lower is: multiplied in, every objective is maximised."""
        return 1.0 if self is Direction.MAXIMIZE else -1.0

    @property
    def word(self) -> str:
        """ "maximize" or "minimize", as Optuna writes a direction."""
        return "maximize" if self is Direction.MAXIMIZE else "minimize"


class Objective(NamedTuple):
    """A metric a study optimises and its direction; equal to the pair ("metric", "max")."""

    metric: str
    direction: Direction

    @classmethod
    def of(cls, metric: str, direction: str | Direction) -> Objective:
        return cls(str(metric), Direction(direction))

    @property
    def eps(self) -> float | None:
        """The noise level the metric is measured at (None for a scalar metric)."""
        return parse_metric(self.metric).eps


def objectives_eps(objectives: Iterable[Objective]) -> tuple[float, ...]:
    """The noise levels a study's objectives are measured at, sorted, each once."""
    return tuple(sorted({o.eps for o in objectives if o.eps is not None}))
