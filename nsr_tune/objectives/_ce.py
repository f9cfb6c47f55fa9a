from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nsr_tune.objectives._base import ObjectiveOutput
from nsr_tune.objectives._config import ObjectiveConfig


def ce_objective(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: ObjectiveConfig,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> ObjectiveOutput:
    z = model(x)  # (B, C)
    loss = F.cross_entropy(z, y)
    return ObjectiveOutput(loss, z.detach(), {"ce": loss.item()})
