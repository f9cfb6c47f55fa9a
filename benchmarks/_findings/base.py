"""A finding: the claim it tests, the runs behind it, its numbers, figure and verdict."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _findings.common import Settings
from _findings.runs import Run


class Finding:
    """Subclasses set the class attributes and write `runs`, `summarise` and `body`."""

    name: str = ""
    title: str = ""
    claim: str = ""
    # Said on the page when the finding could not run here (no data, no GPU): why.
    not_here: str = ""
    # Markdown shown under the section whether or not it has numbers (a larger run, say).
    note: str = ""

    def runs(self, s: Settings) -> list[Run]:
        """Every run the finding reads, its inputs' runs included."""
        raise NotImplementedError

    def summarise(self, s: Settings, done: Mapping[str, dict], root: Path) -> dict[str, Any] | None:
        """Its numbers from the finished runs (`done`: run name -> run.json), or None when too
        few have finished to say anything. The dict holds `verdict`, one sentence."""
        raise NotImplementedError

    def figure(self, numbers: Mapping[str, Any], path: Path) -> bool:
        """Draw the PNG at `path`; False when the finding has none."""
        return False

    def body(self, numbers: Mapping[str, Any]) -> str:
        """The section's Markdown between the verdict and the provenance: tables and notes."""
        raise NotImplementedError
