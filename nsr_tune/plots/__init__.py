"""Figures of a study: the Pareto front (PNG and interactive HTML) and accuracy against attack budget.

Computing lives in :mod:`nsr_tune.results`; this package only reads it and draws, one module per
figure, with what they share in ``_common``. matplotlib and plotly are imported inside the functions
and nothing here imports torch, so importing this package is cheap and needs none of them. The PNGs
are drawn on a bare :class:`matplotlib.figure.Figure` with an Agg canvas: no pyplot, no global backend
switch, nothing left open, safe from worker threads. The HTML embeds plotly.js (about 4 MB) because
the MLflow UI and offline machines cannot fetch it from a CDN.

Every writer creates the parent directories and writes atomically (:func:`nsr_tune._io.atomic_write`),
so a reader (MLflow, a browser) never sees half a file. Each returns the path.
"""

from __future__ import annotations

from nsr_tune.plots._curves import robustness_curve_png, robustness_title
from nsr_tune.plots._files import write_final_files, write_front_files
from nsr_tune.plots._final_png import final_front_png
from nsr_tune.plots._pareto_html import pareto_figure_html
from nsr_tune.plots._pareto_png import pareto_figure_png
from nsr_tune.plots._report_html import report_html

__all__ = [
    "final_front_png",
    "pareto_figure_html",
    "pareto_figure_png",
    "report_html",
    "robustness_curve_png",
    "robustness_title",
    "write_final_files",
    "write_front_files",
]
