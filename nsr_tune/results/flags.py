"""The masking flags a trial's evaluation raised, as its reports, tags and tables carry them.

A flag (see nsr_tune.evaluation.masking) is a reason to distrust a robust accuracy. A final
report keeps each evaluated part's flags as `PART_flags` (name -> the line saying what was
seen) and their count as `PART_masking_flags`; MLflow tags and the front's tables write them
as labels such as `test:zero_gradients`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FLAG_PARTS",
    "NO_FLAGS",
    "MaskingFlag",
    "flag_metrics",
    "flags_text",
    "parse_flags_text",
    "reported_flags",
]

# The evaluated parts whose masking flags a final report carries, in the order they are listed.
FLAG_PARTS = ("val", "test")
# What the MLflow tag and pareto.csv say of a trial that no check flagged.
NO_FLAGS = "none"


@dataclass(frozen=True)
class MaskingFlag:
    """One gradient-masking check that fired on one evaluated part of a trial (see
    nsr_tune.evaluation.masking)."""

    part: str  # "val" or "test"
    name: str  # one of nsr_tune.evaluation.masking.FLAGS
    why: str  # the one line saying what the check saw

    @property
    def label(self) -> str:
        """How tables, tags and figures name it, e.g. `test:zero_gradients`."""
        return f"{self.part}:{self.name}"


def flag_metrics(part: str, flags: Mapping[str, str]) -> dict[str, Any]:
    """What a final report says of one part's masking flags (name -> explanation).

    The count is a number, so the tracker logs it as a metric and a run can be filtered on it;
    the flags themselves are text, which the tracker keeps as tags instead.
    """
    return {f"{part}_masking_flags": float(len(flags)), f"{part}_flags": dict(flags)}


def reported_flags(report: Mapping[str, Any]) -> tuple[MaskingFlag, ...]:
    """The masking flags of a final report, validation first (none for a report without them)."""
    out: list[MaskingFlag] = []
    for part in FLAG_PARTS:
        flags = report.get(f"{part}_flags")
        if isinstance(flags, Mapping):
            out += [MaskingFlag(part, str(name), str(why)) for name, why in flags.items()]
    return tuple(out)


def flags_text(labels: Sequence[str], *, none: str = NO_FLAGS) -> str:
    """Flag labels as one comma-separated text (`val:zero_gradients,test:zero_gradients`), or `none`."""
    return ",".join(labels) if labels else none


def parse_flags_text(text: str | None) -> tuple[str, ...]:
    """The labels that `flags_text` wrote; nothing for a run recorded before flags were kept."""
    if not text or text == NO_FLAGS:
        return ()
    return tuple(label.strip() for label in text.split(",") if label.strip())
