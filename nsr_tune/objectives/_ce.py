from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nsr_tune.config import ObjectiveConfig
from nsr_tune.objectives._base import ObjectiveOutput


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


def focal_objective(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: ObjectiveConfig,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> ObjectiveOutput:
    """Focal cross-entropy: -(1 - p_y)^gamma log p_y, averaged over beats (Lin et al. 2017)."""
    z = model(x)  # (B, C)
    log_p = F.log_softmax(z, dim=1).gather(1, y[:, None]).squeeze(1)  # (B,)
    loss = (-((1 - log_p.exp()) ** config.focal_gamma) * log_p).mean()
    return ObjectiveOutput(loss, z.detach(), {"focal": loss.item()})
