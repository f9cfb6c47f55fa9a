"""What the figures share: colours, the checks of their inputs, figure creation, saving, the front's shape."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nsr_tune._io import atomic_write
from nsr_tune.errors import ConfigError
from nsr_tune.metrics import Direction
from nsr_tune.results.pareto import ParetoResult

log = logging.getLogger(__name__)

DPI = 150
FRONT_COLOUR = "#c0392b"
DOMINATED_COLOUR = "#a6a6a6"
TEST_COLOUR = "#1f4e9c"
TEST_LEGEND = "same trial on test (held out)"
# A ring around a point whose robustness a gradient-masking check doubts: a warning colour that is
# neither the front's red, the dominated grey nor the test blue (Okabe-Ito orange).
FLAG_COLOUR = "#e69f00"
FLAG_LEGEND = "gradient masking flagged (distrust its robustness)"


# --------------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------------


def check_path(path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"path: {out} is a directory, not a file")
    return out


def check_result(result: ParetoResult) -> None:
    if len(result.names) != 2:
        raise ConfigError(
            f"result: must have exactly 2 objectives to draw a front; it has {len(result.names)}"
        )


def front_test_values(
    test_values: Mapping[str, Sequence[float]] | None, result: ParetoResult
) -> dict[str, tuple[float, float]]:
    """Test values of the front points; others are ignored (the figure is about the front)."""
    if test_values is None:
        return {}
    out: dict[str, tuple[float, float]] = {}
    front = set(result.front_ids)
    for key, value in test_values.items():
        pair = np.asarray(value, dtype=np.float64)
        if pair.shape != (2,):
            raise ConfigError(f"test_values[{key!r}]: must be 2 numbers (one per objective); got {value!r}")
        if np.isinf(pair).any():
            raise ConfigError(f"test_values[{key!r}]: must be finite or NaN; got {value!r}")
        if key in front and not np.isnan(pair).any():
            out[key] = (float(pair[0]), float(pair[1]))
    ignored = len(test_values) - len(out)
    if ignored:
        log.debug("test_values: %d entries off the front or with NaN are not drawn", ignored)
    return out


def flagged_indices(flagged: Collection[str] | None, result: ParetoResult) -> list[int]:
    """Positions in ``result`` of the flagged trials that have values to draw, in result order.

    An id that is not a trial of the result is an error rather than ignored: a typo must not
    silently drop the warning a flag is meant to give.
    """
    if flagged is None:
        return []
    if isinstance(flagged, str):
        raise ConfigError(f"flagged: must be a collection of trial ids, not one string; got {flagged!r}")
    index = {id_: i for i, id_ in enumerate(result.ids)}
    unknown = sorted(str(f) for f in flagged if f not in index)
    if unknown:
        raise ConfigError(f"flagged: not trials of the result: {', '.join(map(repr, unknown))}")
    wanted = set(flagged)
    return [i for i, id_ in enumerate(result.ids) if id_ in wanted and result.ranks[i] >= 0]


# --------------------------------------------------------------------------------------------------
# figures and files
# --------------------------------------------------------------------------------------------------


def save(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """``write(fh)`` into ``path`` atomically (see :func:`nsr_tune._io.atomic_write`)."""
    atomic_write(path, write)
    log.info("wrote %s", path)
    return path


def new_figure(figsize: tuple[float, float]) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # an optional dependency of nsr-tune
        raise ImportError("PNG figures need matplotlib: pip install matplotlib") from exc
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas; Agg renders without a display
    return fig


def save_png(fig: Any, path: Path) -> Path:
    return save(path, lambda fh: fig.savefig(fh, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1))


# --------------------------------------------------------------------------------------------------
# the front
# --------------------------------------------------------------------------------------------------


def better_word(direction: Direction) -> str:
    return "higher is better" if direction is Direction.MAXIMIZE else "lower is better"


def better_signs(directions: Sequence[Direction]) -> tuple[int, int]:
    """+1 where the better side of an axis is its high end, -1 where it is the low end."""
    return (int(directions[0].sign), int(directions[1].sign))


def limits(values: np.ndarray, direction: Direction) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    # More room on the better side, where the front and its labels are.
    pad_low, pad_high = (0.06, 0.2) if direction is Direction.MAXIMIZE else (0.2, 0.06)
    return lo - pad_low * span, hi + pad_high * span


def style_axes(ax: Any, shown: np.ndarray, labels: Sequence[str], directions: Sequence[Direction]) -> None:
    """Limits around the `shown` points (n, 2), axis titles that say which way is better, a light
    grid and no top or right spine."""
    if len(shown):
        ax.set_xlim(*limits(shown[:, 0], directions[0]))
        ax.set_ylim(*limits(shown[:, 1], directions[1]))
    ax.set_xlabel(f"{labels[0]}  ({better_word(directions[0])})")
    ax.set_ylabel(f"{labels[1]}  ({better_word(directions[1])})")
    ax.grid(True, color="0.92", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def draw_rings(ax: Any, points: np.ndarray) -> None:
    """A hollow ring around each flagged point, above every other marker."""
    ax.scatter(
        points[:, 0],
        points[:, 1],
        s=150,
        facecolors="none",
        edgecolors=FLAG_COLOUR,
        linewidths=1.8,
        label=FLAG_LEGEND,
        zorder=6,
    )


def front_geometry(result: ParetoResult) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Front ids and points sorted along x, and the staircase through them.

    Between neighbours the staircase turns at the corner that is worse than both in each objective,
    so it bounds the dominated region (the attainment surface) and never crosses better space.
    """
    index = {id_: i for i, id_ in enumerate(result.ids)}
    ids = sorted(result.front_ids, key=lambda i: (result.values[index[i], 0], result.values[index[i], 1]))
    pts = np.array([result.values[index[i]] for i in ids]).reshape(-1, 2)
    worse = [min if d is Direction.MAXIMIZE else max for d in result.directions]
    path = [pts[0]] if len(pts) else []
    for a, b in pairwise(pts):
        path += [np.array([worse[0](a[0], b[0]), worse[1](a[1], b[1])]), b]
    return ids, pts, np.array(path).reshape(-1, 2)


def summary(result: ParetoResult) -> str:
    n_valid = int((result.ranks >= 0).sum())
    text = f"{n_valid} trials, {int(result.mask.sum())} on the front"
    if n_valid < len(result.ids):
        text += f", {len(result.ids) - n_valid} without values"
    if result.hypervolume is not None:
        ref = ", ".join(f"{r:g}" for r in result.reference)
        text += f", hypervolume {result.hypervolume:.4f} (reference {ref})"
    return text
