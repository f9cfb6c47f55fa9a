"""The paper's CNN for MIT-BIH beats (Kachuee et al. 2018, as used by Ma & Liang)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(width, width, 5, padding=2)
        self.conv2 = nn.Conv1d(width, width, 5, padding=2)
        self.pool = nn.MaxPool1d(5, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, W, L) -> (B, W, (L - 5) // 2 + 1)
        h = self.conv2(F.relu(self.conv1(x)))
        return self.pool(F.relu(h + x))


def pooled_length(length: int) -> int:
    """Samples left after one block's max-pool (kernel 5, stride 2); below 1 the input was too short."""
    return (length - 5) // 2 + 1


class PaperCNN(nn.Module):
    """conv 1->32 (k5); 5 x [conv k5, ReLU, conv k5, +input, ReLU, max-pool k5 s2]; 64 -> 32 -> 5."""

    def __init__(self, *, width: int = 32, blocks: int = 5, n_classes: int = 5, length: int = 187) -> None:
        super().__init__()
        self.stem = nn.Conv1d(1, width, 5, padding=2)
        self.blocks = nn.Sequential(*[_ResidualBlock(width) for _ in range(blocks)])
        for _ in range(blocks):
            length = pooled_length(length)  # 187 -> 92 -> 44 -> 20 -> 8 -> 2; 375 -> ... -> 8
        self.fc1 = nn.Linear(width * length, 32)
        self.fc2 = nn.Linear(32, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, L) -> (B, n_classes)
        h = self.blocks(self.stem(x))  # (B, W, 2) with the paper's settings
        return self.fc2(F.relu(self.fc1(h.flatten(1))))
