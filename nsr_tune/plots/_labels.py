"""Where the front's labels go in a PNG: the nearest free spot to each point, greedily."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["place_labels"]


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


def place_labels(
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
