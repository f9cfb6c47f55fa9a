"""Pareto analysis of a multi-objective study: non-dominated ranks, the front and its hypervolume.

The one place a front is decided: a study's validation front, its finalists' final front and
MO-ASHA's rungs all rank points with `non_dominated_ranks` (or read `dominance`). Pure numpy,
no I/O. The study has two objectives (clean accuracy and accuracy under attack, both
maximised), but everything here works for any number of objectives except the hypervolume, which is
exact for one, two or three.

Conventions
-----------
* ``directions`` holds one `nsr_tune.metrics.Direction` per objective, or the word ``"maximize"``
  or ``"minimize"`` (no other spelling, so a typo cannot silently flip an objective).
* Point ``a`` dominates ``b`` when ``a`` is at least as good in every objective and strictly better in
  at least one. Equal points therefore do not dominate each other and share a rank.
* A row with any NaN is a trial that produced no value (failed, pruned, still running). It gets rank
  ``-1``, is on no front and adds nothing to the hypervolume. Infinite values are rejected: they are
  almost always a bug upstream, and one of them would make the hypervolume infinite.
* The hypervolume is measured in the objectives' own units against a reference point that every
  counted point must beat strictly in every objective. For accuracy-like objectives in [0, 1] that are
  maximised, the study uses 0 for each (the worst possible accuracy), so the hypervolume of a 2-D front
  is the area of the unit square it dominates; see :func:`default_reference`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from nsr_tune.errors import ConfigError
from nsr_tune.metrics import Direction

__all__ = [
    "MISSING_RANK",
    "ParetoResult",
    "default_reference",
    "dominance",
    "hypervolume",
    "non_dominated_ranks",
    "pareto_analysis",
    "pareto_mask",
    "signs",
]

log = logging.getLogger(__name__)

# The words a direction may be given as besides a Direction (as Optuna writes them).
_WORDS = {d.word: d for d in Direction}

# Rank of a row that has a NaN in it (no value, so on no front).
MISSING_RANK = -1


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------


def _check_values(values: ArrayLike, *, name: str = "values") -> np.ndarray:
    try:
        arr = np.array(values, dtype=np.float64)  # a copy: callers' arrays are never modified
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{name}: must be a 2-D array of numbers (n points × m objectives): {exc}"
        ) from None
    if arr.ndim != 2:
        raise ConfigError(f"{name}: must be 2-D (n points × m objectives); got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ConfigError(f"{name}: must have at least one objective column; got shape {arr.shape}")
    if np.isinf(arr).any():
        rows = np.flatnonzero(np.isinf(arr).any(axis=1))
        raise ConfigError(
            f"{name}: must be finite or NaN (NaN marks a trial without a value); "
            f"rows {rows[:5].tolist()} hold an infinity"
        )
    return arr


def _check_directions(directions: Sequence[Direction | str], m: int | None) -> tuple[Direction, ...]:
    # A bare string is a Sequence too: "maximize" would read as eight objectives.
    if isinstance(directions, str) or not isinstance(directions, Sequence):
        raise ConfigError(
            f"directions: must be a sequence of directions ({', '.join(_WORDS)}), one per objective; "
            f"got {directions!r}"
        )
    bad = [d for d in directions if not isinstance(d, Direction) and d not in _WORDS]
    if bad:
        raise ConfigError(f"directions: may only hold Direction members or {tuple(_WORDS)}; got {bad!r}")
    dirs = tuple(d if isinstance(d, Direction) else _WORDS[d] for d in directions)
    if m is not None and len(dirs) != m:
        raise ConfigError(f"directions: must have one entry per objective ({m}); got {len(dirs)}")
    if not dirs:
        raise ConfigError("directions: must name at least one objective")
    return dirs


def _check_reference(reference: Sequence[float], m: int) -> np.ndarray:
    if isinstance(reference, str):
        raise ConfigError(f"reference: must be a sequence of {m} numbers; got {reference!r}")
    try:
        ref = np.array(reference, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"reference: must be a sequence of {m} numbers: {exc}") from None
    if ref.ndim != 1 or ref.shape[0] != m:
        raise ConfigError(f"reference: must have one number per objective ({m}); got shape {ref.shape}")
    if not np.isfinite(ref).all():
        raise ConfigError(f"reference: must be finite; got {ref.tolist()}")
    return ref


def _check_strings(items: Sequence[str], *, name: str, length: int) -> tuple[str, ...]:
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise ConfigError(f"{name}: must be a sequence of strings; got {items!r}")
    out = tuple(items)
    if len(out) != length:
        raise ConfigError(f"{name}: must have {length} entries; got {len(out)}")
    bad = [x for x in out if not isinstance(x, str) or not x]
    if bad:
        raise ConfigError(f"{name}: must be non-empty strings; got {bad[:5]!r}")
    dupes = sorted(x for x, count in Counter(out).items() if count > 1)
    if dupes:
        raise ConfigError(f"{name}: must be unique; repeated: {dupes[:5]!r}")
    return out


def signs(directions: Sequence[Direction]) -> np.ndarray:
    """+1 for each maximised objective, -1 for each minimised one: multiplied in, every objective
    is maximised."""
    return np.array([d.sign for d in directions])


# --------------------------------------------------------------------------------------------------
# non-dominated sorting
# --------------------------------------------------------------------------------------------------


def _dominance_maximised(x: np.ndarray) -> np.ndarray:
    """(n, n) bool: [i, k] when point i dominates point k, every objective maximised."""
    n, m = x.shape
    no_worse = np.ones((n, n), dtype=bool)
    better = np.zeros((n, n), dtype=bool)
    for j in range(m):
        col = x[:, j]
        no_worse &= col[:, None] >= col[None, :]
        better |= col[:, None] > col[None, :]
    return no_worse & better


def dominance(values: ArrayLike, *, directions: Sequence[Direction | str]) -> np.ndarray:
    """(n, n) bool: entry [i, k] says row i dominates row k (at least as good in every objective,
    better in one). A row with NaN neither dominates nor is dominated."""
    x = _check_values(values)
    dirs = _check_directions(directions, x.shape[1])
    valid = ~np.isnan(x).any(axis=1)
    out = np.zeros((len(x), len(x)), dtype=bool)
    out[np.ix_(valid, valid)] = _dominance_maximised(x[valid] * signs(dirs))
    return out


def _ranks_maximised(x: np.ndarray) -> np.ndarray:
    """Fast non-dominated sort (Deb et al. 2002) of finite points, all objectives maximised.

    Deb's bookkeeping (who dominates whom, how many dominate each point) is kept as one boolean
    n × n matrix, so each front is peeled off with vectorised sums instead of Python loops. Peak
    memory is a few n² bytes: about 100 MB at n = 5000 (0.3 s).
    """
    n = x.shape[0]
    ranks = np.full(n, MISSING_RANK, dtype=np.int64)
    if n == 0:
        return ranks
    dominates = _dominance_maximised(x)  # dominates[i, k]: point i dominates point k
    n_dominating = dominates.sum(axis=0)
    front = np.flatnonzero(n_dominating == 0)
    rank = 0
    while front.size:
        ranks[front] = rank
        n_dominating -= dominates[front].sum(axis=0)
        # Points of this front are done; the sentinel keeps them out of the next front.
        n_dominating[front] = -1
        front = np.flatnonzero(n_dominating == 0)
        rank += 1
    return ranks


def non_dominated_ranks(values: ArrayLike, *, directions: Sequence[Direction | str]) -> np.ndarray:
    """Pareto rank of every row of ``values`` (n points × m objectives).

    Rank 0 is the non-dominated front, rank 1 the front that remains once rank 0 is removed, and so
    on. Equal points do not dominate each other, so they share a rank. Rows with any NaN get rank -1
    and take no part in any front (they neither dominate nor are dominated).
    """
    x = _check_values(values)
    dirs = _check_directions(directions, x.shape[1])
    ranks = np.full(x.shape[0], MISSING_RANK, dtype=np.int64)
    valid = ~np.isnan(x).any(axis=1)
    ranks[valid] = _ranks_maximised(x[valid] * signs(dirs))
    return ranks


def pareto_mask(values: ArrayLike, *, directions: Sequence[Direction | str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows (rank 0); rows with NaN are never on it."""
    return non_dominated_ranks(values, directions=directions) == 0


