"""Random noise of the same size as an attack: the baseline any attack must beat."""

from __future__ import annotations

import torch
from torch import nn

from nsr_tune.attacks._base import Attack, AttackResult


class WhiteNoise(Attack):
    """Uniform white noise: U(-eps, eps) per sample for L-inf, a uniform point of the L2 ball for L2."""

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "linf",
        clamp: bool = False,
        respect_padding: bool = True,
    ) -> None:
        super().__init__(model, eps=eps, norm=norm, clamp=clamp, respect_padding=respect_padding)

    @torch.no_grad()
    def forward(
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None
    ) -> AttackResult:
        proj = self.projection
        x_adv = x + proj.project(proj.random(x, self.eps, generator) * mask, self.eps)
        if self.clamp:
            x_adv = x_adv.clamp(0.0, 1.0)
        return AttackResult(x_adv, self.model(x_adv).argmax(dim=1) != y)
