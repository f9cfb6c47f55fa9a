"""A study's report as one self-contained HTML file: plotly figures, tables, the search space.

plotly.js is embedded once in the page's head, so the file opens offline (no CDN) and inside
the MLflow UI. Every text that comes from a user (run names, params, the space) is escaped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from nsr_tune.metrics import without_part
from nsr_tune.plots import _common
from nsr_tune.results.report import StudyReport

# What each masking flag means, in one line a reader can act on.
FLAG_EXPLANATIONS: Mapping[str, str] = {
    "black_box_beats_white_box": "an attack that uses no gradient (Square, transfer) broke beats that every "
    "gradient attack left correct: the gradients point the attacks the wrong way",
    "more_iterations_help": "doubling the gradient attack's iterations or restarts lowered robust accuracy "
    "by more than a point: the attack had not converged",
    "large_eps_above_chance": "at a budget that reaches any signal in range, robust accuracy stayed above "
    "chance: the attack, not the model, is what fails",
    "zero_gradients": "more than 1% of the beats have an input gradient of exactly zero: gradient attacks "
    "cannot move them",
    "noise_beats_attacks": "random or real noise broke more beats than the attacks at the same eps: the "
    "attacks are weaker than noise",
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1250px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 34px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 12.5px; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 13px; } .flag { color: #b35c00; }
pre { background: #f6f6f6; padding: 10px; font-size: 12px; overflow-x: auto; }
"""


def _go() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # an optional dependency of nsr-tune
        raise ImportError("the study report needs plotly: pip install plotly") from exc
    return go


def _num(v: float, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _hover(report: StudyReport, rid: str, heading: str, values: Sequence[float], names: Sequence[str]) -> str:
    lines = [f"<b>{escape(report.validation.run_names.get(rid, rid))}</b> — {heading}"]
    lines += [f"{escape(n)}: {_num(float(v), 4)}" for n, v in zip(names, values, strict=True)]
    lines += [f"{escape(k)}: {escape(v)}" for k, v in report.hover.get(rid, {}).items()]
    if rid in report.validation.flags:
        lines.append("masking flags (search): " + escape(", ".join(report.validation.flags[rid])))
    if report.final is not None and rid in report.final.finals and report.final.finals[rid].flags:
        lines.append("masking flags: " + escape(", ".join(report.final.finals[rid].flags)))
    return "<br>".join(lines)


def _points(
    report: StudyReport, result: Any, idx: Sequence[int], heading: str, name: str, marker: Mapping[str, Any]
) -> dict[str, Any]:
    """The scatter arguments of the points `idx` of a ranked result (validation or final)."""
    return {
        "x": [result.values[i][0] for i in idx],
        "y": [result.values[i][1] for i in idx],
        "mode": "markers",
        "name": name,
        "marker": dict(marker),
        "hovertext": [_hover(report, result.ids[i], heading, result.values[i], result.names) for i in idx],
        "hovertemplate": "%{hovertext}<extra></extra>",
    }


def _front_figure(report: StudyReport) -> Any:
    go = _go()
    v = report.validation.result
    fig = go.Figure()
    for front, name, colour, size in (
        (False, "dominated trials", _common.DOMINATED_COLOUR, 7),
        (True, "validation front (search attack)", _common.FRONT_COLOUR, 10),
    ):
        idx = [i for i in range(len(v.ids)) if (v.ranks[i] == 0) == front]
        fig.add_trace(
            go.Scatter(**_points(report, v, idx, "validation", name, {"color": colour, "size": size}))
        )
    flagged = [i for i in range(len(v.ids)) if v.ids[i] in report.validation.flags and v.ranks[i] >= 0]
    if flagged:
        # A ring around a trial whose masking checks fired: its robustness may be an artefact.
        ring = {"symbol": "circle-open", "color": _common.FLAG_COLOUR, "size": 17, "line": {"width": 2.5}}
        fig.add_trace(go.Scatter(**_points(report, v, flagged, "validation", _common.FLAG_LEGEND, ring)))
    final = report.final
    if final is not None and len(final.result.ids):
        f = final.result
        index = {rid: i for i, rid in enumerate(v.ids)}
        lx: list[float | None] = []
        ly: list[float | None] = []
        for j, rid in enumerate(f.ids):
            lx += [float(v.values[index[rid]][0]), float(f.values[j][0]), None]
            ly += [float(v.values[index[rid]][1]), float(f.values[j][1]), None]
        fig.add_trace(
            go.Scatter(
                x=lx,
                y=ly,
                mode="lines",
                line={"color": "#999", "width": 1, "dash": "dot"},
                hoverinfo="skip",
                showlegend=False,
            )
        )
        for on_front, name, colour in (
            (True, "final front (strong protocol, test)", "#1f4e9c"),
            (False, "finalists off the final front", "#777"),
        ):
            idx = [j for j in range(len(f.ids)) if (f.ranks[j] == 0) == on_front]
            ci = [final.intervals[f.ids[j]] for j in idx]
            marker = {"symbol": "circle-open", "color": colour, "size": 11, "line": {"width": 2}}
            fig.add_trace(
                go.Scatter(
                    **_points(report, f, idx, "final", name, marker),
                    error_x=_errors(ci, [f.values[j][0] for j in idx], 0),
                    error_y=_errors(ci, [f.values[j][1] for j in idx], 1),
                )
            )
    fig.update_layout(
        template="plotly_white",
        height=560,
        xaxis_title=f"{without_part(v.names[0])}: validation (filled), final (hollow)",
        yaxis_title=f"{without_part(v.names[1])}: validation (filled), final (hollow)",
        hovermode="closest",
        margin={"t": 30},
    )
    return fig


def _errors(ci: Sequence[Sequence[tuple[float, float]]], values: Sequence[float], k: int) -> dict[str, Any]:
    plus = [
        max(0.0, c[k][1] - x) if not math.isnan(c[k][1]) else 0.0 for c, x in zip(ci, values, strict=True)
    ]
    minus = [
        max(0.0, x - c[k][0]) if not math.isnan(c[k][0]) else 0.0 for c, x in zip(ci, values, strict=True)
    ]
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "thickness": 1}


