"""Figures: files appear atomically, PNGs are real PNGs, the HTML is self-contained and says what it shows."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nsr_tune.errors import ConfigError
from nsr_tune.plots import pareto_figure_html, pareto_figure_png, robustness_curve_png
from nsr_tune.results.pareto import ParetoResult, pareto_analysis

pytest.importorskip("matplotlib")
pytest.importorskip("plotly")

CLEAN = "balanced accuracy (clean)"
ROBUST = "robust balanced accuracy @ eps=0.05"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result() -> ParetoResult:
    rng = np.random.default_rng(0)
    values = np.column_stack([0.8 + 0.15 * rng.random(30), 0.3 + 0.4 * rng.random(30)])
    values[4] = np.nan  # a failed trial
    ids = [f"trial_{i:02d}" for i in range(30)]
    return pareto_analysis(ids, values, names=[CLEAN, ROBUST], directions=["maximize", "maximize"])


@pytest.fixture(scope="module")
def labels(result: ParetoResult) -> dict[str, str]:
    return {id_: f"cnn nsr β={i / 10:g}" for i, id_ in enumerate(result.ids)}


@pytest.fixture(scope="module")
def test_values(result: ParetoResult) -> dict[str, tuple[float, float]]:
    index = {id_: i for i, id_ in enumerate(result.ids)}
    # Held-out values slightly below validation; one dominated trial too, which must be ignored.
    out = {i: tuple(float(v) - 0.01 for v in result.values[index[i]]) for i in result.front_ids}
    out[result.ids[int(np.flatnonzero(result.ranks > 0)[0])]] = (0.5, 0.5)
    return out


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def plotly_strings(html: str) -> str:
    """The HTML with the \\u escapes that plotly's JSON writes for <, >, /, & and — undone, to read the
    strings it stores."""
    for code, char in (("003c", "<"), ("003e", ">"), ("002f", "/"), ("0026", "&"), ("2014", "—")):
        html = html.replace("\\u" + code, char)
    return html


def assert_single_file(directory: Path, name: str) -> None:
    # Nothing but the figure: no temporary file left behind.
    assert [p.name for p in directory.iterdir()] == [name]


# --------------------------------------------------------------------------------------------------
# Pareto PNG
# --------------------------------------------------------------------------------------------------


def test_pareto_png_is_written(tmp_path: Path, result: ParetoResult, labels, test_values) -> None:
    path = tmp_path / "nested" / "dir" / "pareto.png"
    out = pareto_figure_png(result, path, labels=labels, test_values=test_values, title="A study")
    assert out == path
    width, height = png_size(path)
    # 7 × 5.6 inches at 150 dpi, trimmed or grown a little by the tight bounding box.
    assert 800 < width < 1600 and 600 < height < 1300
    assert path.stat().st_size > 20_000
    assert_single_file(path.parent, "pareto.png")


def test_pareto_png_overwrites_and_accepts_str(tmp_path: Path, result: ParetoResult) -> None:
    path = tmp_path / "pareto.png"
    path.write_bytes(b"old")
    out = pareto_figure_png(result, str(path))
    assert out == path and path.read_bytes()[:8] == PNG_MAGIC
    assert_single_file(tmp_path, "pareto.png")


@pytest.mark.parametrize("directions", [["minimize", "maximize"], ["maximize", "minimize"], ["minimize"] * 2])
def test_pareto_png_other_directions(tmp_path: Path, directions: list[str]) -> None:
    values = np.random.default_rng(1).random((12, 2))
    result = pareto_analysis(
        [f"t{i}" for i in range(12)], values, names=["err", "acc"], directions=directions
    )
    png_size(pareto_figure_png(result, tmp_path / "p.png"))


def test_pareto_png_degenerate_studies(tmp_path: Path) -> None:
    names = [CLEAN, ROBUST]
    nothing = pareto_analysis(["a", "b"], [[np.nan, np.nan]] * 2, names=names, directions=["maximize"] * 2)
    one = pareto_analysis(["a"], [[0.9, 0.4]], names=names, directions=["maximize"] * 2)
    same = pareto_analysis(["a", "b"], [[0.9, 0.4]] * 2, names=names, directions=["maximize"] * 2)
    for i, res in enumerate([nothing, one, same]):
        png_size(pareto_figure_png(res, tmp_path / f"{i}.png"))


def test_failed_write_leaves_nothing(tmp_path: Path, result: ParetoResult, monkeypatch) -> None:
    from matplotlib.figure import Figure

    def broken(self, fname, **kwargs):
        fname.write(b"half a png")  # an open file: the figure is written atomically through it
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        pareto_figure_png(result, tmp_path / "pareto.png")
    assert list(tmp_path.iterdir()) == []


def test_figures_are_readable_per_umask(tmp_path: Path, result: ParetoResult) -> None:
    # Not tempfile's 0600: a web server or another user must be able to read the figures.
    old = os.umask(0o022)
    try:
        paths = [
            pareto_figure_png(result, tmp_path / "p.png"),
            pareto_figure_html(result, tmp_path / "p.html"),
            robustness_curve_png([0.0, 0.1], {"acc": [0.9, 0.5]}, tmp_path / "r.png"),
        ]
    finally:
        os.umask(old)
    assert {p.stat().st_mode & 0o777 for p in paths} == {0o644}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.html", "p.png", "r.png"]


# --------------------------------------------------------------------------------------------------
# Pareto HTML
# --------------------------------------------------------------------------------------------------


def test_pareto_html_is_self_contained(tmp_path: Path, result: ParetoResult, labels, test_values) -> None:
    hover = {id_: {"arch": "cnn", "lr": 0.00123} for id_ in result.ids}
    path = tmp_path / "out" / "pareto.html"
    out = pareto_figure_html(
        result, path, labels=labels, test_values=test_values, hover=hover, title="A study"
    )
    assert out == path
    text = path.read_text(encoding="utf-8")
    assert_single_file(path.parent, "pareto.html")
    for id_ in result.ids:
        if result.ranks[result.ids.index(id_)] >= 0:
            assert id_ in text
    assert CLEAN in text and ROBUST in text
    assert "test (held out)" in text and "arch: cnn" in text and "lr: 0.00123" in text
    # plotly.js is inline (several MB) and no script is fetched from anywhere.
    assert len(text) > 1_000_000
    assert re.search(r"<script[^>]*\bsrc\s*=", text, flags=re.IGNORECASE) is None


def test_pareto_html_escapes_user_text(tmp_path: Path) -> None:
    # plotly renders tags in hover text and labels; user text must arrive as entities.
    result = pareto_analysis(["<b>x</b>"], [[0.9, 0.4]], names=["a", "b"], directions=["maximize"] * 2)
    path = pareto_figure_html(result, tmp_path / "p.html", labels={"<b>x</b>": "<i>alert(1)</i>"})
    text = plotly_strings(path.read_text(encoding="utf-8"))
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "&lt;i&gt;alert(1)&lt;/i&gt;" in text
    assert "<i>alert(1)" not in text


@pytest.fixture(scope="module")
def flagged(result: ParetoResult) -> list[str]:
    # A front trial, a dominated one, and the failed trial (no values: nothing to ring, no error).
    dominated = result.ids[int(np.flatnonzero(result.ranks > 0)[0])]
    return [result.front_ids[0], dominated, "trial_04"]


def test_flagged_trials_get_a_ring_and_a_legend_entry(
    tmp_path: Path, result: ParetoResult, labels, test_values, flagged
) -> None:
    png = pareto_figure_png(
        result, tmp_path / "p.png", labels=labels, test_values=test_values, flagged=flagged
    )
    plain = pareto_figure_png(result, tmp_path / "plain.png", labels=labels, test_values=test_values)
    png_size(png)
    assert png.read_bytes() != plain.read_bytes()
    path = pareto_figure_html(result, tmp_path / "p.html", flagged=flagged)
    text = plotly_strings(path.read_text(encoding="utf-8"))
    assert text.count("gradient masking flagged (distrust its robustness)") == 1  # the legend entry
    # The flagged trials with values get a ring whose hover says why; the failed one has none.
    for id_ in flagged[:2]:
        assert f"<b>{id_}</b> — gradient masking flagged" in text
    assert "<b>trial_04</b> — gradient masking flagged" not in text


# --------------------------------------------------------------------------------------------------
# validation of the Pareto figures
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", [pareto_figure_png, pareto_figure_html])
def test_pareto_figure_validation(tmp_path: Path, result: ParetoResult, writer) -> None:
    path = tmp_path / "f"
    three = pareto_analysis(["a"], [[1, 2, 3]], names=list("xyz"), directions=["maximize"] * 3)
    cases = [
        (lambda: writer(three, path), "result"),
        (lambda: writer(result, path, test_values={result.front_ids[0]: (0.1, 0.2, 0.3)}), "test_values"),
        (lambda: writer(result, path, test_values={result.front_ids[0]: (0.1, np.inf)}), "test_values"),
        (lambda: writer(result, tmp_path), "path"),
        (lambda: writer(result, path, flagged=result.ids[0]), "flagged"),  # one id, not a collection
        (lambda: writer(result, path, flagged=[result.ids[0], "no_such_trial"]), "flagged"),
    ]
    for call, argument in cases:
        with pytest.raises(ConfigError, match=rf"^{re.escape(argument)}\b"):
            call()
    assert list(tmp_path.iterdir()) == []  # validated before any work


# --------------------------------------------------------------------------------------------------
# robustness curve
# --------------------------------------------------------------------------------------------------

EPS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2]
CURVES = {
    "robust accuracy": [0.95, 0.88, 0.78, 0.52, 0.31, 0.12],
    "robust balanced accuracy": [0.91, 0.83, 0.71, 0.45, 0.25, float("nan")],
    "white noise accuracy": [0.95, 0.95, 0.94, 0.93, 0.89, 0.78],
}


@pytest.mark.parametrize("eps_uv", [None, [e * 1000 for e in EPS]], ids=["plain", "microvolts"])
def test_robustness_curve_is_written(tmp_path: Path, eps_uv) -> None:
    path = tmp_path / "a" / "robust.png"
    assert robustness_curve_png(EPS, CURVES, path, eps_uv=eps_uv, title="cnn") == path
    width, height = png_size(path)
    assert 700 < width < 1400 and 450 < height < 1000
    assert_single_file(path.parent, "robust.png")


def test_robustness_curve_single_point(tmp_path: Path) -> None:
    png_size(robustness_curve_png([0.0], {"clean": [0.9]}, tmp_path / "r.png"))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"eps": []}, "eps"),
        ({"eps": [0.0, 0.02, 0.01, 0.05, 0.1, 0.2]}, "eps"),
        ({"eps": [-0.01, 0.01, 0.02, 0.05, 0.1, 0.2]}, "eps"),
        ({"curves": {}}, "curves"),
        ({"curves": {"acc": [0.9, 0.8]}}, "curves"),
        ({"curves": {"acc": [95, 88, 78, 52, 31, 12]}}, "curves"),
        ({"eps_uv": [0, 10]}, "eps_uv"),
        ({"eps_uv": [0, 10, 20, 50, 100, np.nan]}, "eps_uv"),
    ],
)
def test_robustness_curve_validation(tmp_path: Path, kwargs: dict, argument: str) -> None:
    args = {"eps": EPS, "curves": CURVES, "eps_uv": None, "title": None, **kwargs}
    with pytest.raises(ConfigError, match=rf"^{argument}\b"):
        robustness_curve_png(
            args["eps"], args["curves"], tmp_path / "r.png", eps_uv=args["eps_uv"], title=args["title"]
        )
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# no global state
# --------------------------------------------------------------------------------------------------


def test_no_pyplot_and_lazy_imports(tmp_path: Path) -> None:
    """Importing the module loads no plotting library, and drawing never touches pyplot."""
    code = f"""
import sys
import nsr_tune.plots as plots
assert "matplotlib" not in sys.modules and "plotly" not in sys.modules, "imported at module import"
plots.robustness_curve_png([0, 0.1], {{"acc": [0.9, 0.5]}}, {str(tmp_path / "r.png")!r})
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
"""
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("part", "norm", "title"),
    [
        ("val", "linf", "validation robustness (PGD, L-inf)"),
        ("test", "l2", "test robustness (PGD, L2)"),
    ],
)
def test_the_robustness_title_names_the_norm_the_space_evaluates_with(part, norm, title):
    from nsr_tune.plots import robustness_title

    assert robustness_title(part, norm) == title
