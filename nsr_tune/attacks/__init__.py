"""Attacks on beats and records, all on (B, leads, L) inputs with a mask of the real samples.

White-box: PGD (one loop, L-inf and L2 projections) and APGD (CE, DLR, targeted DLR). Black
box: the Square attack (scores only) and the transfer attack (PGD on a surrogate model, only the
target's predictions). Smooth: SAP. Baselines that are not adversarial: white
noise, and real ECG noise from the MIT-BIH Noise Stress Test Database plus powerline hum.
"""

from __future__ import annotations

from nsr_tune.attacks._apgd import APGD, dlr_loss, dlr_targeted_loss
from nsr_tune.attacks._base import Attack, AttackResult, padding_mask
from nsr_tune.attacks._ecg_noise import BeatNoise, GaussianNoise, Powerline, RecordedNoise, signal_power_mv2
from nsr_tune.attacks._losses import ce_loss, margin_loss
from nsr_tune.attacks._multilabel import MultiLabelPGD, label_sets, set_changed
from nsr_tune.attacks._noise import WhiteNoise
from nsr_tune.attacks._pgd import PGD
from nsr_tune.attacks._projections import L2Ball, LinfBall, Projection
from nsr_tune.attacks._sap import SAP
from nsr_tune.attacks._square import Square
from nsr_tune.attacks._transfer import Transfer

__all__ = [
    "APGD",
    "PGD",
    "SAP",
    "Attack",
    "AttackResult",
    "BeatNoise",
    "GaussianNoise",
    "L2Ball",
    "LinfBall",
    "MultiLabelPGD",
    "Powerline",
    "Projection",
    "RecordedNoise",
    "Square",
    "Transfer",
    "WhiteNoise",
    "ce_loss",
    "dlr_loss",
    "dlr_targeted_loss",
    "label_sets",
    "margin_loss",
    "padding_mask",
    "set_changed",
    "signal_power_mv2",
]
