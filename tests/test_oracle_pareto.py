"""Oracle check of `nsr_tune.results.pareto` against pymoo, a maintained multi-objective library.

`non_dominated_ranks`, `pareto_mask`, `dominance` and `hypervolume` are hand-written; pymoo's
`NonDominatedSorting` (moocore's `pareto_rank`, and pymoo's own fast non-dominated sort over its
`Dominator`) and its `HV` indicator (moocore's exact hypervolume) compute the same things
independently. Random point sets with 2 and 3 objectives, of several sizes and seeds, are compared in
both directions (maximised, minimised, mixed):

* ``continuous``: uniform in the unit cube, ties have probability zero;
* ``grid``: a 5-level grid in each coordinate, so many points repeat exactly and many share one
  coordinate (the cases where "at least as good everywhere, better somewhere" is easy to get wrong);
* ``layered``: a few nested simplex shells, so fronts are large and there are several of them.

Ranks, fronts and the dominance matrix must agree exactly; hypervolumes to 1e-12 (relative, or
absolute for volumes under 1; exact sums of products of coordinates, so only rounding separates
them). pymoo minimises every objective, so maximised objectives are negated before they are given
to it, and the reference point with them.

NaN rule (documented in `nsr_tune.results.pareto`): a row with any NaN is a trial without a value; it
gets rank -1, takes no part in dominance in either direction and adds nothing to the hypervolume. The
equivalent input for pymoo is the same point set *without* those rows. Replacing NaN by +inf ("worst",
pymoo minimising) would not be equivalent: a row that is worst in one objective but best in another is
still non-dominated, and it would also dominate rows that tie it elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from pymoo.indicators.hv import HV
from pymoo.util.dominator import Dominator
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from nsr_tune.metrics import Direction
from nsr_tune.results.pareto import (
    MISSING_RANK,
    default_reference,
    dominance,
    hypervolume,
    non_dominated_ranks,
    pareto_mask,
)

# Directions per number of objectives: all maximised (the study's case), all minimised, mixed.
# One set is given as Direction members, the others as Optuna's words; both spellings are accepted.
DIRECTIONS: dict[int, list[tuple[Direction | str, ...]]] = {
    2: [
        ("maximize", "maximize"),
        ("minimize", "minimize"),
        (Direction.MAXIMIZE, Direction.MINIMIZE),
    ],
    3: [
        ("maximize", "maximize", "maximize"),
        (Direction.MINIMIZE, Direction.MINIMIZE, Direction.MINIMIZE),
        ("minimize", "maximize", "minimize"),
    ],
}
KINDS = ("continuous", "grid", "layered")
SIZES = (1, 2, 9, 60, 250)
SEEDS = (0, 1, 2)


def _word(d: Direction | str) -> str:
    return d.word[:3] if isinstance(d, Direction) else d[:3]


# Hypervolume agreement: 1e-12 relative, or 1e-12 absolute when the volume is under 1.
HV_TOL = 1e-12

CASES = [
    pytest.param(m, dirs, kind, n, seed, id=f"m{m}-{'-'.join(_word(d) for d in dirs)}-{kind}-n{n}-s{seed}")
    for m, all_dirs in DIRECTIONS.items()
    for dirs in all_dirs
    for kind in KINDS
    for n in SIZES
    for seed in SEEDS
    if not (n <= 2 and seed > 0)  # one or two points: one seed is plenty
]


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def points(kind: str, n: int, m: int, seed: int) -> np.ndarray:
    """``n`` points with ``m`` objectives in [0, 1] (see the module docstring for the kinds)."""
    rng = np.random.default_rng([seed, n, m, KINDS.index(kind)])
    if kind == "continuous":
        return rng.random((n, m))
    if kind == "grid":
        return rng.integers(0, 5, size=(n, m)) / 4.0
    if kind == "layered":
        shell = rng.choice([0.4, 0.6, 0.8, 1.0], size=n)
        return rng.dirichlet(np.ones(m), size=n) * shell[:, None]
    raise ValueError(kind)


def signs_of(directions: Sequence[Direction | str]) -> np.ndarray:
    """+1 for a maximised objective, -1 for a minimised one (written out here, not imported)."""
    return np.array([1.0 if d in (Direction.MAXIMIZE, "maximize") else -1.0 for d in directions])


def for_pymoo(values: np.ndarray, directions: Sequence[Direction | str]) -> np.ndarray:
    """The same objectives for pymoo, which minimises: maximised ones negated."""
    return values * -signs_of(directions)


def pymoo_ranks(f: np.ndarray) -> np.ndarray:
    """pymoo's front index of every row of ``f`` (minimised), by moocore's pareto_rank."""
    _, rank = NonDominatedSorting().do(f, return_rank=True)
    return np.asarray(rank, dtype=np.int64)


def pymoo_ranks_dominator(f: np.ndarray) -> np.ndarray:
    """pymoo's front index of every row, by its own fast non-dominated sort over `Dominator`."""
    _, rank = NonDominatedSorting(dominator=Dominator()).do(f, return_rank=True)
    return np.asarray(rank, dtype=np.int64)


def pymoo_dominance(f: np.ndarray) -> np.ndarray:
    """[i, k]: row i dominates row k, per pymoo's `Dominator` (1 = dominates, for minimisation)."""
    return Dominator.calc_domination_matrix(f) == 1


def pymoo_hv(f: np.ndarray, reference: np.ndarray) -> float:
    """pymoo's (moocore's) hypervolume of minimised ``f`` against ``reference`` (minimised too)."""
    if len(f) == 0:
        return 0.0
    return float(HV(ref_point=reference)(f))


