"""Projected gradient descent (Madry et al. 2018), written once for every norm.

The norm enters only through a `Projection`: where a random start is drawn, which ascent
direction a gradient gives, and how a perturbation is pulled back into the eps-ball. L-inf and
L2 PGD are the same loop with a different projection.
"""

from __future__ import annotations

import torch
from torch import nn

from nsr_tune._checks import positive_int
from nsr_tune.attacks._base import Attack, AttackResult
from nsr_tune.attacks._losses import LossFn, ce_loss, margin_loss
from nsr_tune.errors import ConfigError

LOSSES: dict[str, LossFn] = {"ce": ce_loss, "margin": margin_loss}


class PGD(Attack):
    """PGD with random start, restarts, several losses, and per-sample early exit.

    A beat counts as broken if any (loss, restart) run misclassifies it at any iterate; its
    adversarial beat is the first iterate that did. Each run attacks only the beats that are
    still unbroken. With `early_exit`, a broken beat leaves the batch at once, which saves its
    forward and backward passes; the result is the same as without it.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "linf",
        steps: int = 100,
        step_size: float | None = None,
        restarts: int = 1,
        loss: str = "worst",
        random_start: bool = True,
        early_exit: bool = True,
        clamp: bool = False,
        respect_padding: bool = True,
    ) -> None:
        super().__init__(model, eps=eps, norm=norm, clamp=clamp, respect_padding=respect_padding)
        positive_int(steps, "steps")
        positive_int(restarts, "restarts")
        if loss not in (*LOSSES, "worst"):
            raise ConfigError(f"loss: must be ce, margin or worst, got {loss!r}")
        if step_size is not None and not step_size > 0:
            raise ConfigError(f"step_size: must be positive, got {step_size!r}")
        self.steps = steps
        # 2.5 * eps / steps lets a run cross the ball 2.5 times (Madry et al.'s choice).
        self.step_size = float(step_size) if step_size is not None else 2.5 * self.eps / steps
        self.restarts = restarts
        self.losses = list(LOSSES.values()) if loss == "worst" else [LOSSES[loss]]
        self.random_start = random_start
        self.early_exit = early_exit

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None
    ) -> AttackResult:
        x_adv = x.clone()
        with torch.no_grad():
            broken = self.model(x).argmax(dim=1) != y  # (B,) already wrong on clean input
        for loss_fn in self.losses:
            for _ in range(self.restarts):
                todo = torch.nonzero(~broken).squeeze(1)
                if todo.numel() == 0:
                    return AttackResult(x_adv, broken)
                adv, hit, _ = self._run(x[todo], y[todo], mask[todo], loss_fn, generator)
                x_adv[todo[hit]] = adv[hit]
                broken[todo[hit]] = True
        return AttackResult(x_adv, broken)

    def _run(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor,
        loss_fn: LossFn,
        gen: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One PGD run: (first fooling iterate per beat, which beats were fooled, last iterate)."""
        proj, eps = self.projection, self.eps
        delta = torch.zeros_like(x)
        if self.random_start:
            delta = proj.project(proj.random(x, eps, gen) * mask, eps)
        delta = self._clamped(x, delta)
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        x_best = x.clone()
        active = torch.arange(len(x), device=x.device)  # beats still being attacked
        compact_every = self._compact_every(x)
        for step in range(self.steps + 1):
            xa = (x[active] + delta[active]).requires_grad_(step < self.steps)
            with torch.enable_grad():
                z = self.model(xa)  # (A, C)
                self._keep_first_hits(z, y, xa, active, fooled, x_best)
                if step == self.steps:
                    break
                (grad,) = torch.autograd.grad(loss_fn(z, y[active]).sum(), xa)
            if self.early_exit and (step + 1) % compact_every == 0:
                keep = ~fooled[active]
                active, grad = active[keep], grad[keep]
                if active.numel() == 0:
                    break
            m = mask[active]
            d = delta[active] + self.step_size * proj.ascent(grad * m)
            delta[active] = self._clamped(x[active], proj.project(d * m, eps))
        return x_best, fooled, x + delta

    def last_iterate(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        mask: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The final PGD iterate of the first loss, for adversarial training (no early exit)."""
        return self._run(x.detach(), y, mask, self.losses[0], generator)[2].detach()

    def _clamped(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        # Clamping x + delta to [0, 1] keeps delta in the ball: it only moves entries toward 0.
        return (x + delta).clamp(0.0, 1.0) - x if self.clamp else delta
