"""Accuracy against attack budget: one line per measure, ticks at the budgets evaluated."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nsr_tune.errors import ConfigError
from nsr_tune.plots._common import check_path, new_figure, save_png


def _check_curves(
    eps: Sequence[float], curves: Mapping[str, Sequence[float]], eps_uv: Sequence[float] | None
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """The budgets, curves and microvolt budgets as arrays; refuses what would draw a broken figure."""
    e = np.asarray(eps, dtype=np.float64)
    if e.ndim != 1 or e.size == 0:
        raise ConfigError(f"eps: must be a non-empty 1-D sequence; got shape {e.shape}")
    if not np.isfinite(e).all() or (e < 0).any():
        raise ConfigError(f"eps: must be finite and >= 0 (0 is the clean point); got {e.tolist()}")
    if (np.diff(e) <= 0).any():
        raise ConfigError(f"eps: must be strictly increasing; got {e.tolist()}")
    if not curves:
        raise ConfigError("curves: must be a non-empty mapping from curve name to accuracies")
    ys: dict[str, np.ndarray] = {}
    for name, values in curves.items():
        y = np.asarray(values, dtype=np.float64)
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
        uv = np.asarray(eps_uv, dtype=np.float64)
        if uv.shape != e.shape:
            raise ConfigError(f"eps_uv: must have one value per eps ({e.size}); got shape {uv.shape}")
        if not np.isfinite(uv).all() or (uv < 0).any():
            raise ConfigError(f"eps_uv: must be finite and >= 0; got {uv.tolist()}")
    return e, ys, uv


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


_NORM_NAMES = {"linf": "L-inf", "l2": "L2"}


def robustness_title(part: str, norm: str, *, attack: str = "PGD") -> str:
    """The title of a trial's robustness figure, e.g. "test robustness (PGD, L2)"."""
    where = {"val": "validation", "test": "test"}.get(part, part)
    return f"{where} robustness ({attack}, {_NORM_NAMES.get(norm, norm)})"


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
    out = check_path(path)

    fig = new_figure((6.4, 4.4))
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
    return save_png(fig, out)
