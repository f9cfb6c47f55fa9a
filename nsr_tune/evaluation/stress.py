"""Noise that is not adversarial: white noise of the attack's size at each eps, and the noise
stress test (real baseline wander and muscle artifact, white noise and powerline hum at fixed
microvolt levels and signal-to-noise ratios). The floor any attack must beat, and what a
deployed classifier meets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from nsr_tune.attacks import GaussianNoise, Powerline, RecordedNoise, WhiteNoise
from nsr_tune.config import EvalConfig
from nsr_tune.evaluation.batching import OnDevice

__all__ = ["noise_stress", "white_noise_accuracy"]

_NSTDB_MISSING = (
    "the MIT-BIH Noise Stress Test records are not at hand (give --nstdb DIR or set NSR_TUNE_NSTDB)"
)


def white_noise_accuracy(model: nn.Module, eps: float, config: EvalConfig, on: OnDevice) -> float:
    """Accuracy of every sample under uniform white noise of size eps in the protocol's norm."""
    noise = WhiteNoise(
        model, eps=eps, norm=config.norm, clamp=config.clamp, respect_padding=config.respect_padding
    )
    return float(1.0 - on.broken_by(noise, np.arange(len(on.y))).mean())


def _levels(config: EvalConfig, amp_mv: np.ndarray, skipped: dict[str, str]) -> list[tuple[str, dict]]:
    """(label, level) of each noise level: microvolts where the samples carry an amplitude, then SNRs."""
    levels: list[tuple[str, dict[str, float]]] = [
        (f"snr_{v:g}db", {"snr_db": v}) for v in config.noise_snr_db
    ]
    if np.isfinite(amp_mv).all() and (amp_mv > 0).all():
        return [(f"{v:g}uv", {"amplitude_uv": v}) for v in config.noise_uv] + levels
    if config.noise_uv:
        skipped["noise_uv"] = "the beats have no amplitude in mV (Kaggle CSV rows?); only SNR levels were run"
    return levels


def _noise(kind: str, model: nn.Module, level: Mapping[str, float], nstdb: Any, fs: int) -> Any:
    if kind == "white":
        return GaussianNoise(model, **level)
    if kind.startswith("powerline"):
        return Powerline(model, freq_hz=float(kind.split("_")[1][:-2]), fs=fs, **level)
    return RecordedNoise(model, noise=nstdb[kind], kind=kind, **level)


def noise_stress(
    model: nn.Module, on: OnDevice, *, config: EvalConfig, nstdb: Mapping[str, np.ndarray] | None
) -> tuple[dict[str, float], dict[str, str]]:
    """Accuracy under each kind of noise at each level, and what was skipped and why.

    Keys are `KIND_LEVELuv` (RMS in microvolts) and `KIND_snr_LEVELdb`, e.g. `bw_snr_6db`.
    """
    skipped: dict[str, str] = {}
    kinds = ["white"]
    for k in ("bw", "ma"):
        if nstdb is not None and k in nstdb:
            kinds.append(k)
        else:
            skipped[f"noise_{k}"] = _NSTDB_MISSING
    kinds += ["powerline_50hz", "powerline_60hz"]
    amp_mv = on.samples.amp_mv
    levels = _levels(config, amp_mv, skipped)
    amp = torch.from_numpy(np.asarray(amp_mv, dtype=np.float32)).to(on.x.device)
    everyone = np.arange(len(on.y))
    out = {
        f"{kind}_{label}": float(
            1.0 - on.broken_by(_noise(kind, model, level, nstdb, on.samples.fs), everyone, amp_mv=amp).mean()
        )
        for kind in kinds
        for label, level in levels
    }
    return out, skipped
