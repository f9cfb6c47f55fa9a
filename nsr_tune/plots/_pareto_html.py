"""The Pareto front as one self-contained, interactive HTML file (plotly, with plotly.js inline)."""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from html import escape as _html_escape
from pathlib import Path
from typing import Any

import numpy as np

from nsr_tune.metrics import Direction
from nsr_tune.plots import _common
from nsr_tune.results.pareto import ParetoResult


def _escape(text: str) -> str:
    # plotly renders a subset of HTML in text; quotes need no escaping there and would show as entities.
    return _html_escape(text, quote=False)


def _fmt(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.5g}" if math.isfinite(value) else str(value)
    return str(value)


def _connector(go: Any, x: Sequence[Any], y: Sequence[Any], colour: str, width: float, group: str) -> Any:
    """A line drawn with a legend group's markers: no hover, no legend entry of its own."""
    return go.Scatter(
        x=x,
        y=y,
        mode="lines",
        line={"color": colour, "width": width},
        hoverinfo="skip",
        showlegend=False,
        legendgroup=group,
    )


class _Hover:
    """The hover text of a point: its id, label, both objectives and its extra fields."""

    def __init__(self, result: ParetoResult, labels: Mapping[str, str], extra: Mapping[str, Mapping]) -> None:
        self.names, self.labels, self.extra = result.names, labels, extra

    def __call__(self, id_: str, xy: Sequence[float], heading: str = "") -> str:
        # Ids, labels and fields come from users: escape them so they cannot inject markup.
        lines = [f"<b>{_escape(id_)}</b>" + (f" — {heading}" if heading else "")]
        if id_ in self.labels:
            lines.append(_escape(self.labels[id_]))
        lines += [f"{_escape(n)}: {_fmt(float(v))}" for n, v in zip(self.names, xy, strict=True)]
        lines += [f"{_escape(str(k))}: {_escape(_fmt(v))}" for k, v in self.extra.get(id_, {}).items()]
        return "<br>".join(lines)


def _markers(go: Any, x: Any, y: Any, hover: list[str], **style: Any) -> Any:
    return go.Scatter(x=x, y=y, hovertext=hover, hovertemplate="%{hovertext}<extra></extra>", **style)


def _trials(go: Any, result: ParetoResult, hover: _Hover, labels: Mapping[str, str]) -> list[Any]:
    """The dominated trials, and the front with its staircase and labels."""
    dominated = [i for i in range(len(result.ids)) if result.ranks[i] > 0]
    traces = [
        _markers(
            go,
            result.values[dominated, 0],
            result.values[dominated, 1],
            [hover(result.ids[i], result.values[i]) for i in dominated],
            mode="markers",
            name="dominated trials",
            marker={"color": _common.DOMINATED_COLOUR, "size": 7, "opacity": 0.7},
        )
    ]
    front_ids, front, stairs = _common.front_geometry(result)
    if not len(front):
        return traces
    up, right = (d is Direction.MAXIMIZE for d in (result.directions[1], result.directions[0]))
    return [
        *traces,
        _connector(go, stairs[:, 0], stairs[:, 1], _common.FRONT_COLOUR, 1.5, "front"),
        _markers(
            go,
            front[:, 0],
            front[:, 1],
            [hover(i, p) for i, p in zip(front_ids, front, strict=True)],
            mode="markers+text",
            name="Pareto front (validation)",
            legendgroup="front",
            marker={"color": _common.FRONT_COLOUR, "size": 9, "line": {"color": "white", "width": 1}},
            text=[_escape(labels.get(i, i)) for i in front_ids],
            textposition=("top " if up else "bottom ") + ("right" if right else "left"),
            textfont={"size": 10},
        ),
    ]


def _tests(
    go: Any, result: ParetoResult, tests: Mapping[str, tuple[float, float]], hover: _Hover
) -> list[Any]:
    """The front's held-out results, hollow, each tied to its validation point."""
    index = {id_: i for i, id_ in enumerate(result.ids)}
    lx: list[float | None] = []
    ly: list[float | None] = []
    for id_, (tx, ty) in tests.items():
        vx, vy = result.values[index[id_]]
        lx += [float(vx), tx, None]  # None breaks the line between pairs
        ly += [float(vy), ty, None]
    return [
        _connector(go, lx, ly, _common.TEST_COLOUR, 0.8, "test"),
        _markers(
            go,
            [t[0] for t in tests.values()],
            [t[1] for t in tests.values()],
            [hover(i, t, _common.TEST_LEGEND) for i, t in tests.items()],
            mode="markers",
            name=_common.TEST_LEGEND,
            legendgroup="test",
            marker={"symbol": "circle-open", "color": _common.TEST_COLOUR, "size": 9, "line": {"width": 1.5}},
        ),
    ]


def _rings(go: Any, result: ParetoResult, rings: list[int], hover: _Hover) -> Any:
    """A ring around each flagged trial; drawn last, so its hover (which says why) wins."""
    return _markers(
        go,
        result.values[rings, 0],
        result.values[rings, 1],
        [hover(result.ids[i], result.values[i], "gradient masking flagged") for i in rings],
        mode="markers",
        name=_common.FLAG_LEGEND,
        marker={"symbol": "circle-open", "color": _common.FLAG_COLOUR, "size": 17, "line": {"width": 2.5}},
    )


def pareto_figure_html(
    result: ParetoResult,
    path: str | os.PathLike[str],
    *,
    labels: Mapping[str, str] | None = None,
    test_values: Mapping[str, Sequence[float]] | None = None,
    hover: Mapping[str, Mapping[str, object]] | None = None,
    flagged: Collection[str] | None = None,
    title: str | None = None,
) -> Path:
    """Interactive version of :func:`pareto_figure_png`, as one self-contained HTML file.

    Hovering a point shows its id, label, both objectives and the fields of ``hover[id]`` (for instance
    the hyperparameters, or which masking checks fired). The ``flagged`` ids get a ring, as in the PNG.
    plotly.js is embedded, so the file opens without network access.
    """
    out = _common.check_path(path)
    _common.check_result(result)
    label_map = dict(labels or {})
    tests = _common.front_test_values(test_values, result)
    rings = _common.flagged_indices(flagged, result)
    hover_text = _Hover(result, label_map, dict(hover or {}))
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # an optional dependency of nsr-tune
        raise ImportError("HTML figures need plotly: pip install plotly") from exc

    fig = go.Figure(_trials(go, result, hover_text, label_map))
    if tests:
        fig.add_traces(_tests(go, result, tests, hover_text))
    if rings:
        fig.add_trace(_rings(go, result, rings, hover_text))
    names = result.names
    fig.update_layout(
        title={"text": f"{_escape(title or 'Pareto front')}<br><sup>{_common.summary(result)}</sup>"},
        xaxis_title=f"{_escape(names[0])} ({_common.better_word(result.directions[0])})",
        yaxis_title=f"{_escape(names[1])} ({_common.better_word(result.directions[1])})",
        template="plotly_white",
        hovermode="closest",
    )
    html = fig.to_html(
        include_plotlyjs=True,  # inline: no CDN on offline machines or inside the MLflow UI
        full_html=True,
        div_id="pareto-front",  # fixed, so the same study writes the same file
        config={"displaylogo": False, "toImageButtonOptions": {"filename": out.stem, "scale": 2}},
    )
    data = html.encode("utf-8")
    return _common.save(out, lambda fh: fh.write(data))
