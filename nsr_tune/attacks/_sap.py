"""SAP, smooth adversarial perturbations (Han et al., Nature Medicine 2020), as Ma & Liang evaluate it.

The perturbation is delta = mask * mean_k (G_k * theta): the average of copies of a free tensor
theta (B, leads, L), each smoothed along time by a Gaussian kernel G_k. The authors' 25 kernels are
every size in {5, 7, 11, 15, 19} samples with every sigma in {1, 3, 5, 7, 10} samples, at their
300 Hz. Their published code (XintianHan/ADV_ECG, create_adv_conv_train.py; Ma & Liang's copy too)
sums all 25 smoothed copies and divides by 25, so every kernel takes effect; so does this one.
"""

from __future__ import annotations

import itertools
import warnings

import torch
from torch import nn
from torch.nn import functional as F

from nsr_tune._checks import positive_int
from nsr_tune.attacks._base import Attack, AttackResult
from nsr_tune.attacks._losses import margin_loss
from nsr_tune.attacks._pgd import PGD
from nsr_tune.errors import ConfigError

# The kernels in samples at the authors' sampling rate. They are meant as durations: at `fs` Hz a
# kernel spans size / 300 s with sigma / 300 s. (Ma & Liang applied the sample counts unchanged
# to 125 Hz beats, which smooths 2.4 times longer in time; fs=300 reproduces that.)
_AUTHORS_HZ = 300.0
_SIZES = (5, 7, 11, 15, 19)
_SIGMAS = (1.0, 3.0, 5.0, 7.0, 10.0)


def gaussian_kernels(fs: float) -> list[torch.Tensor]:
    """The 25 kernels at `fs` Hz: 1-D float64, odd length >= 3, each summing to 1."""
    kernels = []
    for size, sigma in itertools.product(_SIZES, _SIGMAS):
        half = max(1, round((size * fs / _AUTHORS_HZ - 1) / 2))  # the nearest odd length, at least 3
        t = torch.arange(-half, half + 1, dtype=torch.float64)
        k = torch.exp(-0.5 * (t / (sigma * fs / _AUTHORS_HZ)) ** 2)
        kernels.append(k / k.sum())
    return kernels


