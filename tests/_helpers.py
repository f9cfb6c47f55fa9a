"""Small shared helpers for tests (not fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


def kaggle_beats(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real beats from the Kaggle-format CSV sample: x (B, 1, 187), y (B,), true lengths (B,)."""
    rows = np.loadtxt(path, delimiter=",", dtype=np.float32)
    x = torch.from_numpy(rows[:, :187]).unsqueeze(1)
    y = torch.from_numpy(rows[:, 187].astype(np.int64))
    nonzero = (x[:, 0] != 0).int()
    lengths = 187 - nonzero.flip(1).argmax(dim=1)  # index of the last non-zero sample + 1
    return x, y, lengths


def linear_model(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(187, 5)).to(dtype)


def train_quick(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 30, seed: int = 0
) -> nn.Module:
    """A few full-batch Adam epochs: enough for a model that is right on most beats."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()
