"""A CNN whose Lipschitz constant (L2 to L2) has a cheap, differentiable upper bound.

The network is a chain x -> conv -> ReLU -> ... -> conv -> ReLU -> flatten -> linear. ReLU is
1-Lipschitz, so the product of the layers' operator norms bounds the whole chain's constant.
A layer's operator norm is its largest singular value, found by power iteration on the layer
as a linear map of its actual input shape (for a convolution, conv then its transpose), with
the iterate kept between steps as LMT does: one iteration per training step is enough once it
has converged, and the bound stays differentiable in the weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# Iterations of a fresh power iteration (the first training step, or evaluation from scratch).
_WARMUP_ITERS = 20


class LipschitzCNN(nn.Module):
    """A strided 1-D CNN with a Lipschitz bound (for the lmt objective of nsr_tune_lipschitz)."""

    def __init__(
        self,
        *,
        in_leads: int,
        length: int | None,
        n_classes: int,
        width: int = 32,
        depth: int = 3,
        kernel: int = 7,
    ) -> None:
        super().__init__()
        if length is None:
            raise ValueError("lipschitz_cnn needs inputs of one length (beats), not records of any length")
        if depth < 1 or width < 1 or kernel < 1 or kernel % 2 == 0:
            raise ValueError("width and depth must be >= 1, kernel odd and >= 1")
        self.convs = nn.ModuleList()
        shapes = []  # (channels, length) of each layer's input
        channels, size = in_leads, length
        for _ in range(depth):
            shapes.append((channels, size))
            self.convs.append(nn.Conv1d(channels, width, kernel, stride=2, padding=kernel // 2))
            channels, size = width, (size + 2 * (kernel // 2) - kernel) // 2 + 1
        self.head = nn.Linear(channels * size, n_classes)
        self._shapes = shapes
        # Power-iteration vectors, one per layer, in the shape of that layer's input.
        for i, (c, n) in enumerate(shapes):
            self.register_buffer(f"_u{i}", torch.randn(1, c, n))
        self.register_buffer("_u_head", torch.randn(1, channels * size))
        self.register_buffer("_warm", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, leads, L) -> (B, n_classes)
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.head(x.flatten(1))

    def _conv_norm(self, conv: nn.Conv1d, name: str, iters: int) -> torch.Tensor:
        u = getattr(self, name)
        with torch.no_grad():
            for _ in range(iters):
                v = F.conv1d(u, conv.weight, stride=conv.stride, padding=conv.padding)
                u = F.conv_transpose1d(
                    v, conv.weight, stride=conv.stride, padding=conv.padding, output_padding=_pad(conv, u, v)
                )
                u = u / u.norm().clamp_min(1e-12)
            getattr(self, name).copy_(u)
        # Differentiable in the weights: ||W u|| for the (fixed) top singular vector u.
        return F.conv1d(u, conv.weight, stride=conv.stride, padding=conv.padding).norm()

    def lipschitz_bound(self, iters: int = 1) -> torch.Tensor:
        """An upper bound of the L2 Lipschitz constant from input to logits (a scalar tensor).

        The bias of a layer does not change its constant; only the weights enter."""
        if not bool(self._warm):
            iters = max(iters, _WARMUP_ITERS)
            self._warm.fill_(True)
        bound = torch.ones((), device=self.head.weight.device)
        for i, conv in enumerate(self.convs):
            bound = bound * self._conv_norm(conv, f"_u{i}", iters)
        u = self._u_head
        with torch.no_grad():
            for _ in range(iters):
                u = (u @ self.head.weight.T) @ self.head.weight
                u = u / u.norm().clamp_min(1e-12)
            self._u_head.copy_(u)
        return bound * (u @ self.head.weight.T).norm()


def _pad(conv: nn.Conv1d, u: torch.Tensor, v: torch.Tensor) -> int:
    """The output padding that makes the transposed convolution give back u's length."""
    (stride,), (pad,), (k,) = conv.stride, conv.padding, conv.kernel_size
    return u.shape[-1] - ((v.shape[-1] - 1) * stride - 2 * pad + k)
