"""The Pareto front as one self-contained, interactive HTML file (plotly, with plotly.js inline)."""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from html import escape as _html_escape
from pathlib import Path
from typing import Any

import numpy as np

from nsr_tune.pareto import ParetoResult
from nsr_tune.plots import _common


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
    extra = dict(hover or {})
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
            marker={"color": _common.DOMINATED_COLOUR, "size": 7, "opacity": 0.7},
            hovertext=[hover_text(result.ids[i], result.values[i]) for i in dominated],
            hovertemplate="%{hovertext}<extra></extra>",
        )
    )
    front_ids, front, stairs = _common.front_geometry(result)
    if len(front):
        fig.add_trace(_connector(go, stairs[:, 0], stairs[:, 1], _common.FRONT_COLOUR, 1.5, "front"))
        fig.add_trace(
            go.Scatter(
                x=front[:, 0],
                y=front[:, 1],
                mode="markers+text",
                name="Pareto front (validation)",
                legendgroup="front",
                marker={"color": _common.FRONT_COLOUR, "size": 9, "line": {"color": "white", "width": 1}},
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
        fig.add_trace(_connector(go, lx, ly, _common.TEST_COLOUR, 0.8, "test"))
        fig.add_trace(
            go.Scatter(
                x=[t[0] for t in tests.values()],
                y=[t[1] for t in tests.values()],
                mode="markers",
                name=_common.TEST_LEGEND,
                legendgroup="test",
                marker={
                    "symbol": "circle-open",
                    "color": _common.TEST_COLOUR,
                    "size": 9,
                    "line": {"width": 1.5},
                },
                hovertext=[hover_text(i, t, _common.TEST_LEGEND) for i, t in tests.items()],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    if rings:
        # Last, so the ring is on top and its hover (which says why it is there) wins.
        fig.add_trace(
            go.Scatter(
                x=result.values[rings, 0],
                y=result.values[rings, 1],
                mode="markers",
                name=_common.FLAG_LEGEND,
                marker={
                    "symbol": "circle-open",
                    "color": _common.FLAG_COLOUR,
                    "size": 17,
                    "line": {"width": 2.5},
                },
                hovertext=[
                    hover_text(result.ids[i], result.values[i], "gradient masking flagged") for i in rings
                ],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )

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
