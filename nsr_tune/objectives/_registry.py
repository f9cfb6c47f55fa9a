"""The objectives registry: each name maps to its loss function."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from nsr_tune._checks import choice
from nsr_tune.config import OBJECTIVE_NAMES, ObjectiveConfig
from nsr_tune.objectives._base import ObjectiveOutput
from nsr_tune.objectives._bce import bce_objective
from nsr_tune.objectives._ce import ce_objective, focal_objective
from nsr_tune.objectives._jacobian import jacobian_objective
from nsr_tune.objectives._nsr import mse_margin_objective, mse_objective, nsr_ce_objective, nsr_objective
from nsr_tune.objectives._pgd_at import pgd_at_objective

__all__ = ["OBJECTIVES", "ObjectiveFn", "check_objective"]

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


def check_objective(config: ObjectiveConfig) -> None:
    """Raise ConfigError unless `config` names an objective of the registry."""
    choice(config.name, "objective", OBJECTIVE_NAMES)
