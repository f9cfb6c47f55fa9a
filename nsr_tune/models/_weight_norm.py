"""The paper's per-unit weight normalisation.

Before each training forward, each output unit's weight row (for a conv: its whole kernel) is
scaled to unit L2 norm and its bias by the same factor. The unit's decision boundary stays where
it is while the logit scale is pinned, so the NSR term cannot be gamed by shrinking weights.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def normalize_units_(model: nn.Module, *, eps: float = 1e-12) -> None:
    """Rescale every Linear and Conv1d unit of `model` in place."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            w = module.weight  # (out, in) or (out, in, k)
            norms = w.flatten(1).norm(dim=1).clamp_min(eps)  # (out,)
            scale = 1.0 / norms
            w.mul_(scale.view(-1, *([1] * (w.dim() - 1))))
            if module.bias is not None:
                module.bias.mul_(scale)
