"""Training objectives: a registry of names to loss functions.

Every objective has the signature
    loss_fn(model, x (B, leads, L), y (B,), *, config, mask (B, 1, L), generator) -> ObjectiveOutput
(`bce` takes label sets y (B, K) instead of class indices), with `config` an
nsr_tune.config.ObjectiveConfig, and returns the scalar loss, the clean logits (for training
accuracy) and a few floats to log.

`bce`: binary cross-entropy on label sets, for multi-label data (sigmoid outputs). `mse` and
`mse_margin`: the paper's ablations, its loss without the NSR term (mse_margin is `nsr` at beta
0, without computing the term); `focal`: focal cross-entropy for imbalance.

Objectives from other packages (`objective_fn`): an entry point of the group
`nsr_tune.objectives`, or `package.module:attribute`, holding the ObjectivePlugin contract
(nsr_tune/objectives/_plugins.py), with a typed config of their own filled from
ObjectiveConfig.params.
"""

from __future__ import annotations

from nsr_tune.objectives._base import ObjectiveOutput
from nsr_tune.objectives._nsr import nsr_penalty, nsr_penalty_reference
from nsr_tune.objectives._plugins import ObjectivePlugin, PluginObjective
from nsr_tune.objectives._registry import OBJECTIVES, ObjectiveFn, check_objective, objective_fn

__all__ = [
    "OBJECTIVES",
    "ObjectiveFn",
    "ObjectiveOutput",
    "ObjectivePlugin",
    "PluginObjective",
    "check_objective",
    "nsr_penalty",
    "nsr_penalty_reference",
    "objective_fn",
]
