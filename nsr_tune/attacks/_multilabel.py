"""PGD on a multi-label model (sigmoid outputs): a record is broken when its predicted label set
changes, and the attack ascends the binary cross-entropy of its true set.

A multi-label model predicts every class whose logit is above 0. The loss and the test of
success differ from the single-label attacks; the loop (random start, ascent, projection,
padding left alone, the first fooling iterate kept) is PGD's.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nsr_tune._checks import positive_int
from nsr_tune.attacks._base import Attack, AttackResult

__all__ = ["MultiLabelPGD", "label_sets", "set_changed"]


def label_sets(z: torch.Tensor) -> torch.Tensor:
    """(B, K) logits -> (B, K) bool: the classes a multi-label model predicts."""
    return z > 0


def set_changed(z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the predicted label set differs from `targets` (B, K) in some class."""
    return (label_sets(z) != targets.bool()).any(dim=1)


class MultiLabelPGD(Attack):
    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        steps: int = 100,
        step_size: float | None = None,
        norm: str = "linf",
        respect_padding: bool = True,
    ) -> None:
        super().__init__(model, eps=eps, norm=norm, clamp=False, respect_padding=respect_padding)
        positive_int(steps, "steps")
        self.steps = steps
        self.step_size = float(step_size) if step_size is not None else 2.5 * self.eps / steps

    def margin(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B,) > 0 exactly when the predicted set differs from the true one: the largest logit of
        a class the sample lacks, or the smallest (negated) of a class it has."""
        return torch.where(y.bool(), -z, z).amax(dim=1)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None
    ) -> AttackResult:
        targets = y.to(x.dtype)  # (B, K)
        proj, eps = self.projection, self.eps
        with torch.no_grad():
            broken = set_changed(self.model(x), targets)  # already wrong on clean input
        x_adv = x.clone()
        delta = proj.project(proj.random(x, eps, generator) * mask, eps)
        active = torch.nonzero(~broken).squeeze(1)  # records still being attacked
        for step in range(self.steps + 1):
            if active.numel() == 0:
                break
            xa = (x[active] + delta[active]).requires_grad_(step < self.steps)
            with torch.enable_grad():
                z = self.model(xa)  # (A, K)
                hit = set_changed(z, targets[active]).detach()  # (A,)
                x_adv[active[hit]] = xa.detach()[hit]
                broken[active[hit]] = True
                if step == self.steps:
                    break
                loss = F.binary_cross_entropy_with_logits(z, targets[active], reduction="sum")
                (grad,) = torch.autograd.grad(loss, xa)
            keep = ~hit
            active, grad = active[keep], grad[keep]
            m = mask[active]
            delta[active] = proj.project((delta[active] + self.step_size * proj.ascent(grad * m)) * m, eps)
        return AttackResult(x_adv, broken)
