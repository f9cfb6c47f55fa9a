"""PGD adversarial training baseline (Madry et al. 2018): 0.5 CE(x) + 0.5 CE(x_adv)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nsr_tune.attacks import PGD
from nsr_tune.config import ObjectiveConfig
from nsr_tune.objectives._base import ObjectiveOutput


def pgd_at_objective(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: ObjectiveConfig,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> ObjectiveOutput:
    # Full-length CE attack without early exit: training wants the strongest point in the
    # ball, not the first one that flips the label.
    attack = PGD(model, eps=config.at_eps, norm="linf", steps=config.at_steps, loss="ce", early_exit=False)
    x_adv = attack.last_iterate(x, y, mask=mask, generator=generator)
    z = model(x)
    ce_clean = F.cross_entropy(z, y)
    ce_adv = F.cross_entropy(model(x_adv), y)
    loss = 0.5 * ce_clean + 0.5 * ce_adv
    return ObjectiveOutput(loss, z.detach(), {"ce": ce_clean.item(), "ce_adv": ce_adv.item()})
