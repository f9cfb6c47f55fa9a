"""Auto-PGD (Croce & Hein, ICML 2020): PGD without a step size to tune.

APGD starts with a large step (2 * eps), adds momentum, and at checkpoints halves each beat's
step and sends the beat back to its best point when its loss stopped rising. The loss is CE, the
untargeted DLR loss, or the targeted DLR loss of APGD-T, which attacks the top other classes in
turn. DLR is invariant to shifting and scaling the logits, so it does not saturate as CE does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from nsr_tune._checks import positive_int
from nsr_tune.attacks._base import Attack, AttackResult
from nsr_tune.attacks._losses import ce_loss
from nsr_tune.errors import ConfigError

# (logits (B, C), labels (B,), targets (B,)) -> (B,); CE and DLR ignore the targets.
TargetedLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

MOMENTUM = 0.75  # alpha of the paper: the weight of the new step against the last one
_DLR_EPS = 1e-12  # keeps the DLR denominator off zero where the top logits tie


def dlr_loss(z: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
    """-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3), with z_pi1 >= z_pi2 >= ... the sorted logits."""
    zs = z.sort(dim=1, descending=True).values
    z_y = z.gather(1, y[:, None]).squeeze(1)
    top_is_y = z.argmax(dim=1) == y
    rival = torch.where(top_is_y, zs[:, 1], zs[:, 0])
    return -(z_y - rival) / (zs[:, 0] - zs[:, 2] + _DLR_EPS)


def dlr_targeted_loss(z: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2): APGD-T's loss toward target class t."""
    zs = z.sort(dim=1, descending=True).values
    z_y, z_t = z.gather(1, y[:, None]).squeeze(1), z.gather(1, t[:, None]).squeeze(1)
    return -(z_y - z_t) / (zs[:, 0] - (zs[:, 2] + zs[:, 3]) / 2 + _DLR_EPS)


# loss name -> (loss, the fewest classes its denominator needs)
LOSSES: dict[str, tuple[TargetedLoss, int]] = {
    "ce": (lambda z, y, t: ce_loss(z, y), 2),
    "dlr": (dlr_loss, 3),
    "dlr_targeted": (dlr_targeted_loss, 4),
}


def checkpoints(steps: int) -> list[int]:
    """The iterations w_j = ceil(p_j * steps) at which APGD may halve its step size.

    p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06): long phases while the
    step is large, then checks every 6% of the budget.
    """
    p_prev, p, out = 0.0, 0.22, []
    while p < 1:
        w = math.ceil(round(p * steps, 6))  # round: 0.41 is 0.41000000000000003 in floats
        if w not in out:
            out.append(w)
        p_prev, p = p, p + max(p - p_prev - 0.03, 0.06)
    return out


