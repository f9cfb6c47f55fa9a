"""Pareto ranks, front and hypervolume against hand-computed values and brute force."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest

from nsr_tune.errors import ConfigError
from nsr_tune.results.pareto import (
    ParetoResult,
    default_reference,
    hypervolume,
    non_dominated_ranks,
    pareto_analysis,
    pareto_mask,
)

MAX2 = ["maximize", "maximize"]
NAN = float("nan")

# Four fronts by construction (both objectives maximised):
#   rank 0: A B C D (a staircase), rank 1: E (under B) and F (under C),
#   rank 2: G (under E), rank 3: H (under G).
HAND = np.array(
    [
        [0.9, 0.1],  # A
        [0.7, 0.5],  # B
        [0.4, 0.8],  # C
        [0.1, 0.95],  # D
        [0.6, 0.4],  # E
        [0.3, 0.7],  # F
        [0.5, 0.3],  # G
        [0.2, 0.2],  # H
    ]
)
HAND_RANKS = [0, 0, 0, 0, 1, 1, 2, 3]


# --------------------------------------------------------------------------------------------------
# brute force
# --------------------------------------------------------------------------------------------------


def brute_mask(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """The definition, point by point: a row is on the front when no other row dominates it."""
    x = values * np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    valid = x[~np.isnan(x).any(axis=1)]
    out = np.zeros(len(x), dtype=bool)
    for i, point in enumerate(x):
        if not np.isnan(point).any():
            out[i] = not ((valid <= point).all(axis=1) & (valid < point).any(axis=1)).any()
    return out


def brute_ranks(values: np.ndarray, directions: list[str]) -> np.ndarray:
    ranks = np.full(len(values), -1)
    left = ~np.isnan(values).any(axis=1)
    rank = 0
    while left.any():
        idx = np.flatnonzero(left)
        front = idx[brute_mask(values[idx], directions)]
        ranks[front] = rank
        left[front] = False
        rank += 1
    return ranks


# --------------------------------------------------------------------------------------------------
# ranks
# --------------------------------------------------------------------------------------------------


def test_ranks_of_hand_made_fronts() -> None:
    assert non_dominated_ranks(HAND, directions=MAX2).tolist() == HAND_RANKS
    assert pareto_mask(HAND, directions=MAX2).tolist() == [r == 0 for r in HAND_RANKS]


def test_ranks_do_not_depend_on_the_sign_convention() -> None:
    flipped = HAND * np.array([1.0, -1.0])
    assert non_dominated_ranks(flipped, directions=["maximize", "minimize"]).tolist() == HAND_RANKS
    assert non_dominated_ranks(-HAND, directions=["minimize", "minimize"]).tolist() == HAND_RANKS


def test_ranks_with_mixed_directions() -> None:
    # x maximised, y minimised: (2, 1) beats (1, 1) on x and (2, 2) on y; (0, 3) is behind (1, 1).
    values = [[1, 1], [2, 2], [2, 1], [0, 3]]
    assert non_dominated_ranks(values, directions=["maximize", "minimize"]).tolist() == [1, 1, 0, 2]
    # Swapping the directions turns the picture around.
    assert non_dominated_ranks(values, directions=["minimize", "maximize"]).tolist() == [1, 1, 2, 0]


def test_equal_points_share_a_rank() -> None:
    values = [[1, 1], [1, 1], [0, 0], [0, 0], [1, 0]]
    assert non_dominated_ranks(values, directions=MAX2).tolist() == [0, 0, 2, 2, 1]


def test_nan_rows_get_rank_minus_one_and_dominate_nothing() -> None:
    # (2, nan) would dominate (0, 0) if its NaN were ignored; it must not.
    values = [[1, 1], [NAN, 0], [0, 0], [2, NAN], [NAN, NAN]]
    ranks = non_dominated_ranks(values, directions=MAX2)
    assert ranks.dtype.kind == "i"
    assert ranks.tolist() == [0, -1, 1, -1, -1]
    assert pareto_mask(values, directions=MAX2).tolist() == [True, False, False, False, False]


def test_single_objective_and_empty_input() -> None:
    assert non_dominated_ranks([[3], [1], [2], [3]], directions=["maximize"]).tolist() == [0, 2, 1, 0]
    assert non_dominated_ranks(np.empty((0, 2)), directions=MAX2).tolist() == []
    assert non_dominated_ranks([[NAN, NAN]], directions=MAX2).tolist() == [-1]


def test_input_is_not_modified() -> None:
    values = HAND.copy()
    non_dominated_ranks(values, directions=["minimize", "maximize"])
    np.testing.assert_array_equal(values, HAND)


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("integers", [False, True], ids=["continuous", "with-ties"])
def test_mask_and_ranks_agree_with_brute_force(m: int, integers: bool) -> None:
    rng = np.random.default_rng(20020 + m + 10 * integers)
    n = 200
    # Integer values from a small range make many ties and duplicates.
    values = rng.integers(0, 6, size=(n, m)).astype(float) if integers else rng.random((n, m))
    values[rng.choice(n, 7, replace=False), rng.integers(0, m)] = NAN
    for directions in itertools.product(["maximize", "minimize"], repeat=m):
        dirs = list(directions)
        np.testing.assert_array_equal(pareto_mask(values, directions=dirs), brute_mask(values, dirs))
        np.testing.assert_array_equal(non_dominated_ranks(values, directions=dirs), brute_ranks(values, dirs))


def test_a_few_thousand_points_are_quick() -> None:
    values = np.random.default_rng(1).random((3000, 2))
    ranks = non_dominated_ranks(values, directions=MAX2)
    assert ranks.min() == 0 and (ranks >= 0).all()


# --------------------------------------------------------------------------------------------------
# hypervolume
# --------------------------------------------------------------------------------------------------

THREE = [[0.5, 0.5], [0.8, 0.2], [0.2, 0.8]]


def test_hypervolume_of_three_points_by_hand() -> None:
    # Sweeping x from the best: 0.8 × 0.2 + 0.5 × (0.5 − 0.2) + 0.2 × (0.8 − 0.5) = 0.16 + 0.15 + 0.06.
    assert hypervolume(THREE, directions=MAX2, reference=[0, 0]) == pytest.approx(0.37, abs=1e-12)
    # Against a tighter reference (0.1, 0.1): 0.7 × 0.1 + 0.4 × 0.3 + 0.1 × 0.3 = 0.07 + 0.12 + 0.03.
    assert hypervolume(THREE, directions=MAX2, reference=[0.1, 0.1]) == pytest.approx(0.22, abs=1e-12)


def test_hypervolume_ignores_dominated_boundary_and_missing_points() -> None:
    base = hypervolume(THREE, directions=MAX2, reference=[0, 0])
    extra = [
        [0.4, 0.4],  # dominated by (0.5, 0.5)
        [0.5, 0.5],  # a duplicate
        [0.95, 0.0],  # on the reference in y: not strictly better, so it adds nothing
        [NAN, 0.99],  # missing
    ]
    assert hypervolume(THREE + extra, directions=MAX2, reference=[0, 0]) == pytest.approx(base, abs=1e-12)


def test_hypervolume_minimised() -> None:
    # Boxes [0.2, 1] × [0.5, 1] and [0.5, 1] × [0.2, 1]: 0.4 + 0.4 − 0.25 (their overlap).
    points = [[0.2, 0.5], [0.5, 0.2]]
    got = hypervolume(points, directions=["minimize", "minimize"], reference=[1, 1])
    assert got == pytest.approx(0.55, abs=1e-12)
    assert hypervolume(
        points, directions=["minimize", "minimize"], reference=default_reference(["minimize"] * 2)
    ) == (pytest.approx(0.55, abs=1e-12))


def test_hypervolume_mixed_directions() -> None:
    # Accuracy 0.8 maximised from 0, error 0.3 minimised from 1: a 0.8 × 0.7 box.
    got = hypervolume([[0.8, 0.3]], directions=["maximize", "minimize"], reference=[0, 1])
    assert got == pytest.approx(0.56, abs=1e-12)


def test_hypervolume_of_nothing_is_zero() -> None:
    assert hypervolume(np.empty((0, 2)), directions=MAX2, reference=[0, 0]) == 0.0
    assert hypervolume([[0.5, 0.5]], directions=MAX2, reference=[0.6, 0]) == 0.0
    assert hypervolume([[NAN, NAN]], directions=MAX2, reference=[0, 0]) == 0.0


def test_hypervolume_one_objective() -> None:
    assert hypervolume([[0.3], [0.7]], directions=["maximize"], reference=[0.1]) == pytest.approx(
        0.6, abs=1e-12
    )
    assert hypervolume([[0.3], [0.7]], directions=["minimize"], reference=[1]) == pytest.approx(
        0.7, abs=1e-12
    )


def test_hypervolume_three_objectives_unit_cubes() -> None:
    mx3 = ["maximize"] * 3
    # One box of size 1 × 1 × 1.
    assert hypervolume([[1, 1, 1]], directions=["minimize"] * 3, reference=[2, 2, 2]) == pytest.approx(
        1, abs=1e-12
    )
    # Three 1 × 1 × 2 boxes along each axis: 3 × 2 − 3 × 1 (pairwise overlaps) + 1 (triple) = the unit cube
    # plus three unit cubes sticking out of it.
    cubes = [[2, 1, 1], [1, 2, 1], [1, 1, 2]]
    assert hypervolume(cubes, directions=mx3, reference=[0, 0, 0]) == pytest.approx(4, abs=1e-12)
    # Dominated and duplicate points change nothing.
    more = [*cubes, [1, 1, 1], [2, 1, 1], [0.5, 0.5, 1.5]]
    assert hypervolume(more, directions=mx3, reference=[0, 0, 0]) == pytest.approx(4, abs=1e-12)
    # A point not beyond the reference in z adds nothing.
    assert hypervolume([*cubes, [5, 5, 0]], directions=mx3, reference=[0, 0, 0]) == pytest.approx(
        4, abs=1e-12
    )


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_matches_an_exact_lattice_count(m: int) -> None:
    """Integer points, reference 6 (minimised): the volume is the number of dominated unit cells."""
    rng = np.random.default_rng(7 + m)
    for _ in range(5):
        points = rng.integers(0, 6, size=(40, m))
        cells = np.array(list(itertools.product(range(6), repeat=m)))
        dominated = ((points[None, :, :] <= cells[:, None, :]).all(axis=2)).any(axis=1)
        got = hypervolume(points, directions=["minimize"] * m, reference=[6] * m)
        assert got == pytest.approx(float(dominated.sum()), abs=1e-9)
        # The same points maximised against the mirrored reference give the same volume.
        got_max = hypervolume(-points, directions=["maximize"] * m, reference=[-6] * m)
        assert got_max == pytest.approx(got, abs=1e-9)


def test_default_reference() -> None:
    assert default_reference(["maximize", "minimize", "maximize"]) == (0.0, 1.0, 0.0)


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: non_dominated_ranks([0.1, 0.2], directions=MAX2), "values"),
        (lambda: non_dominated_ranks([["a", "b"]], directions=MAX2), "values"),
        (lambda: non_dominated_ranks([[0.1, float("inf")]], directions=MAX2), "values"),
        (lambda: non_dominated_ranks(np.empty((3, 0)), directions=[]), "values"),
        (lambda: non_dominated_ranks(HAND, directions=["maximize", "max"]), "directions"),
        (lambda: non_dominated_ranks(HAND, directions="maximize"), "directions"),
        (lambda: non_dominated_ranks(HAND, directions=["maximize"]), "directions"),
        (lambda: pareto_mask(HAND, directions=["Maximize", "maximize"]), "directions"),
        (lambda: hypervolume(np.ones((2, 4)), directions=["maximize"] * 4, reference=[0] * 4), "values"),
        (lambda: hypervolume(HAND, directions=MAX2, reference=[0]), "reference"),
        (lambda: hypervolume(HAND, directions=MAX2, reference=[0, NAN]), "reference"),
        (lambda: hypervolume(HAND, directions=MAX2, reference="00"), "reference"),
        (lambda: default_reference(["up"]), "directions"),
        (lambda: pareto_analysis(["a", "b"], HAND, names=["x", "y"], directions=MAX2), "ids"),
        (lambda: pareto_analysis(list("aacdefgh"), HAND, names=["x", "y"], directions=MAX2), "ids"),
        (lambda: pareto_analysis(list("abcdefgh"), HAND, names=["x"], directions=MAX2), "names"),
        (lambda: pareto_analysis(list("abcdefgh"), HAND, names=["x", "x"], directions=MAX2), "names"),
        (lambda: pareto_analysis(list("abcdefgh"), HAND, names=["id", "y"], directions=MAX2), "names"),
        (lambda: pareto_analysis(list("abcdefgh"), HAND, names="xy", directions=MAX2), "names"),
        (
            lambda: pareto_analysis(list("abcdefgh"), HAND, names=["x", "y"], directions=MAX2, reference=[0]),
            "reference",
        ),
    ],
)
def test_validation_errors_name_the_argument(call, argument: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{argument}\b"):
        call()


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="directions"):
        pareto_mask(HAND, directions=["best", "best"])


# --------------------------------------------------------------------------------------------------
# pareto_analysis
# --------------------------------------------------------------------------------------------------


def test_pareto_analysis_bundles_everything() -> None:
    ids = [f"t{i}" for i in range(len(HAND))]
    values = np.vstack([HAND, [NAN, 0.5]])
    result = pareto_analysis([*ids, "failed"], values, names=["clean", "robust"], directions=MAX2)
    assert isinstance(result, ParetoResult)
    assert result.ids == (*ids, "failed")
    assert result.names == ("clean", "robust")
    assert result.directions == ("maximize", "maximize")
    assert result.ranks.tolist() == [*HAND_RANKS, -1]
    assert result.mask.tolist() == [r == 0 for r in [*HAND_RANKS, -1]]
    assert result.reference == (0.0, 0.0)
    # Front A B C D against (0, 0): 0.9 × 0.1 + 0.7 × 0.4 + 0.4 × 0.3 + 0.1 × 0.15.
    assert result.hypervolume == pytest.approx(0.09 + 0.28 + 0.12 + 0.015, abs=1e-12)
    np.testing.assert_array_equal(result.values, values)
    assert result.front_ids == ("t0", "t1", "t2", "t3")
    assert result.front_rows() == [
        {"id": "t0", "clean": 0.9, "robust": 0.1},
        {"id": "t1", "clean": 0.7, "robust": 0.5},
        {"id": "t2", "clean": 0.4, "robust": 0.8},
        {"id": "t3", "clean": 0.1, "robust": 0.95},
    ]
    assert all(type(v) is float for row in result.front_rows() for k, v in row.items() if k != "id")


def test_pareto_analysis_arrays_are_read_only_copies() -> None:
    values = HAND.copy()
    result = pareto_analysis(list("abcdefgh"), values, names=["x", "y"], directions=MAX2)
    values[0, 0] = 0.0
    assert result.values[0, 0] == 0.9
    for array in (result.values, result.ranks, result.mask):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0


def test_front_rows_follow_the_first_objective_direction() -> None:
    # First objective minimised (error), second maximised: rows go from the lowest error up.
    values = [[0.3, 0.9], [0.1, 0.5], [0.2, 0.7], [0.25, 0.6]]
    result = pareto_analysis(
        ["w", "x", "y", "z"], values, names=["error", "robust"], directions=["minimize", "maximize"]
    )
    assert result.mask.tolist() == [True, True, True, False]
    assert [row["id"] for row in result.front_rows()] == ["x", "y", "w"]
    # Equal points: both on the front, ordered by id.
    tied = pareto_analysis(["b", "a"], [[0.5, 0.5], [0.5, 0.5]], names=["x", "y"], directions=MAX2)
    assert tied.front_ids == ("a", "b")


def test_pareto_analysis_reference_and_many_objectives() -> None:
    result = pareto_analysis(["a"], [[0.5, 0.5]], names=["x", "y"], directions=MAX2, reference=[0.25, 0.0])
    assert result.reference == (0.25, 0.0)
    assert result.hypervolume == pytest.approx(0.125, abs=1e-12)
    four = pareto_analysis(
        ["a", "b"], [[1, 2, 3, 4], [0, 2, 3, 4]], names=list("pqrs"), directions=["maximize"] * 4
    )
    assert four.hypervolume is None
    assert four.mask.tolist() == [True, False]


def test_default_reference_warns_outside_unit_interval(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nsr_tune.results.pareto"):
        pareto_analysis(["a"], [[12.0, 0.5]], names=["loss", "acc"], directions=["minimize", "maximize"])
    assert "outside [0, 1]" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nsr_tune.results.pareto"):
        pareto_analysis(["a"], [[0.2, 0.5]], names=["err", "acc"], directions=["minimize", "maximize"])
    assert caplog.text == ""
