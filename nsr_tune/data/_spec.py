"""What the data registry knows of a dataset (Dataset), and what loading one gives (Loaded)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nsr_tune.config import DataConfig
from nsr_tune.data._splits import SplitData
from nsr_tune.metrics import Objective
from nsr_tune.plugins import Plugin

__all__ = ["Dataset", "InputShape", "Loaded"]


@dataclass(frozen=True)
class Loaded:
    """A dataset read and split: the parts, where they came from, and a fingerprint of the data."""

    splits: SplitData
    data_dir: Path
    fingerprint: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    classes: tuple[str, ...]
    splits: tuple[str, ...]  # the first is the default
    # The standard protocol's noise levels (L-inf, in units of the scaled input), and the quick
    # protocol's (what a study scores its trials with on validation data).
    eps: tuple[float, ...]
    quick_eps: tuple[float, ...]
    models: tuple[str, ...]  # the models offered for it; the first is the default
    # What a study optimises when its space names no objectives.
    objectives: tuple[Objective, ...]
    # The DataConfig fields only this dataset reads: another dataset refuses them set.
    settings: tuple[str, ...]
    # The inputs a config of it asks for: (leads, samples per input, or None where they vary).
    shape: Callable[[DataConfig], tuple[int, int | None]]
    load: Callable[[DataConfig, str | Path | None, bool], Loaded]
    # Set for a dataset from another package (nsr_tune.data.dataset_spec).
    plugin: Plugin | None = None


@dataclass(frozen=True)
class InputShape:
    """What a model built for a DataConfig takes and gives: (B, leads, length) -> (B, classes)."""

    leads: int
    length: int | None  # samples per input; None where inputs vary in length (CPSC2018 records)
    classes: int
