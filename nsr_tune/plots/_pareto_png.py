"""The Pareto front of a two-objective study as a PNG, its front points labelled where they fit."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nsr_tune.plots import _common
from nsr_tune.plots._labels import place_labels
from nsr_tune.results.pareto import ParetoResult


def _draw_trials(ax: Any, result: ParetoResult, front: np.ndarray, stairs: np.ndarray) -> None:
    """The dominated trials in grey; the front in colour, joined by its staircase."""
    dominated = result.ranks > 0
    ax.scatter(
        result.values[dominated, 0],
        result.values[dominated, 1],
        s=16,
        color=_common.DOMINATED_COLOUR,
        alpha=0.7,
        linewidths=0,
        label="dominated trials",
        zorder=2,
    )
    if len(front):
        ax.plot(stairs[:, 0], stairs[:, 1], color=_common.FRONT_COLOUR, lw=1.2, alpha=0.8, zorder=3)
        ax.scatter(
            front[:, 0],
            front[:, 1],
            s=34,
            color=_common.FRONT_COLOUR,
            edgecolors="white",
            linewidths=0.6,
            label="Pareto front (validation)",
            zorder=4,
        )


def _draw_tests(ax: Any, result: ParetoResult, tests: Mapping[str, tuple[float, float]]) -> None:
    """Each front point's held-out result, hollow, tied to its validation point."""
    index = {id_: i for i, id_ in enumerate(result.ids)}
    for id_, (tx, ty) in tests.items():
        vx, vy = result.values[index[id_]]
        ax.plot([vx, tx], [vy, ty], color=_common.TEST_COLOUR, lw=0.7, alpha=0.7, zorder=3)
    t = np.array(list(tests.values()))
    ax.scatter(
        t[:, 0],
        t[:, 1],
        s=34,
        facecolors="none",
        edgecolors=_common.TEST_COLOUR,
        linewidths=1.1,
        label=_common.TEST_LEGEND,
        zorder=5,
    )


def pareto_figure_png(
    result: ParetoResult,
    path: str | os.PathLike[str],
    *,
    labels: Mapping[str, str] | None = None,
    test_values: Mapping[str, Sequence[float]] | None = None,
    flagged: Collection[str] | None = None,
    title: str | None = None,
) -> Path:
    """Scatter of a two-objective study with its Pareto front, written as a PNG.

    Dominated trials are grey; the front is coloured, joined by a staircase along the edge of the
    region it dominates, and each front point is labelled with ``labels[id]`` (the id when absent).
    ``test_values[id]`` (two numbers) draws a front point's held-out result as a hollow marker tied to
    its validation point; entries for points off the front, or with NaN, are not drawn. Trials with
    NaN values are left out. Each id in ``flagged`` (trials a gradient-masking check flagged) gets a
    ring around its point, so a robust accuracy that may be an artefact stands out.
    """
    out = _common.check_path(path)
    _common.check_result(result)
    label_map = dict(labels or {})
    tests = _common.front_test_values(test_values, result)
    rings = _common.flagged_indices(flagged, result)

    fig = _common.new_figure((7.0, 5.6))
    ax = fig.add_subplot()
    values = result.values
    front_ids, front, stairs = _common.front_geometry(result)
    _draw_trials(ax, result, front, stairs)
    if tests:
        _draw_tests(ax, result, tests)
    if rings:
        _common.draw_rings(ax, values[rings])
    tested = np.array(list(tests.values())).reshape(-1, 2)
    _common.style_axes(ax, np.vstack([values[result.ranks >= 0], tested]), result.names, result.directions)
    fig.suptitle(title or "Pareto front", fontsize=12)
    ax.set_title(_common.summary(result), fontsize=8, color="0.35")
    if len(front) or tests or rings or (result.ranks > 0).any():
        ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()

    # Labels last: their overlap test needs the final axes geometry. A ring on a dominated point is
    # an obstacle to a label as much as a test point is.
    items = [(label_map.get(i, i), p) for i, p in zip(front_ids, front, strict=True)]
    others = np.vstack([tested, values[rings].reshape(-1, 2)])
    place_labels(ax, fig, items, _common.better_signs(result.directions), others)
    return _common.save_png(fig, out)
