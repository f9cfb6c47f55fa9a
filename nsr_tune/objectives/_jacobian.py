"""Input-gradient (Jacobian) regularisation baseline: CE + beta * mean_i ||dz/dx (x_i)||_1.

The Jacobian has one row per class; all rows come from one batched double backward
(`is_grads_batched`, a vmap over the class one-hot vectors) rather than a loop over classes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nsr_tune.config import ObjectiveConfig
from nsr_tune.objectives._base import ObjectiveOutput


def jacobian_objective(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: ObjectiveConfig,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> ObjectiveOutput:
    x = x.detach().requires_grad_(True)
    z = model(x)  # (B, C)
    c = z.shape[1]
    basis = torch.eye(c, device=z.device, dtype=z.dtype)[:, None, :].expand(c, *z.shape)  # (C, B, C)
    (jac,) = torch.autograd.grad(
        z, x, grad_outputs=basis, is_grads_batched=True, create_graph=True
    )  # (C, B, leads, L)
    jac_l1 = (jac * mask).abs().sum(dim=(0, 2, 3)).mean()  # L1 over real samples, averaged
    ce = F.cross_entropy(z, y)
    return ObjectiveOutput(
        ce + config.beta * jac_l1, z.detach(), {"ce": ce.item(), "jacobian_l1": jac_l1.item()}
    )
