"""The Pareto front of a two-objective study as a PNG, its front points labelled where they fit."""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nsr_tune.pareto import ParetoResult
from nsr_tune.plots import _common


def _limits(values: np.ndarray, direction: str) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    # More room on the better side, where the front and its labels are.
    pad_low, pad_high = (0.06, 0.2) if direction == "maximize" else (0.2, 0.06)
    return lo - pad_low * span, hi + pad_high * span


def _label_offsets(signs: tuple[int, int]) -> list[tuple[int, int]]:
    """Offsets in points to try for a label, nearest first, the better side (away from the cloud) first."""
    sx, sy = signs
    out = []
    # dx, dy > 0 point to the better side here; the signs turn them into screen directions below.
    for dx in (6, 0, -6, 24, -24, 48, -48):
        for dy in range(-66, 67, 6):
            if dx == 0 and abs(dy) < 6:
                continue  # would sit on the marker
            worse = (dx < 0) + (dy < 0)
            out.append((math.hypot(dx, dy) + 12 * worse, sx * dx, sy * dy))
    return [(dx, dy) for _, dx, dy in sorted(out)]


def _place_labels(
    ax: Any, fig: Any, items: list[tuple[str, np.ndarray]], signs: tuple[int, int], others: np.ndarray
) -> None:
    """Label front points at the nearest free offset.

    Free means inside the axes and clear of the legend, the front's markers, the ``others`` markers
    (the test points) and the labels placed so far. Each label is measured once and its candidate
    boxes are computed arithmetically, so trying a hundred spots costs nothing. Greedy, which is good
    enough for the tens of points a front has and needs no extra package. Far offsets get a leader
    line; when nothing is free the label goes to the preferred spot anyway, because a crowded label
    is better than a missing one.
    """
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    px_per_pt = fig.dpi / 72.0
    taken: list[Any] = []
    legend = ax.get_legend()
    if legend is not None:
        taken.append(legend.get_window_extent(renderer))
    centres = [ax.transData.transform((float(xy[0]), float(xy[1]))) for _, xy in items]
    marker = 4 * px_per_pt
    for x, y in [*centres, *ax.transData.transform(others.reshape(-1, 2))]:
        taken.append(Bbox.from_extents(x - marker, y - marker, x + marker, y + marker))
    offsets = _label_offsets(signs)
    style = {"fontsize": 7.5, "color": "0.15", "textcoords": "offset points"}
    # A faint white backing keeps a label readable where it has to sit over grey points or a line.
    backing = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.75}

    for (text, xy), (cx, cy) in zip(items, centres, strict=True):
        probe = ax.annotate(text, xy=(float(xy[0]), float(xy[1])), xytext=(0, 0), **style)
        size = probe.get_window_extent(renderer)
        probe.remove()
        w, h = size.width, size.height
        for dx, dy in offsets:
            ax_ = cx + dx * px_per_pt
            ay_ = cy + dy * px_per_pt
            x0 = ax_ if dx > 0 else ax_ - w if dx < 0 else ax_ - w / 2
            y0 = ay_ if dy > 0 else ay_ - h if dy < 0 else ay_ - h / 2
            box = Bbox.from_bounds(x0, y0, w, h)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(t) for t in taken):
                break
        else:
            dx, dy = offsets[0]
            box = Bbox.from_bounds(cx + dx * px_per_pt, cy + dy * px_per_pt, w, h)
        ax.annotate(
            text,
            xy=(float(xy[0]), float(xy[1])),
            xytext=(dx, dy),
            ha="left" if dx > 0 else "right" if dx < 0 else "center",
            va="bottom" if dy > 0 else "top" if dy < 0 else "center",
            arrowprops=(
                {"arrowstyle": "-", "lw": 0.6, "color": "0.45", "shrinkA": 1, "shrinkB": 3}
                if math.hypot(dx, dy) > 13
                else None
            ),
            bbox=backing,
            **style,
        )
        taken.append(box)


def _draw_rings(ax: Any, points: np.ndarray) -> None:
    """A hollow ring around each flagged point, above every other marker."""
    ax.scatter(
        points[:, 0],
        points[:, 1],
        s=150,
        facecolors="none",
        edgecolors=_common.FLAG_COLOUR,
        linewidths=1.8,
        label=_common.FLAG_LEGEND,
        zorder=6,
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
    dominated = result.ranks > 0
    front_ids, front, stairs = _common.front_geometry(result)
    index = {id_: i for i, id_ in enumerate(result.ids)}

    ax.scatter(
        values[dominated, 0],
        values[dominated, 1],
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
    if tests:
        for id_, (tx, ty) in tests.items():
            vx, vy = values[index[id_]]
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
    if rings:
        _draw_rings(ax, values[rings])

    shown = values[result.ranks >= 0]
    if tests:
        shown = np.vstack([shown, np.array(list(tests.values()))])
    if len(shown):
        ax.set_xlim(*_limits(shown[:, 0], result.directions[0]))
        ax.set_ylim(*_limits(shown[:, 1], result.directions[1]))
    ax.set_xlabel(f"{result.names[0]}  ({_common.better_word(result.directions[0])})")
    ax.set_ylabel(f"{result.names[1]}  ({_common.better_word(result.directions[1])})")
    ax.grid(True, color="0.92", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.suptitle(title or "Pareto front", fontsize=12)
    ax.set_title(_common.summary(result), fontsize=8, color="0.35")
    if len(front) or tests or rings or dominated.any():
        ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()

    # Labels last: their overlap test needs the final axes geometry.
    signs = (1 if result.directions[0] == "maximize" else -1, 1 if result.directions[1] == "maximize" else -1)
    items = [(label_map.get(i, i), p) for i, p in zip(front_ids, front, strict=True)]
    # A ring on a dominated point is an obstacle to a label as much as a test point is.
    others = np.vstack([np.array(list(tests.values())).reshape(-1, 2), values[rings].reshape(-1, 2)])
    _place_labels(ax, fig, items, signs, others)
    return _common.save_png(fig, out)