def smoothing_kernel(fs: float, length: int) -> torch.Tensor:
    """mean_k G_k as one centred kernel, cut to fit a signal of `length` samples (float64, sum 1).

    Convolution is linear, so mean_k (G_k * theta) = (mean_k G_k) * theta: one convolution does it.
    """
    kernels = gaussian_kernels(fs)
    half = max(len(k) for k in kernels) // 2
    mean = torch.stack([F.pad(k, (half - len(k) // 2,) * 2) for k in kernels]).mean(0)
    fit = (length - 1) // 2
    if fit < half:
        warnings.warn(
            f"SAP: kernels of {2 * half + 1} samples cut to {2 * fit + 1} to fit beats of {length}",
            stacklevel=3,
        )
        mean = mean[half - fit : half + fit + 1]
        mean = mean / mean.sum()
    return mean


def smooth(theta: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """(B, C, L) convolved along time with `kernel`, each lead on its own; the length is kept.

    Reflect padding, not the authors' zeros: zeros would pull the perturbation toward 0 within half
    a kernel of each end, wasting budget at the beat's start, where the R peak of these beats lies.
    Either way the padded signal holds only values of theta, so with weights >= 0 summing to 1,
    |smooth(theta)| <= max |theta| everywhere.
    """
    c, half = theta.shape[1], len(kernel) // 2
    padded = F.pad(theta, (half, half), mode="reflect") if half else theta
    return F.conv1d(padded, kernel.to(theta).expand(c, 1, -1), groups=c)


class SAP(Attack):
    """Signed-gradient ascent of the margin loss on theta, started from a PGD perturbation.

    theta starts as PGD's last iterate at the same eps (margin loss, no early exit, so that it has
    the largest margin it reached), then takes `steps` steps. A beat is broken if the model gets it
    wrong clean, or at any smoothed iterate, the first being smooth(PGD's iterate); its adversarial
    beat is the first such iterate. PGD's own iterates do not count: they are not smooth. An
    unbroken beat comes back unchanged. With `early_exit`, broken beats leave the batch.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        fs: float,
        norm: str = "linf",
        steps: int = 100,
        step_size: float | None = None,
        pgd_steps: int = 20,
        early_exit: bool = True,
        clamp: bool = False,
        respect_padding: bool = True,
    ) -> None:
        super().__init__(model, eps=eps, norm=norm, clamp=clamp, respect_padding=respect_padding)
        if isinstance(fs, bool) or not (isinstance(fs, (int, float)) and fs > 0):
            raise ConfigError(f"fs: must be a positive sampling rate in Hz, got {fs!r}")
        positive_int(steps, "steps")
        positive_int(pgd_steps, "pgd_steps")
        if step_size is not None and not step_size > 0:
            raise ConfigError(f"step_size: must be positive, got {step_size!r}")
        self.fs = float(fs)
        self.steps = steps
        # As PGD: theta may cross its box 2.5 times (the authors took eps / 10 for 40 steps).
        self.step_size = float(step_size) if step_size is not None else 2.5 * self.eps / steps
        self.early_exit = early_exit
        pgd_kw = {"eps": eps, "norm": norm, "clamp": clamp, "respect_padding": respect_padding}
        self.pgd = PGD(model, steps=pgd_steps, loss="margin", early_exit=False, **pgd_kw)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None
    ) -> AttackResult:
        x_adv = x.clone()
        with torch.no_grad():
            broken = self.model(x).argmax(dim=1) != y  # (B,) already wrong on clean input
        todo = torch.nonzero(~broken).squeeze(1)
        if todo.numel() == 0:
            return AttackResult(x_adv, broken)
        x, y, mask = x[todo], y[todo], mask[todo]  # from here on, only the beats under attack
        kernel = smoothing_kernel(self.fs, x.shape[-1]).to(x)
        theta = self.pgd.last_iterate(x, y, mask=mask, generator=generator) - x
        theta = self._project(theta, mask, kernel)
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        x_best = x.clone()
        active = torch.arange(len(x), device=x.device)
        compact_every = self._compact_every(x)
        for step in range(self.steps + 1):
            th = theta[active].requires_grad_(step < self.steps)
            with torch.enable_grad():
                xa = x[active] + self._delta(x[active], th, mask[active], kernel)
                z = self.model(xa)  # (A, C)
                self._keep_first_hits(z, y, xa, active, fooled, x_best)
                if step == self.steps:
                    break
                (grad,) = torch.autograd.grad(margin_loss(z, y[active]).sum(), th)
            if self.early_exit and (step + 1) % compact_every == 0:
                keep = ~fooled[active]
                active, grad = active[keep], grad[keep]
                if active.numel() == 0:
                    break
            stepped = theta[active] + self.step_size * self.projection.ascent(grad)
            theta[active] = self._project(stepped, mask[active], kernel)
        x_adv[todo], broken[todo] = x_best, fooled
        return AttackResult(x_adv, broken)

    def _delta(
        self, x: torch.Tensor, theta: torch.Tensor, mask: torch.Tensor, kernel: torch.Tensor
    ) -> torch.Tensor:
        delta = mask * smooth(theta, kernel)
        # Clamping x + delta to [0, 1] only moves entries toward 0, so delta stays in the ball (and
        # stays smooth except where the beat meets 0 or 1).
        return (x + delta).clamp(0.0, 1.0) - x if self.clamp else delta

    def _project(self, theta: torch.Tensor, mask: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            # Clipping theta suffices: |smooth(theta)| <= max |theta| (see `smooth`), mask in [0, 1].
            return theta.clamp(-self.eps, self.eps)
        # L2: delta is linear in theta, so scaling theta by eps / ||delta|| when ||delta|| > eps puts
        # delta back on the ball's surface; the smoothing itself need not shrink L2 norms at the ends.
        norms = (mask * smooth(theta, kernel)).flatten(1).norm(dim=1).view(-1, 1, 1)
        return theta * (self.eps / norms.clamp_min(self.eps))
