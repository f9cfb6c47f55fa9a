"""The paper's MLP: 187 -> 128 -> 128 -> 128 -> 32 -> 5, ReLU after the first three layers."""

from __future__ import annotations

import torch
from torch import nn


class PaperMLP(nn.Module):
    def __init__(
        self,
        *,
        hidden: int = 128,
        depth: int = 3,
        bottleneck: int = 32,
        n_classes: int = 5,
        length: int = 187,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = length
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        # As in the paper, no non-linearity between the bottleneck and the output layer.
        layers += [nn.Linear(width, bottleneck), nn.Linear(bottleneck, n_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, L) -> (B, n_classes)
        return self.net(x.flatten(1))
