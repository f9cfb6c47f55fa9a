"""The findings' figures, drawn from their numbers (never from the runs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

COLOURS = {"ce": "#d95f02", "nsr": "#1b9e77"}
CLASSES = ("N", "S", "V", "F", "Q")


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _save(fig: plt.Figure, path: Path) -> None:
    # No timestamps in the PNG, so that an unchanged figure is an unchanged file.
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def robust_curves(numbers: Mapping[str, Any], path: Path, *, labels: Mapping[str, str]) -> None:
    """Robust accuracy against eps: per objective, PGD-100 dashed and the strong cascade solid,
    each with its 95% interval shaded."""
    eps = numbers["eps"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for objective, by in numbers["curves"].items():
        for protocol, style in (("standard", "--"), ("strong", "-")):
            c = by[protocol]
            points = [c["clean"]] + [c["robust"][str(e)] for e in eps]
            x = [eps[0] / 3, *eps]  # the clean point, left of the smallest eps
            y = [p["value"] for p in points]
            ax.plot(x, y, style, color=COLOURS[objective], marker="o", ms=3,
                    label=f"{objective.upper()}, {labels[protocol]} ({_seeds(c['n_seeds'])})")  # fmt: skip
            ax.fill_between(x, [p["low"] for p in points], [p["high"] for p in points],
                            color=COLOURS[objective], alpha=0.15, lw=0)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks([eps[0] / 3, *eps], ["clean", *(f"{e:g}" for e in eps)])
    ax.minorticks_off()
    ax.set_xlabel("eps (L-inf, units of the [0, 1]-scaled beat)")
    ax.set_ylabel("accuracy, class-balanced beats")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(
        "Intra-patient, the paper's CNN: robust accuracy (95% intervals, records resampled)", fontsize=9
    )
    _save(fig, path)


def confusions(recipes: Sequence[Mapping[str, Any]], path: Path) -> None:
    """One confusion matrix per recipe, summed over seeds, rows scaled to their class's beats."""
    fig, axes = plt.subplots(1, len(recipes), figsize=(3.4 * len(recipes), 3.4), squeeze=False)
    for ax, r in zip(axes[0], recipes, strict=True):
        m = np.array(r["confusion"], dtype=float)
        share = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(CLASSES)):
            for j in range(len(CLASSES)):
                ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.6 else "black")  # fmt: skip
        ax.set_xticks(range(len(CLASSES)), CLASSES)
        ax.set_yticks(range(len(CLASSES)), CLASSES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("annotated")
        ax.set_title(f"{r['recipe']}\n({_seeds(len(r['seeds']))})", fontsize=8)
    _save(fig, path)


def strong_bars(numbers: Mapping[str, Any], path: Path) -> None:
    """Robust balanced accuracy under the strong cascade per model and eps, with 95% intervals."""
    eps, rows = numbers["eps"], numbers["rows"]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    width = 0.8 / len(rows)
    for k, r in enumerate(rows):
        points = [r["clean"]] + [r["robust"][str(e)] for e in eps]
        x = np.arange(len(points)) + (k - (len(rows) - 1) / 2) * width
        y = np.array([p["value"] for p in points])
        err = np.array([[p["value"] - p["low"] for p in points], [p["high"] - p["value"] for p in points]])
        ax.bar(x, y, width, yerr=err, capsize=2, label=f"{r['recipe']} ({_seeds(r['n_seeds'])})")
    ax.set_xticks(range(len(eps) + 1), ["clean", *(f"eps {e:g}" for e in eps)])
    ax.set_ylabel("balanced accuracy, N, S, V, F")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Inter-patient (DS2), strong cascade (95% intervals, records resampled)", fontsize=9)
    _save(fig, path)


def moasha(numbers: Mapping[str, Any], path: Path) -> None:
    """Final hypervolume against trial-epochs: FIFO, MO-ASHA per trial order, other rung settings."""
    f, m = numbers["fifo"], numbers["moasha"]
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.scatter(m["trial_epochs"], m["hypervolume"], s=8, alpha=0.3, color="#7570b3",
               label=f"MO-ASHA, rungs {numbers['rungs']}, one point per trial order")  # fmt: skip
    ax.scatter([f["trial_epochs"]], [f["hypervolume"]], s=60, marker="s", color="#d95f02", label="FIFO")
    for o in numbers["other_rungs"]:
        x, y = o["trial_epochs_ratio"] * f["trial_epochs"], o["hypervolume_ratio"] * f["hypervolume"]
        ax.scatter([x], [y], s=30, marker="^", color="#666666")
        ax.annotate(f"{o['grace_epochs']}/{o['reduction_factor']}", (x, y), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")  # fmt: skip
    ax.axhline(0.98 * f["hypervolume"], color="#d95f02", lw=0.8, ls=":", label="98% of FIFO's hypervolume")
    ax.axvline(0.5 * f["trial_epochs"], color="#d95f02", lw=0.8, ls="--", label="half FIFO's trial-epochs")
    ax.set_xlabel("trial-epochs")
    ax.set_ylabel("final hypervolume (validation front)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("MO-ASHA replay (triangles: other grace/reduction settings, medians)", fontsize=9)
    _save(fig, path)
