"""The transfer attack: PGD on a surrogate model, the result applied to the target.

The target's gradients are never used, only its predictions, so a target that hides its
gradients (gradient masking) cannot hide from it: if the surrogate's adversarial beats fool the
target where white-box attacks on the target failed, the white-box numbers were too kind.
"""

from __future__ import annotations

import torch
from torch import nn

from nsr_tune.attacks._base import Attack, AttackResult
from nsr_tune.attacks._pgd import LOSSES, PGD
from nsr_tune.errors import ConfigError


class Transfer(Attack):
    """PGD on `surrogate` (each loss of `loss` in turn), applied to the target `model`.

    The surrogate's PGD does not stop at its own first misclassification: a beat that only just
    fools the surrogate rarely fools another model. Every iterate is one query of the target (its
    prediction only), and a beat counts as broken at the first iterate that fools the target,
    where it leaves the batch. The surrogate must take the same inputs as the target.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        surrogate: nn.Module,
        eps: float,
        norm: str = "linf",
        steps: int = 20,
        loss: str = "ce",
        clamp: bool = False,
        respect_padding: bool = True,
    ) -> None:
        super().__init__(model, eps=eps, norm=norm, clamp=clamp, respect_padding=respect_padding)
        if not isinstance(surrogate, nn.Module):
            raise ConfigError(f"surrogate: must be a torch nn.Module, got {type(surrogate).__name__}")
        if surrogate is model:
            raise ConfigError("surrogate: is the target model itself; a transfer attack needs another model")
        if loss not in (*LOSSES, "worst"):
            raise ConfigError(f"loss: must be ce, margin or worst, got {loss!r}")
        self.surrogate = surrogate
        # The surrogate's PGD settings (projection, step size, losses); the loop is forward's.
        self.pgd = PGD(
            surrogate,
            eps=eps,
            norm=norm,
            steps=steps,
            loss=loss,
            early_exit=False,
            clamp=clamp,
            respect_padding=respect_padding,
        )

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None
    ) -> AttackResult:
        pgd, proj, eps = self.pgd, self.pgd.projection, self.eps
        x_adv = x.clone()
        with torch.no_grad():
            broken = self.model(x).argmax(dim=1) != y  # (B,) already wrong on clean input
        for loss_fn in pgd.losses:
            active = torch.nonzero(~broken).squeeze(1)  # (A,) beats the target still gets right
            if active.numel() == 0:
                break
            start = proj.random(x[active], eps, generator) * mask[active]
            delta = pgd._clamped(x[active], proj.project(start, eps))  # (A, C, L)
            for step in range(pgd.steps + 1):
                xa = x[active] + delta
                with torch.no_grad():
                    hit = self.model(xa).argmax(dim=1) != y[active]  # one query of the target
                x_adv[active[hit]] = xa[hit]
                broken[active[hit]] = True
                # A beat that fools the target leaves; the others' iterates do not depend on it.
                active, delta, xa = active[~hit], delta[~hit], xa[~hit]
                if step == pgd.steps or active.numel() == 0:
                    break
                xa.requires_grad_(True)
                with torch.enable_grad():
                    (grad,) = torch.autograd.grad(loss_fn(self.surrogate(xa), y[active]).sum(), xa)
                m = mask[active]
                step_to = delta + pgd.step_size * proj.ascent(grad * m)
                delta = pgd._clamped(x[active], proj.project(step_to * m, eps))
        return AttackResult(x_adv, broken)
