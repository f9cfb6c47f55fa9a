"""Figures of a study: the Pareto front (PNG and interactive HTML) and accuracy against attack budget.

Computing lives in :mod:`nsr_tune.pareto`; this module only draws. matplotlib and plotly are imported
inside the functions, so importing this module costs nothing and needs neither. The PNGs are drawn on a
bare :class:`matplotlib.figure.Figure` with an Agg canvas: no pyplot, no global backend switch, nothing
left open, safe from worker threads. The HTML embeds plotly.js (about 4 MB) because the MLflow UI and
offline machines cannot fetch it from a CDN.

Every writer creates the parent directories, writes to a temporary file in the same directory and
renames it into place, so a reader (MLflow, a browser) never sees half a file. Each returns the path.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from html import escape as _html_escape
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from nsr_tune.errors import ConfigError
from nsr_tune.pareto import ParetoResult

__all__ = ["pareto_figure_html", "pareto_figure_png", "robustness_curve_png"]

log = logging.getLogger(__name__)

DPI = 150
FRONT_COLOUR = "#c0392b"
DOMINATED_COLOUR = "#a6a6a6"
TEST_COLOUR = "#1f4e9c"
TEST_LEGEND = "same trial on test (held out)"


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------


def _check_path(path: str | os.PathLike[str]) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ConfigError(f"path: must be a file path; got {path!r}")
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"path: {out} is a directory, not a file")
    return out


def _check_title(title: str | None) -> str | None:
    if title is not None and not isinstance(title, str):
        raise ConfigError(f"title: must be a string or None; got {type(title).__name__}")
    return title


def _check_result(result: ParetoResult) -> None:
    if not isinstance(result, ParetoResult):
        raise ConfigError(f"result: must be a ParetoResult; got {type(result).__name__}")
    if len(result.names) != 2:
        raise ConfigError(
            f"result: must have exactly 2 objectives to draw a front; it has {len(result.names)}"
        )


def _check_ids(mapping: Mapping[str, Any], result: ParetoResult, *, name: str) -> None:
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{name}: must be a mapping from trial id; got {type(mapping).__name__}")
    known = set(result.ids)
    unknown = sorted(str(k) for k in mapping if k not in known)
    if unknown:
        raise ConfigError(f"{name}: has ids that are not in result: {unknown[:5]!r}")


def _check_labels(labels: Mapping[str, str] | None, result: ParetoResult) -> dict[str, str]:
    if labels is None:
        return {}
    _check_ids(labels, result, name="labels")
    bad = sorted(k for k, v in labels.items() if not isinstance(v, str))
    if bad:
        raise ConfigError(f"labels: must map ids to strings; not a string for {bad[:5]!r}")
    return dict(labels)


def _check_test_values(
    test_values: Mapping[str, Sequence[float]] | None, result: ParetoResult
) -> dict[str, tuple[float, float]]:
    """Test values of the front points; others are ignored (the figure is about the front)."""
    if test_values is None:
        return {}
    _check_ids(test_values, result, name="test_values")
    out: dict[str, tuple[float, float]] = {}
    front = set(result.front_ids)
    for key, value in test_values.items():
        try:
            pair = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"test_values[{key!r}]: must be 2 numbers; got {value!r}") from None
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


def _check_hover(
    hover: Mapping[str, Mapping[str, object]] | None, result: ParetoResult
) -> dict[str, Mapping[str, object]]:
    if hover is None:
        return {}
    _check_ids(hover, result, name="hover")
    bad = sorted(k for k, v in hover.items() if not isinstance(v, Mapping))
    if bad:
        raise ConfigError(f"hover: must map ids to mappings of fields; not a mapping for {bad[:5]!r}")
    return dict(hover)


def _check_curves(
    eps: Sequence[float], curves: Mapping[str, Sequence[float]], eps_uv: Sequence[float] | None
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    try:
        e = np.asarray(eps, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"eps: must be a sequence of numbers; got {eps!r}") from None
    if e.ndim != 1 or e.size == 0:
        raise ConfigError(f"eps: must be a non-empty 1-D sequence; got shape {e.shape}")
    if not np.isfinite(e).all() or (e < 0).any():
        raise ConfigError(f"eps: must be finite and >= 0 (0 is the clean point); got {e.tolist()}")
    if (np.diff(e) <= 0).any():
        raise ConfigError(f"eps: must be strictly increasing; got {e.tolist()}")
    if not isinstance(curves, Mapping) or not curves:
        raise ConfigError("curves: must be a non-empty mapping from curve name to accuracies")
    ys: dict[str, np.ndarray] = {}
    for name, values in curves.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"curves: must be keyed by non-empty names; got {name!r}")
        try:
            y = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"curves[{name!r}]: must be a sequence of numbers; got {values!r}") from None
        if y.shape != e.shape:
            raise ConfigError(
                f"curves[{name!r}]: must have one value per eps ({e.size}); got shape {y.shape}"
            )
        finite = y[~np.isnan(y)]
        if ((finite < 0) | (finite > 1)).any():
            raise ConfigError(
                f"curves[{name!r}]: must be accuracies in [0, 1] (NaN = missing); got {y.tolist()}"
            )
        ys[name] = y
    uv = None
    if eps_uv is not None:
        try:
            uv = np.asarray(eps_uv, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"eps_uv: must be a sequence of numbers; got {eps_uv!r}") from None
        if uv.shape != e.shape:
            raise ConfigError(f"eps_uv: must have one value per eps ({e.size}); got shape {uv.shape}")
        if not np.isfinite(uv).all() or (uv < 0).any():
            raise ConfigError(f"eps_uv: must be finite and >= 0; got {uv.tolist()}")
    return e, ys, uv


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden sibling, so the rename stays on one file system and is atomic. Not tempfile: its 0600
    # mode would survive the rename and hide the figure from a web server or other users.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("wrote %s", path)
    return path


def _new_figure(figsize: tuple[float, float]) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # an optional dependency of nsr-tune
        raise ImportError("PNG figures need matplotlib: pip install matplotlib") from exc
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas; Agg renders without a display
    return fig


def _save_png(fig: Any, path: Path) -> Path:
    return _atomic_write(
        path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1)
    )


def _better_word(direction: str) -> str:
    return "higher is better" if direction == "maximize" else "lower is better"


def _front_geometry(result: ParetoResult) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Front ids and points sorted along x, and the staircase through them.

    Between neighbours the staircase turns at the corner that is worse than both in each objective,
    so it bounds the dominated region (the attainment surface) and never crosses better space.
    """
    index = {id_: i for i, id_ in enumerate(result.ids)}
    ids = sorted(result.front_ids, key=lambda i: (result.values[index[i], 0], result.values[index[i], 1]))
    pts = np.array([result.values[index[i]] for i in ids]).reshape(-1, 2)
    worse = [min if d == "maximize" else max for d in result.directions]
    path = [pts[0]] if len(pts) else []
    for a, b in pairwise(pts):
        path += [np.array([worse[0](a[0], b[0]), worse[1](a[1], b[1])]), b]
    return ids, pts, np.array(path).reshape(-1, 2)


