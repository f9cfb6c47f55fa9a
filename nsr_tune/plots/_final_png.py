"""The validation front and the final front of a two-objective study in one PNG.

Each finalist appears twice: where the search's cheap attack on validation beats put it (filled)
and where the strong protocol on test beats puts it (hollow, with its interval as error bars),
joined by a line, so a reader sees how far each trial moved and which fell off the front.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nsr_tune.metrics import without_part
from nsr_tune.plots import _common
from nsr_tune.plots._labels import place_labels
from nsr_tune.results.pareto import ParetoResult

FINAL_COLOUR = "#1f4e9c"


def _draw_validation(ax: Any, v_pts: np.ndarray, f_pts: np.ndarray, on_front: np.ndarray) -> None:
    """Each finalist's validation point, tied to its final point by a dotted line."""
    for (vx, vy), (fx, fy) in zip(v_pts, f_pts, strict=True):
        ax.plot([vx, fx], [vy, fy], color="0.55", lw=0.7, ls=":", zorder=2)
    for mask, size, alpha, label in (
        (on_front, 30, 1.0, "validation front (search attack)"),
        (~on_front, 22, 0.45, "further finalists (validation)"),
    ):
        ax.scatter(
            v_pts[mask, 0],
            v_pts[mask, 1],
            s=size,
            color=_common.FRONT_COLOUR,
            alpha=alpha,
            label=label,
            zorder=4,
        )


def _draw_intervals(ax: Any, f_pts: np.ndarray, ids: Sequence[str], intervals: Mapping[str, Any]) -> None:
    """Each final point's (low, high) on both objectives, as error bars."""
    lows = np.array([[lo for lo, _ in intervals[rid]] for rid in ids], dtype=float).reshape(-1, 2)
    highs = np.array([[hi for _, hi in intervals[rid]] for rid in ids], dtype=float).reshape(-1, 2)
    below, above = np.nan_to_num(f_pts - lows), np.nan_to_num(highs - f_pts)
    ax.errorbar(
        f_pts[:, 0],
        f_pts[:, 1],
        xerr=np.abs(np.stack([below[:, 0], above[:, 0]])),
        yerr=np.abs(np.stack([below[:, 1], above[:, 1]])),
        fmt="none",
        ecolor=FINAL_COLOUR,
        elinewidth=0.8,
        alpha=0.6,
        capsize=2,
        zorder=3,
    )


def _draw_final(ax: Any, final: ParetoResult, f_pts: np.ndarray, on_front: np.ndarray) -> None:
    """The final points, hollow: the final front's in blue along its staircase, the rest in grey."""
    _, _, stairs = _common.front_geometry(final)
    if len(stairs):
        ax.plot(stairs[:, 0], stairs[:, 1], color=FINAL_COLOUR, lw=1.1, alpha=0.8, zorder=3)
    for mask, size, colour, width, label in (
        (on_front, 40, FINAL_COLOUR, 1.4, "final front (strong protocol, test)"),
        (~on_front, 30, "0.5", 1.0, "off the final front (test)"),
    ):
        ax.scatter(
            f_pts[mask, 0],
            f_pts[mask, 1],
            s=size,
            facecolors="white",
            edgecolors=colour,
            linewidths=width,
            label=label,
            zorder=5,
        )


def final_front_png(
    validation: ParetoResult,
    final: ParetoResult,
    path: str | os.PathLike[str],
    *,
    intervals: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    labels: Mapping[str, str] | None = None,
    fell_off: Collection[str] = (),
    flagged: Collection[str] = (),
    title: str | None = None,
) -> Path:
    """Both fronts of the finalists (the ids of `final`, which `validation` ranks too).

    ``intervals[id]`` gives a finalist's (low, high) on each final objective, drawn as error bars;
    ``fell_off`` ids (on the validation front, not on the final one) are labelled as such, and
    ``flagged`` ids (a masking check fired in the final evaluation) get a ring.
    """
    out = _common.check_path(path)
    _common.check_result(validation)
    _common.check_result(final)
    label_map, gone = dict(labels or {}), set(fell_off)
    v_index = {rid: i for i, rid in enumerate(validation.ids)}
    ids = [rid for rid in final.ids if rid in v_index]
    v_pts = np.array([validation.values[v_index[rid]] for rid in ids], dtype=float).reshape(-1, 2)
    f_pts = np.array(final.values, dtype=float).reshape(-1, 2)[[final.ids.index(rid) for rid in ids]]
    on_final = np.array([final.ranks[final.ids.index(rid)] == 0 for rid in ids], dtype=bool)

    fig = _common.new_figure((7.6, 5.8))
    ax = fig.add_subplot()
    _draw_validation(
        ax, v_pts, f_pts, np.array([validation.ranks[v_index[rid]] == 0 for rid in ids], dtype=bool)
    )
    if intervals:
        _draw_intervals(ax, f_pts, ids, intervals)
    _draw_final(ax, final, f_pts, on_final)
    rings = [k for k, rid in enumerate(ids) if rid in set(flagged)]
    if rings:
        _common.draw_rings(ax, f_pts[rings])
    shown = np.vstack([v_pts, f_pts])
    # The same measure on both fronts (validation beats, then test beats): name it without its part.
    _common.style_axes(
        ax, shown[np.isfinite(shown).all(axis=1)], [without_part(n) for n in final.names], final.directions
    )
    fig.suptitle(title or "Finalists: validation front and final front", fontsize=12)
    subtitle = f"{len(ids)} finalists, {int(on_final.sum())} on the final front"
    if gone & set(ids):
        subtitle += "; fell off: " + ", ".join(label_map.get(rid, rid) for rid in ids if rid in gone)
    ax.set_title(subtitle, fontsize=8, color="0.35")
    ax.legend(loc="best", fontsize=7.5, frameon=False)
    fig.tight_layout()
    items = [
        (label_map.get(rid, rid) + (" (fell off)" if rid in gone else ""), f_pts[k])
        for k, rid in enumerate(ids)
        if all(math.isfinite(v) for v in f_pts[k])
    ]
    place_labels(ax, fig, items, _common.better_signs(final.directions), v_pts)
    return _common.save_png(fig, out)
