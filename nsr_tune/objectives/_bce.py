from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nsr_tune.config import ObjectiveConfig
from nsr_tune.objectives._base import ObjectiveOutput


def bce_objective(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: ObjectiveConfig,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> ObjectiveOutput:
    """Binary cross-entropy of each class's sigmoid against the label set `y` (B, K), for records
    that carry several labels: each class is its own yes-or-no question."""
    z = model(x)  # (B, K)
    # Each class is positive in about 1 of K records (the class-balanced draw sees to that), so
    # an empty set would be the easy optimum: positives weigh K - 1 times a negative.
    pos_weight = torch.full((z.shape[1],), float(z.shape[1] - 1), device=z.device, dtype=z.dtype)
    loss = F.binary_cross_entropy_with_logits(z, y.to(z.dtype), pos_weight=pos_weight)
    return ObjectiveOutput(loss, z.detach(), {"bce": loss.item()})
