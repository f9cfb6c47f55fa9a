"""MO-ASHA's decision rule (nsr_tune.study.moasha): exact answers on hand-made points, and the
non-dominated sort against a brute-force one."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from nsr_tune.errors import ConfigError
from nsr_tune.study.moasha import (
    Rungs,
    RungSettings,
    epsilon_net_order,
    mo_order,
    nondominated_fronts,
)


def brute_force_fronts(points: np.ndarray) -> list[list[int]]:
    """Front k: the points left after fronts 0..k-1 that no other point left dominates."""
    left = list(range(len(points)))
    fronts = []
    while left:
        front = [
            i
            for i in left
            if not any(
                all(points[j][d] >= points[i][d] for d in range(points.shape[1]))
                and any(points[j][d] > points[i][d] for d in range(points.shape[1]))
                for j in left
            )
        ]
        fronts.append(front)
        left = [i for i in left if i not in front]
    return fronts


@pytest.mark.parametrize("seed", range(20))
def test_fronts_equal_a_brute_force_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(1, 30)), int(rng.integers(1, 4))
    # Rounded to a coarse grid, so that ties and equal points occur.
    points = np.round(rng.random((n, d)) * 5) / 5
    assert nondominated_fronts(points) == brute_force_fronts(points)


def test_fronts_on_hand_made_points() -> None:
    points = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.4, 0.4), (0.0, 0.0), (0.5, 0.5)]
    assert nondominated_fronts(points) == [[0, 1, 2, 5], [3], [4]]


def test_epsilon_net_order_spreads_the_points() -> None:
    # The best first objective, then the far end of the front, then the middle, then the
    # point nearest to one already chosen.
    points = [(0.0, 1.0), (1.0, 0.0), (0.5, 0.5), (0.9, 0.1)]
    assert epsilon_net_order(points) == [1, 0, 2, 3]
    # Objectives are scaled by their range: the second spans 100x the first, yet counts alike.
    scaled = [(0.0, 100.0), (1.0, 0.0), (0.5, 50.0), (0.9, 10.0)]
    assert epsilon_net_order(scaled) == [1, 0, 2, 3]
    assert epsilon_net_order([(0.3, 0.3)]) == [0]
    assert epsilon_net_order(np.zeros((0, 2))) == []


def test_mo_order_is_front_by_front() -> None:
    points = [(0.9, 0.5), (0.5, 0.2), (0.95, 0.1), (0.2, 0.9)]
    # Front {0, 2, 3}: 2 has the best first objective, 3 is farthest from it, then 0; 1 last.
    assert mo_order(points) == [2, 3, 0, 1]
    # Every permutation of the indices is an order; the sort is a total one.
    assert sorted(mo_order(points)) == [0, 1, 2, 3]


def test_rung_epochs() -> None:
    assert RungSettings(grace_epochs=1, reduction_factor=3, max_epochs=10).epochs == (1, 3, 9)
    assert RungSettings(grace_epochs=2, reduction_factor=2, max_epochs=16).epochs == (2, 4, 8)
    assert RungSettings(grace_epochs=1, reduction_factor=3, max_epochs=9).epochs == (1, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grace_epochs": 0}, "scheduler.grace_epochs: must be >= 1, got 0"),
        ({"reduction_factor": 1}, "scheduler.reduction_factor: must be >= 2, got 1"),
        ({"grace_epochs": 4, "max_epochs": 4}, "scheduler.max_epochs: must be more than grace_epochs"),
        ({"max_epochs": 2.5}, "scheduler.max_epochs: must be an integer, got 2.5"),
    ],
)
def test_rung_settings_are_checked(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RungSettings(**kwargs)


def test_decisions_on_hand_made_scores() -> None:
    rungs = Rungs(
        settings=RungSettings(grace_epochs=1, reduction_factor=3, max_epochs=10), modes=("max", "max")
    )
    assert rungs.decide("a", 2, (0.1, 0.1)) is None  # not a rung
    seq = [
        ("t0", (0.9, 0.5)),
        ("t1", (0.5, 0.2)),
        ("t2", (0.95, 0.1)),
        ("t3", (0.2, 0.9)),
        ("t4", (0.3, 0.3)),
    ]
    got = [rungs.decide(t, 1, s) for t, s in seq]
    # place (0-based) among the trials recorded so far; stop when place * 3 > recorded.
    assert [(d.place, d.recorded, d.stop) for d in got] == [
        (0, 1, False),  # the first at a rung goes on
        (1, 2, True),  # dominated by t0
        (0, 3, False),  # best first objective
        (1, 4, False),  # the far end of the front: 1 * 3 <= 4
        (4, 5, True),  # dominated by t0, and by t1 is not: the second front's last
    ]
    assert rungs.stopped == {"t1": 1, "t4": 1}
    # Asked again (a restored trial reporting the same epoch), the answer is the first one.
    again = rungs.decide("t3", 1, (0.0, 0.0))
    assert (again.place, again.recorded, again.stop) == (1, 4, False)


def test_min_modes_and_non_finite_scores() -> None:
    rungs = Rungs(settings=RungSettings(max_epochs=4), modes=("max", "min"))
    assert not rungs.decide("a", 1, (0.8, 0.3)).stop
    assert rungs.decide("b", 1, (0.7, 0.4)).stop  # worse on both: lower accuracy, higher loss
    assert not rungs.decide("c", 1, (0.9, 0.35)).stop  # better accuracy: on the front, first
    assert rungs.decide("d", 1, (float("nan"), 0.1)).stop  # a diverged model ranks last


def test_rung_record_survives_a_round_trip() -> None:
    rungs = Rungs(
        settings=RungSettings(grace_epochs=1, reduction_factor=2, max_epochs=8), modes=("max", "max")
    )
    for i, s in enumerate(itertools.product((0.2, 0.6), (0.1, 0.9))):
        rungs.decide(f"t{i}", 1, s)
    text = json.dumps(rungs.to_dict())
    back = Rungs.from_dict(json.loads(text))
    assert back.to_dict() == rungs.to_dict()
    # A driver restarted with the record decides the next trial as the old one would have.
    a, b = rungs.decide("new", 1, (0.5, 0.5)), back.decide("new", 1, (0.5, 0.5))
    assert (a.place, a.recorded, a.stop) == (b.place, b.recorded, b.stop)
    with pytest.raises(ConfigError, match="not an MO-ASHA rung record"):
        Rungs.from_dict({"format": "other"})
