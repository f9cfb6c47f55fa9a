"""Multi-objective asynchronous successive halving (MO-ASHA): the decision rule, without Ray.

Schmucker et al. 2021 ("Multi-objective multi-fidelity hyperparameter optimization with
application to fairness") rank the trials that reached a rung by non-dominated sorting, and
order the trials inside one front by an epsilon-net, so that the trials kept spread along the
front instead of crowding one end of it. As in ASHA, the decision is asynchronous: a trial is
judged once, when it reaches the rung, against every trial that reached the rung before it. It
goes on when its place in that order, counted from 0 among the n trials recorded there (itself
included), is at most n / reduction_factor; otherwise it stops. The first trial at a rung
always goes on.

Everything here is plain data and numpy, so the Ray scheduler (nsr_tune.study.scheduler) and
the replay benchmark (benchmarks/moasha_replay.py) run the same decisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nsr_tune.errors import ConfigError
from nsr_tune.metrics import Direction
from nsr_tune.results.pareto import non_dominated_ranks, signs

__all__ = [
    "MOASHA_FORMAT",
    "RungDecision",
    "RungSettings",
    "Rungs",
    "epsilon_net_order",
    "mo_order",
    "nondominated_fronts",
]

MOASHA_FORMAT = "nsr-tune/moasha/1"


def _as_points(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    x = np.asarray(points, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"points must be a (n, objectives) array, got shape {x.shape}")
    return x


def nondominated_fronts(points: Sequence[Sequence[float]] | np.ndarray) -> list[list[int]]:
    """Indices of ``points`` (n, d), higher is better in every column, by front: the first list
    is the Pareto front, the second the front of what is left, and so on; each in index order.

    A point dominates another when it is at least as good in every objective and better in one;
    equal points are in the same front.
    """
    x = _as_points(points)
    ranks = non_dominated_ranks(x, directions=[Direction.MAXIMIZE] * x.shape[1])  # (n,), 0 = the front
    return [np.flatnonzero(ranks == k).tolist() for k in range(int(ranks.max(initial=-1)) + 1)]


def epsilon_net_order(points: Sequence[Sequence[float]] | np.ndarray) -> list[int]:
    """An order of ``points`` (n, d) that spreads them out: first the best point in the first
    objective, then each time the point farthest from those already chosen (the greedy
    epsilon-net of Clarkson 2005). Distances are Euclidean after scaling every objective by its
    range over the points, so that an accuracy and a loss count alike; a constant objective
    counts for nothing. Ties go to the lower index."""
    x = _as_points(points)
    n = len(x)
    if n == 0:
        return []
    span = x.max(axis=0) - x.min(axis=0)
    z = (x - x.min(axis=0)) / np.where(span > 0, span, 1.0)  # (n, d) in [0, 1]
    first = int(np.argmax(x[:, 0]))  # argmax takes the first of equal values
    order = [first]
    nearest = np.linalg.norm(z - z[first], axis=1)  # distance to the chosen set
    nearest[first] = -1.0
    for _ in range(n - 1):
        pick = int(np.argmax(nearest))
        order.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(z - z[pick], axis=1))
        nearest[order] = -1.0
    return order


def mo_order(points: Sequence[Sequence[float]] | np.ndarray) -> list[int]:
    """All indices of ``points``, best first: front by front, each front in epsilon-net order."""
    x = _as_points(points)
    out: list[int] = []
    for front in nondominated_fronts(x):
        out += [front[i] for i in epsilon_net_order(x[front])]
    return out


@dataclass(frozen=True)
class RungSettings:
    """`search.scheduler` of a space: rungs at grace_epochs * reduction_factor**k epochs, below
    max_epochs (the epochs of a fully trained trial)."""

    grace_epochs: int = 1
    reduction_factor: int = 3
    max_epochs: int = 10

    def __post_init__(self) -> None:
        for name in ("grace_epochs", "reduction_factor", "max_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"scheduler.{name}: must be an integer, got {value!r}")
        if self.grace_epochs < 1:
            raise ConfigError(f"scheduler.grace_epochs: must be >= 1, got {self.grace_epochs}")
        if self.reduction_factor < 2:
            raise ConfigError(f"scheduler.reduction_factor: must be >= 2, got {self.reduction_factor}")
        if self.max_epochs <= self.grace_epochs:
            raise ConfigError(
                f"scheduler.max_epochs: must be more than grace_epochs ({self.grace_epochs}), "
                f"got {self.max_epochs}: there would be no rung to stop a trial at"
            )

    @property
    def epochs(self) -> tuple[int, ...]:
        """The rung epochs, e.g. (1, 3, 9) for grace 1, factor 3, 10 epochs."""
        out, e = [], self.grace_epochs
        while e < self.max_epochs:
            out.append(e)
            e *= self.reduction_factor
        return tuple(out)


@dataclass(frozen=True)
class RungDecision:
    trial_id: str
    epoch: int
    place: int  # 0-based, among `recorded` trials at the rung (this one included)
    recorded: int
    stop: bool


@dataclass
class Rungs:
    """The record of every rung: which trial reached it with which scores, and who was stopped.

    ``modes`` says per objective whether higher ("max") or lower ("min") is better (a Direction
    each). The record is plain data (`to_dict` / `from_dict`), so a driver that restarts decides
    the same again.
    """

    settings: RungSettings
    modes: tuple[Direction, ...]
    recorded: dict[int, dict[str, tuple[float, ...]]] = field(default_factory=dict)  # epoch -> id -> scores
    stopped: dict[str, int] = field(default_factory=dict)  # trial id -> rung epoch

    def __post_init__(self) -> None:
        modes = tuple(self.modes)
        if not modes or any(m not in ("max", "min") for m in modes):
            raise ConfigError(f"scheduler modes: each must be max or min, got {list(modes)}")
        self.modes = tuple(Direction(m) for m in modes)

    def decide(self, trial_id: str, epoch: int, scores: Sequence[float]) -> RungDecision | None:
        """The decision for `trial_id` reaching `epoch` with `scores` (one per objective, in
        the order of `modes`); None when `epoch` is not a rung. A trial judged at this rung
        before (a restored trial reporting the epoch again) gets its first decision back."""
        if epoch not in self.settings.epochs:
            return None
        # A record unpickled from a study's saved state may hold its modes as the strings it was
        # written with; they are Directions from here on.
        self.modes = tuple(Direction(m) for m in self.modes)
        if len(scores) != len(self.modes):
            raise ValueError(f"{len(scores)} scores for {len(self.modes)} objectives")
        values = tuple(float(s) for s in scores)
        if any(not np.isfinite(v) for v in values):
            # A diverged model: the worst possible scores, so it is stopped unless it is alone.
            values = tuple(-np.inf * m.sign for m in self.modes)
        rung = self.recorded.setdefault(epoch, {})
        rung.setdefault(trial_id, values)
        # Judged against the trials that reached the rung before it (in arrival order), so the
        # decision stays the same when it is asked for again later.
        ids = list(rung)
        before = ids[: ids.index(trial_id) + 1]
        points = np.array([rung[i] for i in before]) * signs(self.modes)  # (n, d), higher is better
        points = np.nan_to_num(points, neginf=-1e300, posinf=1e300)
        n = len(before)
        place = mo_order(points).index(n - 1)
        stop = place * self.settings.reduction_factor > n
        if stop:
            self.stopped.setdefault(trial_id, epoch)
        return RungDecision(trial_id=trial_id, epoch=epoch, place=place, recorded=n, stop=stop)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MOASHA_FORMAT,
            "settings": {
                "grace_epochs": self.settings.grace_epochs,
                "reduction_factor": self.settings.reduction_factor,
                "max_epochs": self.settings.max_epochs,
            },
            "modes": [Direction(m).value for m in self.modes],
            "recorded": {str(e): {t: list(v) for t, v in r.items()} for e, r in self.recorded.items()},
            "stopped": dict(self.stopped),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rungs:
        if data.get("format") != MOASHA_FORMAT:
            raise ConfigError(f"not an MO-ASHA rung record (format {data.get('format')!r})")
        return cls(
            settings=RungSettings(**data["settings"]),
            modes=tuple(data["modes"]),
            recorded={
                int(e): {t: tuple(float(v) for v in s) for t, s in r.items()}
                for e, r in data["recorded"].items()
            },
            stopped={t: int(e) for t, e in data["stopped"].items()},
        )
