"""The losses of one label per sample that the attacks ascend, on logits z (B, C) and labels y (B,)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

__all__ = ["LossFn", "ce_loss", "margin_loss"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits (B, C), y (B,)) -> (B,)


def ce_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(z, y, reduction="none")


def margin_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """max_{j != y} z_j - z_y: positive exactly when the beat is misclassified.

    It does not saturate the way CE does on the small, MSE-trained logits of the NSR loss.
    """
    z_y = z.gather(1, y[:, None]).squeeze(1)  # (B,)
    others = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), float("-inf"))
    return others.amax(dim=1) - z_y
