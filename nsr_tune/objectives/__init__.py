"""Training objectives: a registry of names to loss functions.

Every objective has the signature
    loss_fn(model, x (B, leads, L), y (B,), *, config, mask (B, 1, L), generator) -> ObjectiveOutput
(`bce` takes label sets y (B, K) instead of class indices)
and returns the scalar loss, the clean logits (for training accuracy) and a few floats to log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from nsr_tune.objectives._base import ObjectiveOutput
from nsr_tune.objectives._bce import bce_objective
from nsr_tune.objectives._ce import ce_objective, focal_objective
from nsr_tune.objectives._config import OBJECTIVE_FIELDS, OBJECTIVE_NAMES, WEIGHTED, ObjectiveConfig
from nsr_tune.objectives._jacobian import jacobian_objective
from nsr_tune.objectives._nsr import (
    mse_margin_objective,
    mse_objective,
    nsr_ce_objective,
    nsr_objective,
    nsr_penalty,
    nsr_penalty_reference,
)
from nsr_tune.objectives._pgd_at import pgd_at_objective

__all__ = [
    "OBJECTIVES",
    "OBJECTIVE_FIELDS",
    "OBJECTIVE_NAMES",
    "WEIGHTED",
    "ObjectiveConfig",
    "ObjectiveFn",
    "ObjectiveOutput",
    "nsr_penalty",
    "nsr_penalty_reference",
]

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
    raise ImportError(f"the objectives registry {tuple(OBJECTIVES)} and OBJECTIVE_NAMES disagree")
