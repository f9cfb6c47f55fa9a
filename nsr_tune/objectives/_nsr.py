"""The noise-to-signal ratio (NSR) regulariser of Ma & Liang (arXiv 2110.09759).

For a correctly classified beat x with true-class logit z_y, L-inf noise of size eps moves z_y
by about eps * ||dz_y/dx||_1 (first order, worst case). Relative to the signal |z_y| that is

    R(x) = log(1 + eps * ||dz_y/dx||_1 / (|z_y| + 0.01)),

averaged over the correctly classified beats of a batch. The paper trains with
    L = MSE(z, onehot(y)) + margin + beta * R
where the squared error is summed over classes and averaged over beats, and margin averages
t = 1 - z_y + z_j over correct beats and classes j != y with 0 < t < 2.

One forward and one double backward per batch: the beats of a batch do not interact in any of
our models (no batch norm), so the input gradient of sum_i z_{i, y_i} is, row by row, the
per-beat gradient dz_y/dx. No loop over classes is needed because only the true class enters.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nsr_tune.config import ObjectiveConfig
from nsr_tune.objectives._base import ObjectiveOutput

_SIGNAL_FLOOR = 0.01  # keeps the ratio finite when z_y is near 0


def _mean_or_zero(values: torch.Tensor, keep: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # A batch with no correct beat has no NSR term; a zero tied to the graph keeps backward happy.
    return values[keep].mean() if bool(keep.any()) else like.sum() * 0.0


def nsr_penalty(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float = 1.0,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (R, logits, correct): R averaged over the correctly classified beats.

    `mask` (B, 1, L), 1 on the real samples: the L1 norm sums |dz_y/dx| over those only, in
    every lead, since noise is never added to the padding of a record.
    """
    x = x.detach().requires_grad_(True)
    z = model(x)  # (B, C)
    z_y = z.gather(1, y[:, None]).squeeze(1)  # (B,)
    (grad,) = torch.autograd.grad(z_y.sum(), x, create_graph=True)  # (B, leads, L): dz_y/dx per beat
    if mask is not None:
        grad = grad * mask
    ratio = eps * grad.abs().flatten(1).sum(dim=1) / (z_y.abs() + _SIGNAL_FLOOR)  # (B,)
    correct = z.detach().argmax(dim=1) == y
    return _mean_or_zero(torch.log1p(ratio), correct, z), z, correct


def nsr_penalty_reference(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 1.0
) -> torch.Tensor:
    """The same R computed beat by beat: slow, for tests only."""
    terms = []
    for xi, yi in zip(x, y, strict=True):
        xi = xi[None].detach().requires_grad_(True)
        zi = model(xi)[0]
        if int(zi.argmax()) != int(yi):
            continue
        (g,) = torch.autograd.grad(zi[yi], xi, create_graph=True)
        terms.append(torch.log(1 + eps * g.abs().sum() / (zi[yi].abs() + _SIGNAL_FLOOR)))
    return torch.stack(terms).mean() if terms else torch.zeros(())


def _margin(z: torch.Tensor, y: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    onehot = F.one_hot(y, z.shape[1]).bool()  # (B, C)
    t = 1 - z.gather(1, y[:, None]) + z  # (B, C): t_j = 1 - z_y + z_j
    keep = correct[:, None] & ~onehot & (t > 0) & (t < 2)
    return _mean_or_zero(t, keep, z)


def nsr_objective(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: ObjectiveConfig,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> ObjectiveOutput:
    r, z, correct = nsr_penalty(model, x, y, eps=config.nsr_eps, mask=mask)
    # Squared error summed over classes, averaged over beats (the paper's code does the same;
    # the per-element mean of F.mse_loss would be 5x weaker and let the margin term dominate).
    mse = (z - F.one_hot(y, z.shape[1]).to(z.dtype)).pow(2).sum(dim=1).mean()
    margin = _margin(z, y, correct)
    loss = mse + margin + config.beta * r
    return ObjectiveOutput(loss, z.detach(), {"mse": mse.item(), "margin": margin.item(), "nsr": r.item()})


def nsr_ce_objective(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: ObjectiveConfig,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> ObjectiveOutput:
    """The NSR term on top of cross-entropy instead of the paper's MSE + margin."""
    r, z, _ = nsr_penalty(model, x, y, eps=config.nsr_eps, mask=mask)
    ce = F.cross_entropy(z, y)
    return ObjectiveOutput(ce + config.beta * r, z.detach(), {"ce": ce.item(), "nsr": r.item()})


def _mse(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # Summed over classes, averaged over beats, as in `nsr_objective`.
    return (z - F.one_hot(y, z.shape[1]).to(z.dtype)).pow(2).sum(dim=1).mean()


def mse_objective(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: ObjectiveConfig,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> ObjectiveOutput:
    """The paper's ablation: the squared error of the logits against one-hot labels alone."""
    z = model(x)  # (B, C)
    mse = _mse(z, y)
    return ObjectiveOutput(mse, z.detach(), {"mse": mse.item()})


def mse_margin_objective(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: ObjectiveConfig,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> ObjectiveOutput:
    """The NSR loss without its regulariser (`nsr` at beta 0), at the cost of one plain backward:
    what NSR's robustness owes to the loss it sits on rather than to the term."""
    z = model(x)  # (B, C)
    mse = _mse(z, y)
    margin = _margin(z, y, z.detach().argmax(dim=1) == y)
    return ObjectiveOutput(mse + margin, z.detach(), {"mse": mse.item(), "margin": margin.item()})
