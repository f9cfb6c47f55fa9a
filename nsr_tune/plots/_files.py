"""A study's front and final front as the files its parent run and `nsr-tune pareto` write."""

from __future__ import annotations

from pathlib import Path

from nsr_tune._io import atomic_write
from nsr_tune.plots._final_png import final_front_png
from nsr_tune.plots._pareto_html import pareto_figure_html
from nsr_tune.plots._pareto_png import pareto_figure_png
from nsr_tune.results.finalists import FinalFront, final_csv
from nsr_tune.results.flags import flags_text
from nsr_tune.results.front import StudyFront, front_csv

_FRONT_TITLE = "Pareto front on validation objectives (test values beside)"


def write_front_files(front: StudyFront, out_dir: Path, *, html: bool = True) -> dict[str, Path]:
    """pareto.csv, and for two objectives pareto.png and (with `html`) pareto.html, in `out_dir`.

    A study's parent run in MLflow takes no pareto.html: its report.html holds the interactive
    front, and one plotly.js (about 4.5 MB) per run is enough.
    """
    result = front.result
    text = front_csv(front)
    files = {"csv": atomic_write(Path(out_dir) / "pareto.csv", lambda fh: fh.write(text.encode()))}
    if len(result.names) != 2 or len(result.ids) == 0:
        return files
    labels = {rid: front.run_names[rid] for rid in result.ids}
    tests = {rid: front.test_values[rid] for rid in result.ids}
    flagged = [rid for rid in result.ids if rid in front.flags]
    files["png"] = pareto_figure_png(
        result,
        Path(out_dir) / "pareto.png",
        labels=labels,
        test_values=tests,
        flagged=flagged,
        title=_FRONT_TITLE,
    )
    if not html:
        return files
    hover = {
        rid: {
            "run": front.run_names[rid],
            **dict(zip(front.test_names, tests[rid], strict=True)),
            "masking flags": flags_text(front.flags.get(rid, ())),
        }
        for rid in result.ids
    }
    files["html"] = pareto_figure_html(
        result,
        Path(out_dir) / "pareto.html",
        labels=labels,
        test_values=tests,
        hover=hover,
        flagged=flagged,
        title=_FRONT_TITLE,
    )
    return files


def write_final_files(front: FinalFront, out_dir: Path) -> dict[str, Path]:
    """final_front.csv, and for two objectives final_front.png (both fronts in one figure)."""
    text = final_csv(front)
    files = {"csv": atomic_write(Path(out_dir) / "final_front.csv", lambda fh: fh.write(text.encode()))}
    if len(front.names) == 2 and len(front.result.ids) > 0:
        files["png"] = final_front_png(
            front.validation.result,
            front.result,
            Path(out_dir) / "final_front.png",
            intervals=front.intervals,
            labels=dict(front.validation.run_names),
            fell_off=list(front.fell_off),
            flagged=[rid for rid, f in front.finals.items() if f.flags],
        )
    return files