def _per_finalist(report: StudyReport, key: str, title: str) -> Any | None:
    """One panel per finalist: accuracy against eps, one line per entry of evaluation[key]."""
    from plotly.subplots import make_subplots

    final = report.final
    if final is None or not final.finals:
        return None
    go = _go()
    ids = list(final.result.ids)
    cols = min(3, len(ids))
    rows = math.ceil(len(ids) / cols)
    names = [escape(report.validation.run_names.get(rid, rid)) for rid in ids]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, shared_yaxes=True)
    palette = ["#1f4e9c", "#c0392b", "#e69f00", "#009e73", "#8e44ad", "#555555"]
    seen: set[str] = set()
    for n, rid in enumerate(ids):
        ev = final.finals[rid].evaluation
        eps = [float(e) for e in ev.get("eps", [])]
        curves: dict[str, Mapping[str, float]] = dict(ev.get(key) or {})
        if key == "robust_acc_by_attack":
            curves["cascade"] = ev.get("robust_acc", {})
        for c, (label, curve) in enumerate(curves.items()):
            # Each curve starts at eps 0 from the clean figure: accuracy, or the class's sensitivity.
            clean = (
                ev.get("clean_acc")
                if key == "robust_acc_by_attack"
                else ev.get("per_class", {}).get(label, {}).get("sensitivity")
            )
            fig.add_trace(
                go.Scatter(
                    x=[0.0, *eps],
                    y=[clean, *(curve.get(f"{e:g}") for e in eps)],
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    showlegend=label not in seen,
                    line={"color": palette[c % len(palette)], "width": 2.5 if label == "cascade" else 1.5},
                ),
                row=n // cols + 1,
                col=n % cols + 1,
            )
            seen.add(label)
    fig.update_layout(template="plotly_white", height=330 * rows, title=title, margin={"t": 70})
    fig.update_xaxes(title_text="eps")
    fig.update_yaxes(range=[0, 1])
    return fig


