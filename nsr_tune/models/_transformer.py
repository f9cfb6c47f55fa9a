"""A small Transformer encoder over non-overlapping patches of a beat.

Attention is written out rather than taken from `nn.MultiheadAttention`: the fused CPU attention
kernels have no double backward, and the NSR and Jacobian objectives differentiate through the
input gradient.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class _EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, P, D) -> (B, P, D)
        b, p, d = h.shape
        q, k, v = (
            self.qkv(self.norm1(h)).view(b, p, 3, self.heads, d // self.heads).unbind(2)
        )  # (B, P, H, Dh)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, P, Dh)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)  # (B, H, P, P)
        h = h + self.proj((att @ v).transpose(1, 2).reshape(b, p, d))
        return h + self.ff(self.norm2(h))


class BeatTransformer(nn.Module):
    def __init__(
        self,
        *,
        patch: int = 11,
        d_model: int = 64,
        depth: int = 2,
        heads: int = 4,
        n_classes: int = 5,
        length: int = 187,
    ) -> None:
        super().__init__()
        self.patch = patch
        self.length = length
        self.n_patches = math.ceil(length / patch)  # 187 / 11 = 17 patches; 375 / 11 = 35
        self.embed = nn.Linear(patch, d_model)
        self.pos = nn.Parameter(torch.zeros(1, self.n_patches, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.layers = nn.Sequential(*[_EncoderLayer(d_model, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, L) -> (B, n_classes)
        # Padding the last patch would also accept a shorter input, and a negative pad would crop
        # a longer one: refuse any width but the one the positions were built for.
        if x.shape[-1] != self.length:
            raise ValueError(f"input: this transformer takes {self.length}-sample beats, got {x.shape[-1]}")
        pad = self.n_patches * self.patch - x.shape[-1]
        tokens = F.pad(x, (0, pad)).reshape(x.shape[0], self.n_patches, self.patch)  # (B, P, patch)
        h = self.layers(self.embed(tokens) + self.pos)  # (B, P, D)
        return self.head(self.norm(h.mean(dim=1)))
