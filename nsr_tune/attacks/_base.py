"""Shared mechanics of every attack: input checks, the padding mask, and the output checks.

As in AutoAttack, an attack's output is checked every time: no NaN, ||delta|| <= eps, the zero
padding untouched, and every sample reported broken misclassified at its adversarial input, so
that a wrong "broken" can never reach a robust accuracy. A failed check is a bug in the attack,
not a user error, so it raises RuntimeError.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nsr_tune.attacks._losses import margin_loss
from nsr_tune.attacks._projections import PROJECTIONS
from nsr_tune.errors import ConfigError

# Relative slack for the norm check: float32 projection is exact to a few ulps.
_NORM_TOL = 1e-5
# Slack of the misclassification check, relative to the largest logit (at least 1): an attack
# judged a sample in another batch than the check's, and a batch's size can change the last bits
# of its logits, so a sample on the decision boundary itself may come out either side.
_MARGIN_TOL = 1e-4


@dataclass(frozen=True)
class AttackResult:
    x_adv: torch.Tensor  # (B, 1, L)
    broken: torch.Tensor  # (B,) bool: misclassified at x_adv


def padding_mask(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """(B, 1, L) float mask: 1 on a beat's true samples, 0 on its zero padding."""
    if lengths is None:
        return torch.ones_like(x)
    positions = torch.arange(x.shape[-1], device=x.device)  # (L,)
    return (positions[None, :] < lengths.to(x.device)[:, None]).to(x.dtype).unsqueeze(1)  # (B, 1, L)


class Attack:
    """Base class: subclasses implement `forward(x, y, mask, generator) -> AttackResult`."""

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "linf",
        clamp: bool = False,
        respect_padding: bool = True,
    ) -> None:
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ConfigError(f"eps: must be a positive number, got {eps!r}")
        if norm not in PROJECTIONS:
            raise ConfigError(f"norm: must be one of {', '.join(PROJECTIONS)}, got {norm!r}")
        self.model = model
        self.norm = norm
        self.projection = PROJECTIONS[norm]
        self.eps = float(eps)
        self.clamp = clamp
        self.respect_padding = respect_padding

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None
    ) -> AttackResult:
        raise NotImplementedError

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        lengths: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> AttackResult:
        # y: (B,) class indices, or (B, K) label sets for a multi-label model.
        if x.dim() != 3 or y.dim() not in (1, 2) or y.shape[0] != x.shape[0]:
            raise ConfigError(
                f"x, y: expected shapes (B, C, L) and (B,) or (B, K), "
                f"got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        mask = padding_mask(x, lengths if self.respect_padding else None)
        result = self.forward(x.detach(), y, mask, generator)
        self._check(x, result.x_adv, mask)
        self._check_broken(result, y)
        return result

    def margin(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B,) how far past the decision boundary each sample's logits z are: > 0 exactly when
        the sample is misclassified (the largest other logit minus the true one)."""
        return margin_loss(z, y)

    @staticmethod
    def _compact_every(x: torch.Tensor) -> int:
        """How often (in iterations) broken beats leave the batch under early exit.

        Dropping them takes a boolean index, which waits for the device; on a GPU that wait
        costs more than the saved work unless it happens only now and then.
        """
        return 1 if x.device.type == "cpu" else 10

    @staticmethod
    def _keep_first_hits(
        z: torch.Tensor,
        y: torch.Tensor,
        xa: torch.Tensor,
        active: torch.Tensor,
        fooled: torch.Tensor,
        x_best: torch.Tensor,
    ) -> None:
        """Mark the active beats that iterate `xa` fools (logits `z`), keeping each beat's first.

        The logits at an iterate tell which beats it fools, so early exit costs no extra
        forward pass. `fooled` (B,) and `x_best` (B, C, L) are updated in place.
        """
        hit = (z.argmax(dim=1) != y[active]) & ~fooled[active]  # (A,)
        x_best[active] = torch.where(hit[:, None, None], xa.detach(), x_best[active])
        fooled[active] = fooled[active] | hit

    def _delta_norm(self, delta: torch.Tensor) -> torch.Tensor:  # (B, 1, L) -> (B,)
        flat = delta.flatten(1)
        return flat.abs().amax(dim=1) if self.norm == "linf" else flat.norm(dim=1)

    def _check(self, x: torch.Tensor, x_adv: torch.Tensor, mask: torch.Tensor) -> None:
        if torch.isnan(x_adv).any():
            raise RuntimeError(f"{type(self).__name__} produced NaN adversarial beats")
        if len(x) == 0:
            return
        delta = x_adv - x
        worst = self._delta_norm(delta).max().item()
        if worst > self.eps * (1 + _NORM_TOL) + 1e-7:
            raise RuntimeError(
                f"{type(self).__name__}: ||delta||_{self.norm} = {worst:.6g} exceeds eps = {self.eps}"
            )
        if (delta * (1 - mask)).abs().max().item() > 0:
            raise RuntimeError(f"{type(self).__name__} perturbed the zero padding of a beat")

    def _check_broken(self, result: AttackResult, y: torch.Tensor) -> None:
        """Every sample reported broken is misclassified at its x_adv (to the last bits of a
        logit: see _MARGIN_TOL)."""
        if not bool(result.broken.any()):
            return
        with torch.no_grad():
            z = self.model(result.x_adv[result.broken])  # (K, C)
        margin = self.margin(z, y[result.broken])  # (K,)
        slack = _MARGIN_TOL * z.detach().abs().amax(dim=1).clamp_min(1.0)
        right = margin < -slack
        if bool(right.any()):
            raise RuntimeError(
                f"{type(self).__name__} reported {int(right.sum())} sample(s) broken that the model "
                f"classifies correctly at their adversarial input (margin {margin.min().item():.3g})"
            )
