"""The paper's CPSC2018 model: a 1-D ResNet-18 over multi-lead records of any length.

Stem: conv k11 s2 (64 channels at full width) and max-pooling k3 s2; then four stages of
basic blocks (two per stage in ResNet-18) at 64, 128, 256 and 512 channels, each stage after
the first halving the length; then the mean over the real samples and a linear head.
`width` and `blocks` give the CPU-sized variant (e.g. width 16, one block per stage).

Padding does not leak. The model finds a record's real samples itself: everything up to the
last sample that is non-zero in some lead. After every layer it zeroes the positions past
them (the padding mask, strided along with the signal), and it pools over real positions
only. So a record zero-padded to any length gives the same logits, and the model stays a
plain function of x that any attack can call. A record whose own last samples are zero in
every lead is read as ending before them, whatever its padding.

No batch norm, as in ResNet1d: the NSR and Jacobian terms take the input gradient of a batch
sum, which is each record's own gradient only if records do not interact, and batch norm in
training mode couples them. Each residual branch starts at zero instead (Fixup, Zhang et al.
2019), which keeps a deep plain ResNet trainable.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ResNet18", "real_mask"]


def real_mask(x: torch.Tensor) -> torch.Tensor:
    """(B, C, L) -> (B, 1, L) float: 1 up to and including the last sample non-zero in any lead."""
    nonzero = (x != 0).any(dim=1).flip(-1).to(torch.int8)  # (B, L), reversed
    return nonzero.cummax(dim=-1).values.flip(-1).unsqueeze(1).to(x.dtype)


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2)
        nn.init.zeros_(self.conv2.weight)  # the branch starts at zero (Fixup)
        self.skip = (
            nn.Conv1d(c_in, c_out, 1, stride=stride) if (stride != 1 or c_in != c_out) else nn.Identity()
        )

    def forward(self, h: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # (B, C_in, L), (B, 1, L) -> (B, C_out, ceil(L / stride)), (B, 1, ceil(L / stride))
        m = m[..., :: self.stride]
        branch = self.conv2(F.relu(self.conv1(h)) * m)
        return F.relu(branch + self.skip(h)) * m, m


class ResNet18(nn.Module):
    def __init__(
        self,
        *,
        width: int = 64,
        blocks: int = 2,
        kernel: int = 7,
        in_leads: int = 8,
        n_classes: int = 9,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv1d(in_leads, width, 11, stride=2, padding=5)
        layers: list[_Block] = []
        c = width
        for stage in range(4):
            c_out = width * 2**stage
            for i in range(blocks):
                layers.append(_Block(c, c_out, kernel, stride=2 if (i == 0 and stage > 0) else 1))
                c = c_out
        self.blocks = nn.ModuleList(layers)
        self.head = nn.Linear(c, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, leads, L) -> (B, n_classes)
        m = real_mask(x)  # (B, 1, L)
        x = x * m  # no gradient reaches the padding
        m = m[..., ::2]
        h = F.relu(self.stem(x)) * m  # (B, width, ceil(L / 2))
        # After ReLU every value is >= 0, so the zeros past the record never win a max over
        # a window that holds real positions: the pooling cannot see the padding either.
        m = m[..., ::2]
        # The window of the first position past the record still reaches its last real sample:
        # zero it, or the next convolution would see a value that exists only when padded.
        h = F.max_pool1d(h, 3, stride=2, padding=1) * m
        for block in self.blocks:
            h, m = block(h, m)
        pooled = (h * m).sum(dim=2) / m.sum(dim=2).clamp_min(1.0)  # (B, C): mean over real positions
        return self.head(pooled)