# --------------------------------------------------------------------------------------------------
# hypervolume
# --------------------------------------------------------------------------------------------------


def default_reference(directions: Sequence[Direction | str]) -> tuple[float, ...]:
    """The reference point for objectives in [0, 1]: 0.0 for each maximised one, 1.0 for each minimised one.

    It is the worst possible value of an accuracy (or error rate), so every trial that is better than
    useless counts. It is wrong for objectives outside [0, 1] (a loss, a time): pass a reference then.
    """
    dirs = _check_directions(directions, None)
    return tuple(0.0 if d is Direction.MAXIMIZE else 1.0 for d in dirs)


def _hv2(p: np.ndarray, r: np.ndarray) -> float:
    """Area dominated by 2-D points (minimised, all strictly better than ``r``): sort and sweep."""
    order = np.lexsort((p[:, 1], p[:, 0]))  # by x, then y
    x = p[order, 0]
    best_y = np.minimum.accumulate(p[order, 1])
    prev_y = np.concatenate(([r[1]], best_y[:-1]))
    # Each point adds the strip between the best y seen before it and its own; dominated points add 0.
    return float(np.sum((r[0] - x) * (prev_y - best_y)))


def _hv3(p: np.ndarray, r: np.ndarray) -> float:
    """Volume dominated by 3-D points (minimised, all strictly better than ``r``): slice along z.

    Between consecutive distinct z values the cross-section is the 2-D area dominated by every point
    at or below the lower one, so the volume is an exact sum of area × thickness. O(n² log n).
    """
    p = p[np.argsort(p[:, 2], kind="stable")]
    levels, first = np.unique(p[:, 2], return_index=True)
    tops = np.concatenate((levels[1:], [r[2]]))
    ends = np.concatenate((first[1:], [len(p)]))
    volume = 0.0
    for end, z, top in zip(ends, levels, tops, strict=True):
        volume += _hv2(p[:end, :2], r[:2]) * (top - z)
    return float(volume)


