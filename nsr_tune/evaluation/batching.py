"""Running a model or an attack over samples in batches: beats of one width, or records of
many lengths batched by length and each batch cut to its longest record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nsr_tune.data import BeatSet, RecordSet

__all__ = ["OnDevice", "batches", "broken_by", "predict_logits", "predict_samples"]


def batches(todo: np.ndarray, batch_size: int, lengths: np.ndarray | None = None) -> list[np.ndarray]:
    """`todo` (indices) in batches; with `lengths`, batches of similar length, so that a batch
    cut to its longest sample carries little padding."""
    if lengths is not None:
        todo = todo[np.argsort(lengths[todo], kind="stable")]
    return [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]


@torch.no_grad()
def predict_logits(
    model: nn.Module, samples: BeatSet | RecordSet, *, device: str | torch.device, batch_size: int = 256
) -> np.ndarray:
    """(N, C) logits of every sample, in batches padded only to their longest sample."""
    out: np.ndarray | None = None
    lengths = samples.length if samples.variable_length else None
    for idx in batches(np.arange(len(samples)), batch_size, lengths):
        x, _ = samples.inputs(idx)
        z = model(torch.from_numpy(x).to(device)).float().cpu().numpy()
        if out is None:
            out = np.zeros((len(samples), z.shape[1]), dtype=np.float32)
        out[idx] = z
    return out if out is not None else np.zeros((0, len(samples.classes)), dtype=np.float32)


def predict_samples(
    model: nn.Module, samples: BeatSet | RecordSet, *, device: str | torch.device, batch_size: int = 256
) -> np.ndarray:
    """(N,) predicted class of every sample (the largest logit)."""
    return predict_logits(model, samples, device=device, batch_size=batch_size).argmax(axis=1)


def broken_by(
    attack: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    lengths: torch.Tensor,
    todo: np.ndarray,
    *,
    generator: torch.Generator,
    batch_size: int,
    trim: bool = False,
    adv_pred: np.ndarray | None = None,
    **extra: Any,
) -> np.ndarray:
    """Which of the samples `todo` (indices) `attack` breaks, batch by batch: (len(todo),) bool.

    `trim`: samples of different lengths are batched by length and each batch is cut to its
    longest sample (the rest is padding). `adv_pred` (N,), when given, receives the class each
    broken sample is given at its adversarial input (for robust F1).
    """
    broken = np.zeros(len(x), dtype=bool)
    for part in batches(todo, batch_size, lengths.cpu().numpy() if trim else None):
        idx = torch.from_numpy(part).to(x.device)
        xb = x[idx]
        if trim:
            xb = xb[..., : int(lengths[idx].max())]
        extra_b = {k: v[idx] for k, v in extra.items()}
        res = attack(xb, y[idx], lengths=lengths[idx], generator=generator, **extra_b)
        hit = res.broken.cpu().numpy()
        broken[part] = hit
        if adv_pred is not None and hit.any():
            with torch.no_grad():
                z = attack.model(res.x_adv[torch.from_numpy(hit).to(x.device)])
            adv_pred[part[hit]] = z.argmax(dim=1).cpu().numpy()
    return broken[todo]


@dataclass(frozen=True, eq=False)
class OnDevice:
    """The samples an evaluation attacks, on its device, with the generator of its random starts.

    x: (N, leads, L) zero-padded to the longest sample; y: (N,) classes (or (N, K) label sets);
    lengths: (N,) real samples of each.
    """

    samples: BeatSet | RecordSet
    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor
    generator: torch.Generator
    batch_size: int

    @classmethod
    def of(
        cls, samples: BeatSet | RecordSet, *, device: torch.device, seed: int, batch_size: int
    ) -> OnDevice:
        x, lengths = samples.inputs(np.arange(len(samples)))
        return cls(
            samples=samples,
            x=torch.from_numpy(x).to(device),
            y=torch.from_numpy(samples.y).to(device),
            lengths=torch.from_numpy(lengths).to(device),
            generator=torch.Generator(device=device).manual_seed(seed),
            batch_size=batch_size,
        )

    def broken_by(self, attack: Any, todo: np.ndarray, **extra: Any) -> np.ndarray:
        """Which of the samples `todo` `attack` breaks (see `broken_by`)."""
        return broken_by(
            attack,
            self.x,
            self.y,
            self.lengths,
            todo,
            generator=self.generator,
            batch_size=self.batch_size,
            trim=self.samples.variable_length,
            **extra,
        )
