"""A 1-D ResNet with width and depth knobs.

No batch norm on purpose: the NSR and Jacobian terms take the input gradient of a batch sum,
which equals the per-sample gradients only if samples do not interact, and batch norm in
training mode couples them. GroupNorm-free residual nets train fine at this size.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2)
        self.skip = (
            nn.Conv1d(c_in, c_out, 1, stride=stride) if (stride != 1 or c_in != c_out) else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, L) -> (B, C_out, ceil(L / stride))
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.skip(x))


class ResNet1d(nn.Module):
    def __init__(
        self,
        *,
        width: int = 16,
        stages: int = 3,
        blocks_per_stage: int = 2,
        kernel: int = 7,
        n_classes: int = 5,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv1d(1, width, kernel, padding=kernel // 2)
        blocks: list[nn.Module] = []
        c = width
        for stage in range(stages):
            c_out = width * 2**stage
            for i in range(blocks_per_stage):
                blocks.append(_Block(c, c_out, kernel, stride=2 if (i == 0 and stage > 0) else 1))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 187) -> (B, n_classes)
        h = self.blocks(F.relu(self.stem(x)))  # (B, C, L')
        return self.head(h.mean(dim=2))
