from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ObjectiveOutput:
    loss: torch.Tensor  # scalar, differentiable w.r.t. the model's parameters
    logits: torch.Tensor  # (B, C) clean logits, detached
    logs: Mapping[str, float]  # the loss's parts, for progress and tracking