def _summary(result: ParetoResult) -> str:
    n_valid = int((result.ranks >= 0).sum())
    text = f"{n_valid} trials, {int(result.mask.sum())} on the front"
    if n_valid < len(result.ids):
        text += f", {len(result.ids) - n_valid} without values"
    if result.hypervolume is not None:
        ref = ", ".join(f"{r:g}" for r in result.reference)
        text += f", hypervolume {result.hypervolume:.4f} (reference {ref})"
    return text


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


def _thin_tick_labels(fig: Any, ax: Any, ticks: np.ndarray) -> None:
    """Keep the x tick marks but blank each label that would overlap the last one kept."""
    fig.canvas.draw()  # tick labels have positions only once drawn
    renderer = fig.canvas.get_renderer()
    texts = [t.get_text() for t in ax.get_xticklabels()]
    boxes = [t.get_window_extent(renderer).expanded(1.15, 1.0) for t in ax.get_xticklabels()]
    kept: list[str] = []
    last = None
    for text, box in zip(texts, boxes, strict=True):
        if last is None or not box.overlaps(last):
            kept.append(text)
            last = box
        else:
            kept.append("")
    if kept != texts:
        ax.set_xticks(ticks, kept, fontsize=8)


# --------------------------------------------------------------------------------------------------
# Pareto front, PNG
# --------------------------------------------------------------------------------------------------


