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

import numpy as np

from nsr_tune.metrics import without_part
from nsr_tune.pareto import ParetoResult
from nsr_tune.plots import _common
from nsr_tune.plots._pareto_png import _limits, _place_labels

FINAL_COLOUR = "#1f4e9c"


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
    label_map = dict(labels or {})
    v_index = {rid: i for i, rid in enumerate(validation.ids)}
    ids = [rid for rid in final.ids if rid in v_index]
    v_pts = np.array([validation.values[v_index[rid]] for rid in ids], dtype=float).reshape(-1, 2)
    f_pts = np.array(final.values, dtype=float).reshape(-1, 2)[[final.ids.index(rid) for rid in ids]]
    f_rank = {rid: int(final.ranks[final.ids.index(rid)]) for rid in ids}
    v_rank = {rid: int(validation.ranks[v_index[rid]]) for rid in ids}

    fig = _common.new_figure((7.6, 5.8))
    ax = fig.add_subplot()
    for (vx, vy), (fx, fy) in zip(v_pts, f_pts, strict=True):
        ax.plot([vx, fx], [vy, fy], color="0.55", lw=0.7, ls=":", zorder=2)
    on_val = np.array([v_rank[rid] == 0 for rid in ids], dtype=bool)
    ax.scatter(
        v_pts[on_val, 0],
        v_pts[on_val, 1],
        s=30,
        color=_common.FRONT_COLOUR,
        label="validation front (search attack)",
        zorder=4,
    )
    ax.scatter(
        v_pts[~on_val, 0],
        v_pts[~on_val, 1],
        s=22,
        color=_common.FRONT_COLOUR,
        alpha=0.45,
        label="further finalists (validation)",
        zorder=4,
    )
    if intervals:
        lows = np.array([[lo for lo, _ in intervals[rid]] for rid in ids], dtype=float).reshape(-1, 2)
        highs = np.array([[hi for _, hi in intervals[rid]] for rid in ids], dtype=float).reshape(-1, 2)
        err = [np.nan_to_num(f_pts - lows), np.nan_to_num(highs - f_pts)]
        ax.errorbar(
            f_pts[:, 0],
            f_pts[:, 1],
            xerr=np.abs(np.stack([err[0][:, 0], err[1][:, 0]])),
            yerr=np.abs(np.stack([err[0][:, 1], err[1][:, 1]])),
            fmt="none",
            ecolor=FINAL_COLOUR,
            elinewidth=0.8,
            alpha=0.6,
            capsize=2,
            zorder=3,
        )
    front_mask = np.array([f_rank[rid] == 0 for rid in ids], dtype=bool)
    _, _, stairs = _common.front_geometry(final)
    if len(stairs):
        ax.plot(stairs[:, 0], stairs[:, 1], color=FINAL_COLOUR, lw=1.1, alpha=0.8, zorder=3)
    ax.scatter(
        f_pts[front_mask, 0],
        f_pts[front_mask, 1],
        s=40,
        facecolors="white",
        edgecolors=FINAL_COLOUR,
        linewidths=1.4,
        label="final front (strong protocol, test)",
        zorder=5,
    )
    ax.scatter(
        f_pts[~front_mask, 0],
        f_pts[~front_mask, 1],
        s=30,
        facecolors="white",
        edgecolors="0.5",
        linewidths=1.0,
        label="off the final front (test)",
        zorder=5,
    )
    rings = [k for k, rid in enumerate(ids) if rid in set(flagged)]
    if rings:
        ax.scatter(
            f_pts[rings, 0],
            f_pts[rings, 1],
            s=150,
            facecolors="none",
            edgecolors=_common.FLAG_COLOUR,
            linewidths=1.8,
            label=_common.FLAG_LEGEND,
            zorder=6,
        )
    shown = np.vstack([v_pts, f_pts]) if len(ids) else np.zeros((0, 2))
    shown = shown[np.isfinite(shown).all(axis=1)]
    if len(shown):
        ax.set_xlim(*_limits(shown[:, 0], final.directions[0]))
        ax.set_ylim(*_limits(shown[:, 1], final.directions[1]))
    # The same measure on both fronts (validation beats, then test beats): name it without its part.
    ax.set_xlabel(f"{without_part(final.names[0])}  ({_common.better_word(final.directions[0])})")
    ax.set_ylabel(f"{without_part(final.names[1])}  ({_common.better_word(final.directions[1])})")
    ax.grid(True, color="0.92", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.suptitle(title or "Finalists: validation front and final front", fontsize=12)
    gone = [label_map.get(rid, rid) for rid in ids if rid in set(fell_off)]
    subtitle = f"{len(ids)} finalists, {int(front_mask.sum())} on the final front"
    if gone:
        subtitle += "; fell off: " + ", ".join(gone)
    ax.set_title(subtitle, fontsize=8, color="0.35")
    ax.legend(loc="best", fontsize=7.5, frameon=False)
    fig.tight_layout()
    signs = (1 if final.directions[0] == "maximize" else -1, 1 if final.directions[1] == "maximize" else -1)
    items = [
        (label_map.get(rid, rid) + (" (fell off)" if rid in set(fell_off) else ""), f_pts[k])
        for k, rid in enumerate(ids)
        if all(math.isfinite(v) for v in f_pts[k])
    ]
    _place_labels(ax, fig, items, signs, v_pts)
    return _common.save_png(fig, out)