def with_nans(values: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``values`` with NaN in about a quarter of the rows (in one coordinate or in all),
    and the mask of the rows left whole."""
    rng = np.random.default_rng([seed, 99])
    out = values.copy()
    n, m = out.shape
    hit = rng.random(n) < 0.25
    for i in np.flatnonzero(hit):
        if rng.random() < 0.3:
            out[i, :] = np.nan
        else:
            out[i, rng.integers(m)] = np.nan
    return out, ~hit


# --------------------------------------------------------------------------------------------------
# ranks, front and dominance
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("m", "dirs", "kind", "n", "seed"), CASES)
def test_ranks_front_and_dominance_match_pymoo(
    m: int, dirs: tuple[Direction | str, ...], kind: str, n: int, seed: int
) -> None:
    values = points(kind, n, m, seed)
    f = for_pymoo(values, dirs)
    expected = pymoo_ranks(f)

    ranks = non_dominated_ranks(values, directions=dirs)
    np.testing.assert_array_equal(ranks, expected)
    np.testing.assert_array_equal(pareto_mask(values, directions=dirs), expected == 0)
    np.testing.assert_array_equal(
        pareto_mask(values, directions=dirs),
        np.isin(np.arange(n), NonDominatedSorting().do(f, only_non_dominated_front=True)),
    )
    if n <= 60:  # pymoo's Python-loop sort: a second, independent oracle, kept to small sets
        np.testing.assert_array_equal(ranks, pymoo_ranks_dominator(f))
    np.testing.assert_array_equal(dominance(values, directions=dirs), pymoo_dominance(f))


def test_grid_cases_hold_ties() -> None:
    # The tie cases must really hold exact duplicates and shared coordinates, and pymoo must put
    # some duplicates on one rank below the front, or the comparisons above prove less than claimed.
    values = points("grid", 250, 2, 0)
    assert len(np.unique(values, axis=0)) < len(values)
    ranks = pymoo_ranks(for_pymoo(values, ("maximize", "maximize")))
    assert ranks.max() >= 3
    _, first, counts = np.unique(values, axis=0, return_index=True, return_counts=True)
    assert (ranks[first[counts > 1]] > 0).any() and (ranks[first[counts > 1]] == 0).any()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("m", [2, 3])
def test_nan_rows_match_pymoo_without_them(m: int, kind: str, seed: int) -> None:
    dirs = DIRECTIONS[m][2]  # mixed directions
    values, whole = with_nans(points(kind, 120, m, seed), seed)
    assert (~whole).any() and whole.any()
    f = for_pymoo(values[whole], dirs)  # pymoo is given the rows without NaN, nothing in their place

    ranks = non_dominated_ranks(values, directions=dirs)
    assert (ranks[~whole] == MISSING_RANK).all()
    np.testing.assert_array_equal(ranks[whole], pymoo_ranks(f))
    mask = pareto_mask(values, directions=dirs)
    assert not mask[~whole].any()
    np.testing.assert_array_equal(mask[whole], pymoo_ranks(f) == 0)

    dom = dominance(values, directions=dirs)
    assert not dom[~whole].any() and not dom[:, ~whole].any()
    np.testing.assert_array_equal(dom[np.ix_(whole, whole)], pymoo_dominance(f))

    ref = np.array(default_reference(dirs))
    assert hypervolume(values, directions=dirs, reference=ref) == pytest.approx(
        pymoo_hv(f, ref * -signs_of(dirs)), rel=HV_TOL, abs=HV_TOL
    )


# --------------------------------------------------------------------------------------------------
# hypervolume
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("m", "dirs", "kind", "n", "seed"), CASES)
def test_hypervolume_matches_pymoo(
    m: int, dirs: tuple[Direction | str, ...], kind: str, n: int, seed: int
) -> None:
    values = points(kind, n, m, seed)
    flip = -signs_of(dirs)
    f = values * flip

    # The study's reference: the worst value of each objective in [0, 1].
    ref = np.array(default_reference(dirs))
    np.testing.assert_array_equal(ref, np.where(flip < 0, 0.0, 1.0))
    ours = hypervolume(values, directions=dirs, reference=ref)
    assert ours == pytest.approx(pymoo_hv(f, ref * flip), rel=HV_TOL, abs=HV_TOL)
    if n:
        assert ours > 0.0 or kind == "grid"  # a grid point may sit on the reference

    # A reference inside the cloud (the median of each objective): points that do not beat it
    # strictly in every objective must add nothing, as in moocore.
    inner = np.median(values, axis=0)
    assert hypervolume(values, directions=dirs, reference=inner) == pytest.approx(
        pymoo_hv(f, inner * flip), rel=HV_TOL, abs=HV_TOL
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_in_other_units_matches_pymoo(m: int, kind: str, seed: int) -> None:
    # Objectives on different scales (an accuracy, a loss in the tens, a time in seconds) and a
    # reference beyond the points: the volume is in the objectives' own units, well above 1 here,
    # so the 1e-12 bound is relative.
    dirs = DIRECTIONS[m][2]
    scale = np.array([1.0, 40.0, 5.0])[:m]
    shift = np.array([0.0, -15.0, 2.0])[:m]
    values = points(kind, 150, m, seed) * scale + shift
    flip = -signs_of(dirs)
    ref = np.where(flip < 0, shift - 0.1 * scale, shift + 1.1 * scale)  # worse than every point
    expected = pymoo_hv(values * flip, ref * flip)
    ours = hypervolume(values, directions=dirs, reference=ref)
    assert expected > 1.0
    assert ours == pytest.approx(expected, rel=HV_TOL, abs=HV_TOL)
