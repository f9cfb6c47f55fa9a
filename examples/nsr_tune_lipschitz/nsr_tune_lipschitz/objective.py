"""Lipschitz-margin training, LMT (Tsuzuku, Sato & Sugiyama, NeurIPS 2018), as an nsr-tune objective.

If a network's logits z are L-Lipschitz in L2, a perturbation of L2 norm below c moves the gap
z_y - z_j between the true class y and any other class j by less than sqrt(2) * c * L. LMT
trains with cross-entropy on logits in which every wrong class is raised by that amount, so
the model learns margins that no perturbation of norm c can undo, whatever the attack.

An L-inf perturbation of size eps on an n-sample beat has an L2 norm of at most eps * sqrt(n),
so `c` is given as an L-inf level and scaled here: with `c` = 0.01 on a 187-sample beat, the
margin holds against every L2 perturbation of norm 0.137. The bound L comes from the model
(`lipschitz_bound()`, which nsr_tune_lipschitz.model.LipschitzCNN has).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from nsr_tune.objectives import ObjectiveOutput


@dataclass(frozen=True)
class LMTConfig:
    """The settings of the lmt objective, each searchable in a study."""

    c: float = 0.01  # the L-inf radius the margin is built for (scaled to L2 by sqrt(samples))
    power_iters: int = 1  # power iterations per step for each layer's spectral norm

    def __post_init__(self) -> None:
        if not (isinstance(self.c, (int, float)) and math.isfinite(self.c) and self.c >= 0):
            raise ValueError(f"c: must be a number >= 0, got {self.c!r}")
        if not (isinstance(self.power_iters, int) and self.power_iters >= 1):
            raise ValueError(f"power_iters: must be an integer >= 1, got {self.power_iters!r}")


def lipschitz_margin(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: LMTConfig,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> ObjectiveOutput:
    bound_fn = getattr(model, "lipschitz_bound", None)
    if bound_fn is None:
        raise TypeError(
            f"the lmt objective needs a model with lipschitz_bound(), such as lipschitz_cnn; "
            f"got {type(model).__name__}"
        )
    z = model(x)  # (B, C)
    bound = bound_fn(config.power_iters)  # scalar, differentiable in the weights
    radius = config.c * math.sqrt(x[0].numel())  # L-inf eps -> the L2 ball that holds it
    wrong = 1.0 - F.one_hot(y, z.shape[1]).to(z.dtype)  # (B, C)
    loss = F.cross_entropy(z + math.sqrt(2.0) * radius * bound * wrong, y)
    with torch.no_grad():
        top2 = z.topk(2, dim=1).values
        certified = (z.argmax(1) == y) & (top2[:, 0] - top2[:, 1] > math.sqrt(2.0) * radius * bound)
    logs = {"lmt": loss.item(), "lipschitz": bound.item(), "certified": certified.float().mean().item()}
    return ObjectiveOutput(loss, z.detach(), logs)
