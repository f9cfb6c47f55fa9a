"""Objectives from other packages: the contract, checked when the plugin is loaded and when it runs.

An objective plugin is a function (or any callable)

    loss_fn(model, x (B, leads, L), y (B,), *, config: MyConfig, mask (B, 1, L), generator)
        -> (loss, logs)  or  ObjectiveOutput(loss, logits, logs)

whose `config` parameter is annotated with its own frozen dataclass: every field has a default,
and its `__post_init__` checks the values. A study or the command line fills that config from
`ObjectiveConfig.params`; each field is searchable like a built-in objective's `beta`. `loss`
is a scalar tensor with a gradient; `logs` maps names to floats (the loss's parts, for progress
and MLflow). Returning (loss, logs) costs one more forward without gradients for the training
accuracy; an ObjectiveOutput carries the clean logits (B, C) itself.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from nsr_tune.config import ObjectiveConfig
from nsr_tune.errors import ConfigError, PluginError
from nsr_tune.objectives._base import ObjectiveOutput
from nsr_tune.plugins import Plugin, load_plugin

__all__ = ["ObjectivePlugin", "PluginObjective", "plugin_objective"]

_ARGS = ("model", "x", "y")
_KEYWORDS = ("config", "mask", "generator")


@runtime_checkable
class ObjectivePlugin(Protocol):
    """What nsr-tune calls to train with a plugin objective (see the module's docstring)."""

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        config: Any,
        mask: torch.Tensor,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, Mapping[str, float]] | ObjectiveOutput: ...


@dataclass(frozen=True)
class PluginObjective:
    """A plugin objective that holds its contract, with its config type."""

    plugin: Plugin
    config_type: type

    @property
    def fields(self) -> dict[str, tuple[type, Any]]:
        """Each setting's type (that of its default) and default."""
        out = {}
        for f in dataclasses.fields(self.config_type):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            out[f.name] = (type(default), default)
        return out

    def config(self, params: Mapping[str, Any]) -> Any:
        """The plugin's own config from `params`; ConfigError names the setting that is wrong."""
        name = self.plugin.name
        unknown = sorted(set(params) - set(self.fields))
        if unknown:
            raise ConfigError(
                f"objective.{unknown[0]}: not a setting of {name!r}; "
                f"its settings are {', '.join(self.fields) or 'none'}"
            )
        try:
            return self.config_type(**params)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"objective {name!r}: {e}") from e

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        config: ObjectiveConfig,
        mask: torch.Tensor,
        generator: torch.Generator,
    ) -> ObjectiveOutput:
        own = self.config(config.params)
        out = self.plugin.obj(model, x, y, config=own, mask=mask, generator=generator)
        if isinstance(out, ObjectiveOutput):
            loss, logits, logs = out.loss, out.logits, out.logs
        elif isinstance(out, tuple) and len(out) == 2:
            loss, logs = out
            with torch.no_grad():
                logits = model(x)
        else:
            raise PluginError(
                f"objective {self.plugin.name!r}: returned {type(out).__name__}; "
                "the contract is (loss, logs) or ObjectiveOutput"
            )
        _check_output(self.plugin.name, loss, logs)
        return ObjectiveOutput(loss, logits.detach(), {k: float(v) for k, v in logs.items()})


def _check_output(name: str, loss: Any, logs: Any) -> None:
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not loss.requires_grad:
        raise PluginError(
            f"objective {name!r}: the loss must be a scalar tensor with a gradient, got {loss!r}"
        )
    if not isinstance(logs, Mapping) or not all(isinstance(k, str) for k in logs):
        raise PluginError(f"objective {name!r}: logs must map names to floats, got {logs!r}")


def _config_type(plugin: Plugin) -> type:
    what = f"objective {plugin.name!r}"
    try:
        signature = inspect.signature(plugin.obj)
        hints = typing.get_type_hints(plugin.obj)
    except (TypeError, ValueError, NameError) as e:
        raise PluginError(f"{what}: cannot read the signature of {plugin.target} ({e})") from e
    params = signature.parameters
    missing = [a for a in (*_ARGS, *_KEYWORDS) if a not in params]
    if missing:
        raise PluginError(
            f"{what}: {plugin.target} must take (model, x, y, *, config, mask, generator); "
            f"{', '.join(missing)} missing"
        )
    kind = hints.get("config")
    if not (inspect.isclass(kind) and dataclasses.is_dataclass(kind)):
        raise PluginError(
            f"{what}: the config parameter of {plugin.target} must be annotated with a frozen dataclass, "
            f"got {kind!r}"
        )
    if not kind.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise PluginError(f"{what}: its config {kind.__name__} must be a frozen dataclass")
    no_default = [
        f.name
        for f in dataclasses.fields(kind)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if no_default:
        raise PluginError(
            f"{what}: every field of {kind.__name__} needs a default; {', '.join(no_default)} has none"
        )
    try:
        kind()
    except (TypeError, ValueError) as e:
        raise PluginError(f"{what}: its config {kind.__name__} refuses its own defaults ({e})") from e
    return kind


def plugin_objective(name: str, *, builtins: Sequence[str] = ()) -> PluginObjective:
    """The plugin objective `name`, its contract checked; PluginError names what is missing."""
    plugin = load_plugin("objective", name, builtins=builtins)
    if not callable(plugin.obj):
        raise PluginError(f"objective {name!r}: {plugin.target} is not callable")
    return PluginObjective(plugin, _config_type(plugin))
