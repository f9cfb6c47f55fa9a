"""The pieces a search-space file is read with: search domains, and a reader that names the key.

A YAML value in a searchable place is either fixed (a plain value) or a domain:

    {choice: [a, b, c]}
    {float: [low, high], log: true}            # log and step are optional
    {float: [low, high], log: true, include_zero: true}   # 0 is reachable too (a baseline)
    {int: [low, high], log: false, step: 2}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nsr_tune.errors import ConfigError, SpaceError

__all__ = ["Domain", "Reader", "Value", "check_with_config"]


@dataclass(frozen=True)
class Domain:
    """One searched value: a categorical choice, or a float/int range."""

    kind: str  # "choice" | "float" | "int"
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    include_zero: bool = False

    def suggest(self, trial: Any, name: str) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.choices))
        if self.include_zero and trial.suggest_categorical(f"{name}.is_zero", [False, True]):
            return 0.0
        if self.kind == "int":
            return trial.suggest_int(
                name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def values_for_check(self) -> list[Any]:
        """Representative values, to check a domain against the config's own rules."""
        if self.kind == "choice":
            return list(self.choices)
        values = [self.low, self.high]
        return (
            [int(v) for v in values] if self.kind == "int" else values + ([0.0] if self.include_zero else [])
        )


Value = Any  # a fixed value or a Domain


class Reader:
    """Walks the YAML with the key path in hand, so every error can name where it is."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, message: str) -> SpaceError:
        return SpaceError(f"{self.where}: {key}: {message}")

    def mapping(self, node: Any, key: str, allowed: Sequence[str] | None = None) -> dict[str, Any]:
        if node is None:
            return {}
        if not isinstance(node, Mapping):
            raise self.fail(key, f"expected a mapping, got {type(node).__name__} {node!r}")
        for k in node:
            if not isinstance(k, str):
                raise self.fail(key, f"keys must be strings, got {k!r}")
        if allowed is not None:
            unknown = sorted(set(node) - set(allowed))
            if unknown:
                raise self.fail(
                    f"{key}.{unknown[0]}" if key else unknown[0],
                    f"unknown key; expected one of {', '.join(allowed)}",
                )
        return dict(node)

    def number(self, node: Any, key: str, *, integer: bool = False, low: float | None = None) -> Any:
        ok = isinstance(node, int) if integer else isinstance(node, (int, float))
        if not ok or isinstance(node, bool) or (isinstance(node, float) and not math.isfinite(node)):
            raise self.fail(key, f"expected {'an integer' if integer else 'a number'}, got {node!r}")
        if low is not None and node < low:
            raise self.fail(key, f"must be >= {low}, got {node!r}")
        return node

    def value(self, node: Any, key: str, *, kind: type | tuple[type, ...]) -> Value:
        """A fixed value of `kind`, or a domain over such values."""
        if isinstance(node, Mapping):
            return self.domain(node, key, kind=kind)
        self._check_kind(node, key, kind)
        return node

    def _check_kind(self, node: Any, key: str, kind: type | tuple[type, ...]) -> None:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if bool not in kinds and isinstance(node, bool):
            raise self.fail(key, f"expected {_kind_name(kinds)}, got {node!r}")
        if float in kinds and isinstance(node, int) and not isinstance(node, bool):
            return
        if not isinstance(node, kinds):
            raise self.fail(key, f"expected {_kind_name(kinds)}, got {type(node).__name__} {node!r}")

    def domain(self, node: Mapping[str, Any], key: str, *, kind: type | tuple[type, ...]) -> Domain:
        node = self.mapping(node, key, ("choice", "float", "int", "log", "step", "include_zero"))
        kinds = [k for k in ("choice", "float", "int") if k in node]
        if len(kinds) != 1:
            raise self.fail(key, "a search domain needs exactly one of choice, float, int")
        which = kinds[0]
        if which == "choice":
            choices = node["choice"]
            if not isinstance(choices, list):
                raise self.fail(key, f"choice: expected a list, got {choices!r}")
            if not choices:
                raise self.fail(key, "choice: empty list of choices")
            for c in choices:
                self._check_kind(c, key, kind)
            extra = set(node) - {"choice"}
            if extra:
                raise self.fail(key, f"{sorted(extra)[0]}: only for float and int ranges")
            return Domain("choice", tuple(choices))
        kinds_t = kind if isinstance(kind, tuple) else (kind,)
        if which == "float" and float not in kinds_t:
            raise self.fail(key, f"a float range is not allowed here (expected {_kind_name(kinds_t)})")
        if which == "int" and int not in kinds_t:
            raise self.fail(key, f"an int range is not allowed here (expected {_kind_name(kinds_t)})")
        bounds = node[which]
        if not (isinstance(bounds, list) and len(bounds) == 2):
            raise self.fail(key, f"{which}: expected [low, high], got {bounds!r}")
        low = self.number(bounds[0], f"{key}.{which}[0]", integer=which == "int")
        high = self.number(bounds[1], f"{key}.{which}[1]", integer=which == "int")
        if low > high:
            raise self.fail(key, f"low {low} > high {high}")
        log = node.get("log", False)
        if not isinstance(log, bool):
            raise self.fail(f"{key}.log", f"expected true or false, got {log!r}")
        if log and low <= 0:
            raise self.fail(key, f"a log range needs low > 0, got {low}")
        step = node.get("step")
        if step is not None:
            step = self.number(step, f"{key}.step", integer=which == "int", low=0)
            if log:
                raise self.fail(key, "step and log cannot be combined")
        include_zero = node.get("include_zero", False)
        if not isinstance(include_zero, bool):
            raise self.fail(f"{key}.include_zero", f"expected true or false, got {include_zero!r}")
        return Domain(which, low=low, high=high, log=log, step=step, include_zero=include_zero)


def _kind_name(kinds: Sequence[type]) -> str:
    return " or ".join(
        {bool: "true/false", int: "an integer", float: "a number", str: "a string"}[k] for k in kinds
    )


def check_with_config(reader: Reader, key: str, value: Value, build: Any) -> None:
    """Run the config class's own checks on every representative value of a (possibly searched) field."""
    for v in value.values_for_check() if isinstance(value, Domain) else [value]:
        try:
            build(v)
        except ConfigError as e:
            raise reader.fail(key, str(e)) from e
