"""Checks of configuration values; each failure is a ConfigError that names the field."""

from __future__ import annotations

import math
from typing import Any

from nsr_tune.errors import ConfigError

__all__ = ["check", "choice", "finite_number", "levels", "positive_int", "sequence", "whole_number"]


def check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {message}")


def positive_int(value: Any, name: str, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    check(
        isinstance(value, int) and not isinstance(value, bool) and value > 0,
        name,
        f"must be a positive integer, got {value!r}",
    )


def whole_number(value: Any, name: str) -> None:
    """An integer >= 0 (a count that may be zero)."""
    check(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        name,
        f"must be a whole number >= 0, got {value!r}",
    )


def finite_number(value: Any, name: str, *, low: float | None = None, low_open: bool = False) -> None:
    check(
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        name,
        f"must be a finite number, got {value!r}",
    )
    if low is not None:
        ok = value > low if low_open else value >= low
        check(ok, name, f"must be {'>' if low_open else '>='} {low}, got {value!r}")


def choice(value: Any, name: str, choices: tuple[str, ...]) -> None:
    check(value in choices, name, f"must be one of {', '.join(choices)}; got {value!r}")


def sequence(value: Any, name: str, what: str) -> tuple[Any, ...]:
    """A list or tuple from YAML, JSON or Python as a tuple: the one place a sequence is typed."""
    check(isinstance(value, (list, tuple)), name, f"must be a list of {what}")
    return tuple(value)


def levels(value: Any, name: str, what: str, *, positive: bool = True) -> tuple[float, ...]:
    """Numeric levels (noise levels, microvolts, dB) as a float tuple, each checked."""
    values = sequence(value, name, what)
    for v in values:
        finite_number(v, name, low=0.0 if positive else None, low_open=positive)
    return tuple(float(v) for v in values)