def pareto_figure_png(
    result: ParetoResult,
    path: str | os.PathLike[str],
    *,
    labels: Mapping[str, str] | None = None,
    test_values: Mapping[str, Sequence[float]] | None = None,
    title: str | None = None,
) -> Path:
    """Scatter of a two-objective study with its Pareto front, written as a PNG.

    Dominated trials are grey; the front is coloured, joined by a staircase along the edge of the
    region it dominates, and each front point is labelled with ``labels[id]`` (the id when absent).
    ``test_values[id]`` (two numbers) draws a front point's held-out result as a hollow marker tied to
    its validation point; entries for points off the front, or with NaN, are not drawn. Trials with
    NaN values are left out.
    """
    out = _check_path(path)
    _check_result(result)
    label_map = _check_labels(labels, result)
    tests = _check_test_values(test_values, result)
    title = _check_title(title)

    fig = _new_figure((7.0, 5.6))
    ax = fig.add_subplot()
    values = result.values
    dominated = result.ranks > 0
    front_ids, front, stairs = _front_geometry(result)
    index = {id_: i for i, id_ in enumerate(result.ids)}

    ax.scatter(
        values[dominated, 0],
        values[dominated, 1],
        s=16,
        color=DOMINATED_COLOUR,
        alpha=0.7,
        linewidths=0,
        label="dominated trials",
        zorder=2,
    )
    if len(front):
        ax.plot(stairs[:, 0], stairs[:, 1], color=FRONT_COLOUR, lw=1.2, alpha=0.8, zorder=3)
        ax.scatter(
            front[:, 0],
            front[:, 1],
            s=34,
            color=FRONT_COLOUR,
            edgecolors="white",
            linewidths=0.6,
            label="Pareto front (validation)",
            zorder=4,
        )
    if tests:
        for id_, (tx, ty) in tests.items():
            vx, vy = values[index[id_]]
            ax.plot([vx, tx], [vy, ty], color=TEST_COLOUR, lw=0.7, alpha=0.7, zorder=3)
        t = np.array(list(tests.values()))
        ax.scatter(
            t[:, 0],
            t[:, 1],
            s=34,
            facecolors="none",
            edgecolors=TEST_COLOUR,
            linewidths=1.1,
            label=TEST_LEGEND,
            zorder=5,
        )

    shown = values[result.ranks >= 0]
    if tests:
        shown = np.vstack([shown, np.array(list(tests.values()))])
    if len(shown):
        ax.set_xlim(*_limits(shown[:, 0], result.directions[0]))
        ax.set_ylim(*_limits(shown[:, 1], result.directions[1]))
    ax.set_xlabel(f"{result.names[0]}  ({_better_word(result.directions[0])})")
    ax.set_ylabel(f"{result.names[1]}  ({_better_word(result.directions[1])})")
    ax.grid(True, color="0.92", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.suptitle(title or "Pareto front", fontsize=12)
    ax.set_title(_summary(result), fontsize=8, color="0.35")
    if len(front) or tests or dominated.any():
        ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()

    # Labels last: their overlap test needs the final axes geometry.
    signs = (1 if result.directions[0] == "maximize" else -1, 1 if result.directions[1] == "maximize" else -1)
    items = [(label_map.get(i, i), p) for i, p in zip(front_ids, front, strict=True)]
    _place_labels(ax, fig, items, signs, np.array(list(tests.values())))
    return _save_png(fig, out)


# --------------------------------------------------------------------------------------------------
# Pareto front, HTML
# --------------------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    # plotly renders a subset of HTML in text; quotes need no escaping there and would show as entities.
    return _html_escape(text, quote=False)


def _fmt(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.5g}" if math.isfinite(value) else str(value)
    return str(value)


def pareto_figure_html(
    result: ParetoResult,
    path: str | os.PathLike[str],
    *,
    labels: Mapping[str, str] | None = None,
    test_values: Mapping[str, Sequence[float]] | None = None,
    hover: Mapping[str, Mapping[str, object]] | None = None,
    title: str | None = None,
) -> Path:
    """Interactive version of :func:`pareto_figure_png`, as one self-contained HTML file.

    Hovering a point shows its id, label, both objectives and the fields of ``hover[id]`` (for instance
    the hyperparameters). plotly.js is embedded, so the file opens without network access.
    """
    out = _check_path(path)
    _check_result(result)
    label_map = _check_labels(labels, result)
    tests = _check_test_values(test_values, result)
    extra = _check_hover(hover, result)
    title = _check_title(title)
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # an optional dependency of nsr-tune
        raise ImportError("HTML figures need plotly: pip install plotly") from exc

    names = result.names
    index = {id_: i for i, id_ in enumerate(result.ids)}

    def hover_text(id_: str, xy: Sequence[float], heading: str = "") -> str:
        # Ids, labels and fields come from users: escape them so they cannot inject markup.
        lines = [f"<b>{_escape(id_)}</b>" + (f" — {heading}" if heading else "")]
        if id_ in label_map:
            lines.append(_escape(label_map[id_]))
        lines += [f"{_escape(n)}: {_fmt(float(v))}" for n, v in zip(names, xy, strict=True)]
        lines += [f"{_escape(str(k))}: {_escape(_fmt(v))}" for k, v in extra.get(id_, {}).items()]
        return "<br>".join(lines)

    fig = go.Figure()
    dominated = [i for i in range(len(result.ids)) if result.ranks[i] > 0]
    fig.add_trace(
        go.Scatter(
            x=result.values[dominated, 0],
            y=result.values[dominated, 1],
            mode="markers",
            name="dominated trials",
            marker={"color": DOMINATED_COLOUR, "size": 7, "opacity": 0.7},
            hovertext=[hover_text(result.ids[i], result.values[i]) for i in dominated],
            hovertemplate="%{hovertext}<extra></extra>",
        )
    )
    front_ids, front, stairs = _front_geometry(result)
    if len(front):
        fig.add_trace(
            go.Scatter(
                x=stairs[:, 0],
                y=stairs[:, 1],
                mode="lines",
                line={"color": FRONT_COLOUR, "width": 1.5},
                hoverinfo="skip",
                showlegend=False,
                legendgroup="front",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=front[:, 0],
                y=front[:, 1],
                mode="markers+text",
                name="Pareto front (validation)",
                legendgroup="front",
                marker={"color": FRONT_COLOUR, "size": 9, "line": {"color": "white", "width": 1}},
                text=[_escape(label_map.get(i, i)) for i in front_ids],
                textposition=(
                    ("top " if result.directions[1] == "maximize" else "bottom ")
                    + ("right" if result.directions[0] == "maximize" else "left")
                ),
                textfont={"size": 10},
                hovertext=[hover_text(i, p) for i, p in zip(front_ids, front, strict=True)],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    if tests:
        lx: list[float | None] = []
        ly: list[float | None] = []
        for id_, (tx, ty) in tests.items():
            vx, vy = result.values[index[id_]]
            lx += [float(vx), tx, None]  # None breaks the line between pairs
            ly += [float(vy), ty, None]
        fig.add_trace(
            go.Scatter(
                x=lx,
                y=ly,
                mode="lines",
                line={"color": TEST_COLOUR, "width": 0.8},
                hoverinfo="skip",
                showlegend=False,
                legendgroup="test",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[t[0] for t in tests.values()],
                y=[t[1] for t in tests.values()],
                mode="markers",
                name=TEST_LEGEND,
                legendgroup="test",
                marker={"symbol": "circle-open", "color": TEST_COLOUR, "size": 9, "line": {"width": 1.5}},
                hovertext=[hover_text(i, t, TEST_LEGEND) for i, t in tests.items()],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )

    fig.update_layout(
        title={"text": f"{_escape(title or 'Pareto front')}<br><sup>{_summary(result)}</sup>"},
        xaxis_title=f"{_escape(names[0])} ({_better_word(result.directions[0])})",
        yaxis_title=f"{_escape(names[1])} ({_better_word(result.directions[1])})",
        template="plotly_white",
        hovermode="closest",
    )

    def write(tmp: Path) -> None:
        fig.write_html(
            tmp,
            include_plotlyjs=True,  # inline: no CDN on offline machines or inside the MLflow UI
            full_html=True,
            div_id="pareto-front",  # fixed, so the same study writes the same file
            config={"displaylogo": False, "toImageButtonOptions": {"filename": out.stem, "scale": 2}},
        )

    return _atomic_write(out, write)


# --------------------------------------------------------------------------------------------------
# robustness curve
# --------------------------------------------------------------------------------------------------


def robustness_curve_png(
    eps: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
    *,
    eps_uv: Sequence[float] | None = None,
    title: str | None = None,
) -> Path:
    """Accuracy (0..1) against attack budget ``eps``, one line per entry of ``curves``.

    ``eps`` must be strictly increasing and >= 0; eps = 0 is the clean accuracy. NaN in a curve is a
    missing value (a gap). With ``eps_uv`` (the same budgets in microvolts) a top axis shows them at the
    same positions; the conversion need not be linear.
    """
    e, ys, uv = _check_curves(eps, curves, eps_uv)
    out = _check_path(path)
    title = _check_title(title)

    fig = _new_figure((6.4, 4.4))
    ax = fig.add_subplot()
    for name, y in ys.items():
        ax.plot(e, y, marker="o", ms=4, lw=1.6, label=name)
    ax.set_ylim(-0.02, 1.02)
    ax.set_yticks(np.linspace(0, 1, 11))
    ax.set_ylabel("accuracy")
    ax.set_xlabel("perturbation budget ε (0 = clean)")
    if e.size > 1:
        span = e[-1] - e[0]
        ax.set_xlim(e[0] - 0.03 * span, e[-1] + 0.03 * span)
    # Ticks at the evaluated budgets say exactly where the curve was measured.
    ax.set_xticks(e, [f"{v:g}" for v in e], fontsize=8)
    top = None
    if uv is not None:
        top = ax.secondary_xaxis("top")
        top.set_xticks(e, [f"{v:.0f}" if v >= 10 else f"{v:.2g}" for v in uv], fontsize=8)
        top.set_xlabel("ε in µV")
    ax.grid(True, color="0.92", lw=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="best", fontsize=8, frameon=False)
    ax.set_title(title or "Accuracy under attack", fontsize=11)
    fig.tight_layout()
    # Budgets are often uneven (0, 0.01, 0.02, 0.05, ...): blank the labels that would collide.
    _thin_tick_labels(fig, ax, e)
    if top is not None:
        _thin_tick_labels(fig, top, e)
    return _save_png(fig, out)
