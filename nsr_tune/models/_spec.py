"""What the model registry knows of a model: its constructor, knobs and what inputs it takes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from nsr_tune.plugins import Plugin

__all__ = ["ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    constructor: Callable[..., nn.Module]
    # knob -> (type, default, smallest allowed value)
    knobs: Mapping[str, tuple[type, Any, Any]]
    description: str
    multi_lead: bool = False  # takes any number of leads (`in_leads`) and any length
    sized: bool = False  # built for one input width (`length`): its layers' sizes depend on it
    # A model from another package (nsr_tune.models.model_spec): built with `in_leads`, `length`
    # and `n_classes` always, and offered for every dataset whose inputs it takes.
    plugin: Plugin | None = None