class APGD(Attack):
    """APGD-CE, APGD-DLR and APGD-T (targeted DLR), per-sample and batched.

    As in PGD, a beat counts as broken if any run misclassifies it at any iterate, its adversarial
    beat is the first iterate that did, and each run (restart or target class) attacks only the
    beats still unbroken. With `early_exit`, a broken beat leaves the batch at once.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "linf",
        steps: int = 100,
        restarts: int = 1,
        loss: str = "ce",
        n_target_classes: int | None = None,
        rho: float = 0.75,
        early_exit: bool = True,
        clamp: bool = False,
        respect_padding: bool = True,
    ) -> None:
        super().__init__(model, eps=eps, norm=norm, clamp=clamp, respect_padding=respect_padding)
        positive_int(steps, "steps")
        positive_int(restarts, "restarts")
        if loss not in LOSSES:
            raise ConfigError(f"loss: must be one of {', '.join(LOSSES)}, got {loss!r}")
        positive_int(n_target_classes, "n_target_classes", allow_none=True)
        if n_target_classes is not None and loss != "dlr_targeted":
            raise ConfigError(f"n_target_classes: applies only to loss 'dlr_targeted', not {loss!r}")
        if not (isinstance(rho, (int, float)) and 0 <= rho <= 1):
            raise ConfigError(f"rho: must be a number in [0, 1], got {rho!r}")
        self.steps, self.restarts, self.loss, self.rho = steps, restarts, loss, float(rho)
        self.n_target_classes = n_target_classes
        self.early_exit = early_exit
        self.checkpoints = checkpoints(steps)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None
    ) -> AttackResult:
        x_adv = x.clone()
        with torch.no_grad():
            z = self.model(x)  # (B, C)
        loss_fn, fewest = LOSSES[self.loss]
        n_classes = z.shape[1]
        if n_classes < fewest:
            raise ConfigError(
                f"loss: {self.loss!r} needs a model with at least {fewest} classes, this one has {n_classes}"
            )
        if self.loss == "dlr_targeted":
            n_targets = self.n_target_classes or n_classes - 1
            if n_targets > n_classes - 1:
                raise ConfigError(
                    f"n_target_classes: at most {n_classes - 1} with {n_classes} classes, got {n_targets}"
                )
            # The other classes by clean logit, most likely first; column j is the j-th target.
            others = z.scatter(1, y[:, None], float("-inf"))
            targets = list(others.argsort(dim=1, descending=True)[:, :n_targets].T)
        else:
            targets = [y]  # untargeted losses ignore it
        broken = z.argmax(dim=1) != y  # already wrong on clean input
        for t in targets:
            for _ in range(self.restarts):
                todo = torch.nonzero(~broken).squeeze(1)
                if todo.numel() == 0:
                    return AttackResult(x_adv, broken)
                adv, hit = self._run(x[todo], y[todo], t[todo], mask[todo], loss_fn, generator)
                x_adv[todo[hit]] = adv[hit]
                broken[todo[hit]] = True
        return AttackResult(x_adv, broken)

    def _run(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor,
        mask: torch.Tensor,
        loss_fn: TargetedLoss,
        gen: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One APGD run: (first fooling iterate per beat, which beats were fooled)."""
        proj, eps, n = self.projection, self.eps, len(x)
        delta = self._clamped(x, proj.project(proj.random(x, eps, gen) * mask, eps))
        delta_prev, best_delta, best_grad = delta.clone(), delta.clone(), torch.zeros_like(x)
        eta = torch.full((n,), 2 * eps, dtype=x.dtype, device=x.device)  # per-beat step size
        best = torch.full((n,), float("-inf"), dtype=x.dtype, device=x.device)  # f_max
        prev_loss, successes = torch.zeros_like(best), torch.zeros_like(best)
        eta_at_check, best_at_check = eta.clone(), best.clone()  # at the last checkpoint w_{j-1}
        last_check = 0
        fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
        x_fool = x.clone()
        active = torch.arange(n, device=x.device)  # beats still being attacked
        compact_every = self._compact_every(x)
        for k in range(self.steps + 1):
            xa = (x[active] + delta[active]).requires_grad_(k < self.steps)
            with torch.enable_grad():
                z = self.model(xa)
                hit = (z.argmax(dim=1) != y[active]) & ~fooled[active]  # only a first fooling counts
                x_fool[active] = torch.where(hit[:, None, None], xa.detach(), x_fool[active])
                fooled[active] |= hit
                if k == self.steps:
                    break
                loss = loss_fn(z, y[active], t[active])
                (grad,) = torch.autograd.grad(loss.sum(), xa)
            loss = loss.detach()
            if k > 0:
                successes[active] += (loss > prev_loss[active]).to(x.dtype)
            prev_loss[active] = loss
            better = loss > best[active]
            best[active] = torch.where(better, loss, best[active])
            best_delta[active] = torch.where(better[:, None, None], delta[active], best_delta[active])
            best_grad[active] = torch.where(better[:, None, None], grad, best_grad[active])
            if k == 0:
                best_at_check[active] = best[active]  # w_0 = 0
            elif k in self.checkpoints:
                # Condition 1: too few steps raised the loss, the step overshoots. Condition 2: the
                # step was not cut last time and nothing improved since. Either way, halve it and
                # go on from the best point, with its gradient (stored, so no extra pass).
                few = successes[active] < self.rho * (k - last_check)
                stuck = (eta[active] == eta_at_check[active]) & (best[active] <= best_at_check[active])
                cut = few | stuck
                eta_at_check[active], best_at_check[active] = eta[active], best[active]
                eta[active] = torch.where(cut, eta[active] / 2, eta[active])
                delta[active] = torch.where(cut[:, None, None], best_delta[active], delta[active])
                grad = torch.where(cut[:, None, None], best_grad[active], grad)
                # The best point is now the current one: the next step succeeds if it beats its loss.
                prev_loss[active] = torch.where(cut, best[active], prev_loss[active])
                successes[active] = 0
                last_check = k
            if self.early_exit and (k + 1) % compact_every == 0:
                keep = ~fooled[active]
                active, grad = active[keep], grad[keep]
                if active.numel() == 0:
                    break
            m, d = mask[active], delta[active]
            step = self._clamped(
                x[active], proj.project(d + eta[active].view(-1, 1, 1) * proj.ascent(grad * m), eps)
            )
            # Momentum: the first step has none (alpha = 1), as in the paper.
            a = 1.0 if k == 0 else MOMENTUM
            new = proj.project((d + a * (step - d) + (1 - a) * (d - delta_prev[active])) * m, eps)
            delta_prev[active] = d
            delta[active] = self._clamped(x[active], new)
        return x_fool, fooled

    def _clamped(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        # Clamping x + delta to [0, 1] keeps delta in the ball: it only moves entries toward 0.
        return (x + delta).clamp(0.0, 1.0) - x if self.clamp else delta