def _cost_figure(report: StudyReport) -> Any:
    go = _go()
    ids = list(report.costs)
    names = [report.costs[i].name for i in ids]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=names,
            y=[report.costs[i].seconds / 60.0 for i in ids],
            name="training and search evaluation",
            marker={
                "color": [
                    _common.FRONT_COLOUR if report.costs[i].state == "complete" else "#999" for i in ids
                ]
            },
            hovertext=[_cost_text(report.costs[i]) for i in ids],
            hovertemplate="%{hovertext}<extra></extra>",
        )
    )
    if any(report.costs[i].final_seconds for i in ids):
        fig.add_trace(
            go.Bar(
                x=names,
                y=[report.costs[i].final_seconds / 60.0 for i in ids],
                name="final evaluation",
                marker={"color": "#1f4e9c"},
                hovertext=[_cost_text(report.costs[i]) for i in ids],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    fig.update_layout(
        template="plotly_white", height=380, yaxis_title="minutes", barmode="stack", margin={"t": 20}
    )
    return fig


def _cost_text(cost: Any) -> str:
    return (
        f"{escape(cost.name)}<br>{cost.state}<br>{cost.seconds:.0f} s"
        + (f" + {cost.final_seconds:.0f} s final evaluation" if cost.final_seconds else "")
        + ", "
        f"{cost.cpu_hours:.3f} CPU-h, {cost.gpu_hours:.3f} GPU-h"
    )


def _hv_figure(report: StudyReport) -> Any:
    go = _go()
    fig = go.Figure(
        go.Scatter(
            x=[k for k, _ in report.hypervolume], y=[h for _, h in report.hypervolume], mode="lines+markers"
        )
    )
    fig.update_layout(
        template="plotly_white",
        height=320,
        xaxis={"dtick": 1},
        xaxis_title="trials finished",
        yaxis_title="hypervolume",
        margin={"t": 20},
    )
    return fig


def _finalist_tables(report: StudyReport) -> str:
    final = report.final
    if final is None or not final.finals:
        return "<p class='note'>No finalist has been evaluated again yet: run <code>nsr-tune finalize</code>.</p>"  # noqa: E501
    names = list(final.names)
    rows = []
    for j, rid in enumerate(final.result.ids):
        fr = final.finals[rid]
        note = []
        if rid in final.fell_off:
            note.append("fell off: " + final.fell_off[rid])
        if rid in final.not_separable:
            note.append(
                "not separable at 95% from "
                + ", ".join(report.validation.run_names.get(d, d) for d in final.not_separable[rid])
            )
        rows.append(
            [
                report.validation.run_names.get(rid, rid),
                *(
                    f"{_num(float(x))} [{_num(lo)}, {_num(hi)}]"
                    for x, (lo, hi) in zip(final.result.values[j], final.intervals[rid], strict=True)
                ),
                str(int(final.result.ranks[j])),
                ", ".join(fr.flags) or "–",
                report.validation.run_names.get(fr.surrogate, fr.surrogate) or "–",
                "; ".join(note) or "–",
            ]
        )
    some = next(iter(final.finals.values()))
    header = ["trial", *(f"{n} [95% CI]" for n in names), "final rank", "flags", "transfer surrogate", "note"]
    out = _table(header, rows)
    out += (
        f"<p class='note'>{escape(str(some.evaluation.get('attack', '')))}; {some.n_beats} test beats from "
        f"{some.n_records} records. Intervals: percentiles of bootstrap resamples of records (patients), "
        "not beats.</p>"
    )
    # Noise stress: one row per finalist and kind of noise, one column per level.
    stress = {rid: final.finals[rid].evaluation.get("noise_stress", {}) for rid in final.result.ids}
    split = {key: _noise_key(key) for table in stress.values() for key in table}
    if split:
        kinds = sorted({k for k, _ in split.values()})
        levels = sorted({lv for _, lv in split.values()}, key=_level_order)
        by = {(rid, *split[key]): v for rid, table in stress.items() for key, v in table.items()}
        stress_rows = [
            [
                report.validation.run_names.get(rid, rid),
                kind,
                *(_num(by.get((rid, kind, lv), math.nan)) for lv in levels),
            ]
            for rid in final.result.ids
            for kind in kinds
        ]
        out += "<h3>Noise stress test (accuracy)</h3>" + _table(["trial", "noise", *levels], stress_rows)
    skipped = {k: v for fr in final.finals.values() for k, v in fr.skipped.items()}
    if skipped:
        out += (
            "<p class='note'>Skipped: " + "; ".join(escape(f"{k}: {v}") for k, v in skipped.items()) + "</p>"
        )
    return out


def _noise_key(key: str) -> tuple[str, str]:
    """`powerline_50hz_snr_6db` -> (`powerline_50hz`, `snr_6db`); `ma_100uv` -> (`ma`, `100uv`)."""
    if "_snr_" in key:
        kind, level = key.split("_snr_", 1)
        return kind, f"snr_{level}"
    kind, _, level = key.rpartition("_")
    return kind, level


def _level_order(level: str) -> tuple[int, float]:
    """Microvolt levels first, rising; then SNRs, noise rising (dB falling)."""
    number = "".join(c for c in level if c.isdigit() or c in ".-")
    value = float(number) if number else 0.0
    return (1, -value) if level.startswith("snr_") else (0, value)


def _flags_section(report: StudyReport) -> str:
    final = report.final
    items = []
    if final is not None:
        for rid, fr in final.finals.items():
            for name, why in fr.flags.items():
                items.append(
                    f"<li class='flag'><b>{escape(report.validation.run_names.get(rid, rid))}</b>: "
                    f"{escape(name)}: {escape(why)}</li>"
                )
    found = "<ul>" + "".join(items) + "</ul>" if items else "<p>No check fired on any finalist.</p>"
    legend = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in FLAG_EXPLANATIONS.items())
    return found + "<p class='note'>What each check means:</p><ul class='note'>" + legend + "</ul>"


def report_html(report: StudyReport, path: str | os.PathLike[str]) -> Path:
    """Write the report as one HTML file that opens offline; returns its path."""
    out = _common.check_path(path)
    from plotly.offline import get_plotlyjs

    figures: list[tuple[str, str, Any]] = [
        ("Validation front and final front", "front", _front_figure(report))
    ]
    curves = _per_finalist(
        report, "robust_acc_by_attack", "Robust accuracy of each finalist after each attack"
    )
    classes = _per_finalist(
        report, "robust_acc_by_class", "Robust accuracy by class (sensitivity under attack)"
    )
    parts = [
        f"<h1>nsr-tune study {escape(report.name)}</h1>",
        "<p class='note'>"
        + escape(
            f"experiment {report.experiment}; {report.experiment_path}; "
            f"split {report.params.get('split', '?')}; {len(report.costs)} trials"
        )
        + "</p>",
    ]

    def fig_html(fig: Any, div: str) -> str:
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div, config={"displaylogo": False})

    parts += [
        "<h2>Validation front and final front</h2>",
        "<p class='note'>Filled: every trial on validation beats under the search's cheap attack. Hollow, "
        "with 95% intervals: the finalists on test beats under the final protocol; a dotted line joins "
        "a trial's two points. Hover a point for its settings.</p>",
        fig_html(figures[0][2], "front"),
    ]
    parts += ["<h2>Finalists</h2>", _finalist_tables(report)]
    if curves is not None:
        parts += ["<h2>Robustness curves under each attack</h2>", fig_html(curves, "curves")]
    if classes is not None:
        parts += ["<h2>Per-class sensitivity under attack</h2>", fig_html(classes, "classes")]
    parts += ["<h2>Gradient-masking flags</h2>", _flags_section(report)]
    if report.hypervolume:
        parts += ["<h2>Hypervolume over trials</h2>", fig_html(_hv_figure(report), "hypervolume")]
    total = sum(c.seconds + c.final_seconds for c in report.costs.values())
    cpu_h = sum(c.cpu_hours for c in report.costs.values())
    gpu_h = sum(c.gpu_hours for c in report.costs.values())
    parts += [
        "<h2>Time per trial</h2>",
        f"<p class='note'>{total / 3600:.2f} h of trial time in all: {cpu_h:.2f} CPU-hours, "
        f"{gpu_h:.2f} GPU-hours (trial wall time x the resources each trial held).</p>",
        fig_html(_cost_figure(report), "cost"),
        "<h2>Search space</h2>",
        f"<pre>{escape(report.space_text)}</pre>",
    ]
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>nsr-tune report: {escape(report.name)}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
    data = page.encode("utf-8")
    return _common.save(out, lambda fh: fh.write(data))
