"""The search spaces shipped with nsr-tune, found by name; cheap to import (the command line lists
them in its help without loading anything else)."""

from __future__ import annotations

from pathlib import Path

from nsr_tune.errors import SpaceError

__all__ = ["SPACES_DIR", "resolve_space_path", "shipped_spaces"]

SPACES_DIR = Path(__file__).resolve().parent.parent / "search_spaces"


def shipped_spaces() -> tuple[str, ...]:
    """The names of the shipped spaces (e.g. `mitbih_wide`), sorted."""
    return tuple(sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))


def resolve_space_path(space: str | Path) -> Path:
    """A path to a YAML file, or the name of a space shipped with nsr-tune (e.g. `mitbih_wide`)."""
    path = Path(space)
    if path.is_file():
        return path
    shipped = SPACES_DIR / f"{path.stem}.yaml"
    if path.suffix in ("", ".yaml", ".yml") and shipped.is_file() and len(path.parts) <= 2:
        return shipped
    raise SpaceError(
        f"--space: {space}: no such file, and not a shipped space ({', '.join(shipped_spaces())})"
    )
