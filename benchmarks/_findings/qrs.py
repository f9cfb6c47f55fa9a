"""Finding 8: the QRS detector inside `rrcnn`, against the reference annotations and xqrs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _findings.base import Finding
from _findings.common import Settings
from _findings.runs import Run

BUNDLED = "nsr_tune/data/bundled/mitdb"


class Qrs(Finding):
    name = "qrs"
    title = "The R-peak detector inside rrcnn, against the reference annotations and xqrs"
    claim = (
        "The differentiable QRS detector that gives `rrcnn` its RR intervals finds the annotated R "
        "peaks about as well as a maintained detector, WFDB's xqrs."
    )

    def runs(self, s: Settings) -> list[Run]:
        data = ("--data-dir", BUNDLED, "--records", "213") if s.quick else ("--data-dir", s.mitdb)
        argv = ("python", "benchmarks/qrs_detectors.py", *data, "--out", s.path("qrs", "qrs.json"))
        return [Run("qrs", argv)]

    def summarise(self, s: Settings, done: Mapping[str, dict], root: Path) -> dict[str, Any] | None:
        if "qrs" not in done:
            return None
        got = json.loads((root / "qrs" / "qrs.json").read_text())
        ours, xqrs = got["rrcnn"], got["xqrs"]
        worst = sorted(
            ours["records"], key=lambda r: min(ours["records"][r]["se"], ours["records"][r]["ppv"])
        )
        o, x = ours["overall"], xqrs["overall"]
        got["worst"] = worst[:3]
        got["verdict"] = (
            f"On {len(ours['records'])} records the detector finds the annotated beats with Se {o['se']:.4f} "
            f"and +P {o['ppv']:.4f}, against xqrs's {x['se']:.4f} and {x['ppv']:.4f}, in "
            f"{ours['detector_seconds']:.0f} s against {xqrs['detector_seconds']:.0f} s; its worst records "
            f"are {', '.join(worst[:3])}."
        )
        return got

    def body(self, numbers: Mapping[str, Any]) -> str:
        ours, xqrs = numbers["rrcnn"], numbers["xqrs"]
        lines = [
            "| record | rrcnn Se | rrcnn +P | xqrs Se | xqrs +P | beats |",
            "|---|---|---|---|---|---|",
        ]
        rest = sorted(r for r in ours["records"] if r not in numbers["worst"])
        for r in [*numbers["worst"], "overall", *rest]:
            a = ours["overall"] if r == "overall" else ours["records"][r]
            b = xqrs["overall"] if r == "overall" else xqrs["records"][r]
            name = f"**{r}**" if r == "overall" else r
            cells = f"{a['se']:.4f} | {a['ppv']:.4f} | {b['se']:.4f} | {b['ppv']:.4f}"
            lines.append(f"| {name} | {cells} | {a['tp'] + a['fn']} |")
        lines.append(
            f"\nThe worst three records of the detector first, then all records. A detection matches a "
            f"reference beat within {numbers['match_window_s'] * 1000:.0f} ms (`wfdb.processing."
            "compare_annotations`, at 360 Hz); the reference beats are every WFDB QRS code "
            f"(`{numbers['reference']}`), paced records included. rrcnn's detector runs on the lead "
            "resampled to 125 Hz, as the model sees it, in 11.5 s windows; xqrs on the 360 Hz lead. "
            "`tests/test_oracle_qrs.py` holds the detector to floors below these figures."
        )
        return "\n".join(lines)
