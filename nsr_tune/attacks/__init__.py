"""Attacks on beats: PGD under L-inf and L2 (one loop, two projections) and white noise."""

from __future__ import annotations

from nsr_tune.attacks._base import Attack, AttackResult, padding_mask
from nsr_tune.attacks._noise import WhiteNoise
from nsr_tune.attacks._pgd import PGD, ce_loss, margin_loss
from nsr_tune.attacks._projections import L2Ball, LinfBall, Projection

__all__ = [
    "PGD",
    "Attack",
    "AttackResult",
    "L2Ball",
    "LinfBall",
    "Projection",
    "WhiteNoise",
    "ce_loss",
    "margin_loss",
    "padding_mask",
]
