"""The transfer attack: PGD on a surrogate model, the result applied to the target.

The target's gradients are never used, only its predictions, so a target that hides its
gradients (gradient masking) cannot hide from it: if the surrogate's adversarial beats fool the
target where white-box attacks on the target failed, the white-box numbers were too kind.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from nsr_tune.attacks._base import Attack, AttackResult
from nsr_tune.attacks._pgd import LOSSES, PGD, LossFn
from nsr_tune.errors import ConfigError


class Transfer(Attack):
    """PGD on `surrogate` (every loss of `loss`, no early exit), applied to the target `model`.

    The surrogate runs the full `steps` without stopping at its own first misclassification: a
    beat that only just fools the surrogate rarely fools another model. Every iterate is one
    query of the target (its logits only), and a beat counts as broken at the first iterate that
    fools the target. The surrogate must take the same inputs as the target.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        surrogate: nn.Module,
        eps: float,
        norm: str = "linf",
        steps: int = 100,
        loss: str = "worst",
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
        # The surrogate's PGD; early exit off, see above. Its `_run` is the PGD loop itself.
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
        x_adv = x.clone()
        with torch.no_grad():
            broken = self.model(x).argmax(dim=1) != y  # (B,) already wrong on clean input
        for loss_fn in self.pgd.losses:
            todo = torch.nonzero(~broken).squeeze(1)
            if todo.numel() == 0:
                break
            for xa in self._iterates(x[todo], y[todo], mask[todo], loss_fn, generator):
                with torch.no_grad():
                    hit = (self.model(xa).argmax(dim=1) != y[todo]) & ~broken[todo]  # (T,)
                x_adv[todo[hit]] = xa[hit]
                broken[todo[hit]] = True
        return AttackResult(x_adv, broken)

    def _iterates(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor,
        loss_fn: LossFn,
        generator: torch.Generator | None,
    ) -> Iterator[torch.Tensor]:
        """Every PGD iterate on the surrogate, (B, C, L) each, from the random start to the last."""
        pgd, proj, eps = self.pgd, self.pgd.projection, self.eps
        delta = pgd._clamped(x, proj.project(proj.random(x, eps, generator) * mask, eps))
        for step in range(pgd.steps + 1):
            xa = (x + delta).detach()
            yield xa
            if step == pgd.steps:
                return
            xa.requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(loss_fn(self.surrogate(xa), y).sum(), xa)
            delta = pgd._clamped(
                x, proj.project((delta + pgd.step_size * proj.ascent(grad * mask)) * mask, eps)
            )
