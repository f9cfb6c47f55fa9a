"""The objectives registry: each name maps to its loss function; other names are plugins."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from nsr_tune._checks import check
from nsr_tune.config import OBJECTIVE_NAMES, ObjectiveConfig
from nsr_tune.objectives._base import ObjectiveOutput
from nsr_tune.objectives._bce import bce_objective
from nsr_tune.objectives._ce import ce_objective, focal_objective
from nsr_tune.objectives._jacobian import jacobian_objective
from nsr_tune.objectives._nsr import mse_margin_objective, mse_objective, nsr_ce_objective, nsr_objective
from nsr_tune.objectives._pgd_at import pgd_at_objective
from nsr_tune.objectives._plugins import PluginObjective, plugin_objective

__all__ = ["OBJECTIVES", "ObjectiveFn", "check_objective", "objective_fn"]

ObjectiveFn = Callable[..., ObjectiveOutput]

OBJECTIVES: Mapping[str, ObjectiveFn] = {
    "ce": ce_objective,
    "nsr": nsr_objective,
    "nsr_ce": nsr_ce_objective,
    "jacobian": jacobian_objective,
    "pgd_at": pgd_at_objective,
    "bce": bce_objective,
    "mse": mse_objective,
    "mse_margin": mse_margin_objective,
    "focal": focal_objective,
}
if tuple(OBJECTIVES) != OBJECTIVE_NAMES:  # a programming error, caught at import time
    raise ImportError(f"the objectives registry {tuple(OBJECTIVES)} and config.OBJECTIVE_NAMES disagree")


def objective_fn(name: str) -> ObjectiveFn:
    """The built-in objective `name`, or the plugin of that name (an entry point of
    `nsr_tune.objectives`, or `package.module:attribute`), its contract checked."""
    if name in OBJECTIVES:
        return OBJECTIVES[name]
    return plugin_objective(name, builtins=tuple(OBJECTIVES))


def check_objective(config: ObjectiveConfig) -> PluginObjective | None:
    """Raise ConfigError unless `config` names an objective of the registry or a plugin, with
    settings it has. Returns the plugin, or None for a built-in objective."""
    if config.name in OBJECTIVES:
        check(not config.params, "objective.params", f"the built-in {config.name!r} takes no params")
        return None
    plugin = plugin_objective(config.name, builtins=tuple(OBJECTIVES))
    defaults = ObjectiveConfig(name=config.name, params=config.params)
    for f in dataclasses.fields(ObjectiveConfig):
        check(
            f.name in ("name", "params") or getattr(config, f.name) == getattr(defaults, f.name),
            f"objective.{f.name}",
            f"is a setting of the built-in objectives; {config.name!r} takes its own "
            f"({', '.join(plugin.fields) or 'none'})",
        )
    plugin.config(config.params)
    return plugin