def hypervolume(
    values: ArrayLike, *, directions: Sequence[Direction | str], reference: Sequence[float]
) -> float:
    """Volume of objective space dominated by the points and bounded by ``reference``.

    Exact for m = 1, 2 (sort and sweep) and 3 (slicing); other m raise ConfigError. Points that are not
    strictly better than the reference in every objective contribute nothing, rows with NaN are
    ignored, and dominated points do not change the result. Units are the objectives' own: for two
    accuracies maximised against (0, 0) it is an area inside the unit square. :func:`default_reference`
    gives the study's reference for objectives in [0, 1].
    """
    x = _check_values(values)
    m = x.shape[1]
    dirs = _check_directions(directions, m)
    if m not in (1, 2, 3):
        raise ConfigError(f"values: the hypervolume is computed for 1, 2 or 3 objectives; got {m}")
    ref = _check_reference(reference, m)
    # The sweeps below minimise: every objective turned into one to minimise.
    flip = -signs(dirs)
    p = x[~np.isnan(x).any(axis=1)] * flip
    r = ref * flip
    p = p[(p < r).all(axis=1)]
    if p.shape[0] == 0:
        return 0.0
    if m == 1:
        return float(r[0] - p[:, 0].min())
    if m == 2:
        return _hv2(p, r)
    return _hv3(p, r)


# --------------------------------------------------------------------------------------------------
# the study's summary
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy fields with == is ambiguous
class ParetoResult:
    """Pareto analysis of one study, as plain data.

    ``values`` (n × m), ``ranks`` and ``mask`` are read-only arrays in the order of ``ids``.
    ``hypervolume`` is None when there are more than three objectives (no exact method here).
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]
    directions: tuple[Direction, ...]
    values: np.ndarray
    ranks: np.ndarray
    mask: np.ndarray
    hypervolume: float | None
    reference: tuple[float, ...]

    def _front_order(self) -> list[int]:
        flip = -signs(self.directions)
        idx = np.flatnonzero(self.mask).tolist()
        # Best first along the first objective, then the others, then id so ties are reproducible.
        return sorted(idx, key=lambda i: (*(self.values[i] * flip).tolist(), self.ids[i]))

    @property
    def front_ids(self) -> tuple[str, ...]:
        """Ids of the front, in the order of :meth:`front_rows`."""
        return tuple(self.ids[i] for i in self._front_order())

    def front_rows(self) -> list[dict[str, object]]:
        """The front as rows for a table or CSV: ``{"id": ..., <name>: value, ...}``.

        Sorted best first along the first objective (descending when it is maximised).
        """
        return [
            {"id": self.ids[i], **{n: float(v) for n, v in zip(self.names, self.values[i], strict=True)}}
            for i in self._front_order()
        ]


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def pareto_analysis(
    ids: Sequence[str],
    values: ArrayLike,
    *,
    names: Sequence[str],
    directions: Sequence[Direction | str],
    reference: Sequence[float] | None = None,
) -> ParetoResult:
    """Ranks, front and hypervolume of the trials ``ids`` with objective ``values`` (n × m).

    ``reference`` defaults to :func:`default_reference` (objectives in [0, 1]). A row with NaN is a
    trial without a value: rank -1, never on the front.
    """
    x = _check_values(values)
    n, m = x.shape
    id_t = _check_strings(ids, name="ids", length=n)
    name_t = _check_strings(names, name="names", length=m)
    if "id" in name_t:
        raise ConfigError("names: must not contain 'id': front_rows() uses that key for the trial id")
    dirs = _check_directions(directions, m)
    if reference is None:
        ref = np.array(default_reference(dirs))
        finite = x[~np.isnan(x).any(axis=1)]
        if finite.size and ((finite < 0.0) | (finite > 1.0)).any():
            # The default reference only makes sense for [0, 1]; beyond it the volume silently shrinks.
            log.warning(
                "objective values outside [0, 1] with the default reference %s; pass reference= for them",
                tuple(ref.tolist()),
            )
    else:
        ref = _check_reference(reference, m)

    ranks = non_dominated_ranks(x, directions=dirs)
    hv = hypervolume(x, directions=dirs, reference=ref) if m <= 3 else None
    log.debug("pareto analysis: %d trials, %d on the front, hypervolume %s", n, int((ranks == 0).sum()), hv)
    return ParetoResult(
        ids=id_t,
        names=name_t,
        directions=dirs,
        values=_read_only(x),
        ranks=_read_only(ranks),
        mask=_read_only(ranks == 0),
        hypervolume=hv,
        reference=tuple(float(v) for v in ref),
    )
