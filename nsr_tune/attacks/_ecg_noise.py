"""Real ECG noise added to beats: the noise stress test (Moody, Muldrow & Mark 1984), not an attack.

Beats are min-max scaled one by one (x in [0, 1], ``amp_mv`` the range in mV they were divided
by), so a noise level in mV means a different size in each beat: a noise ``n`` in mV is added as
``x + n / amp_mv``, on the beat's real samples only (its zero padding stays as it is).

The level is either an amplitude, ``amplitude_uv``: the RMS of the added noise over the beat's
real samples, in µV; or a signal-to-noise ratio, ``snr_db`` = 10 log10(S / N) per beat, where N is
the mean square of the added noise and S the beat's signal power measured as the NST does, from the
peak-to-peak amplitude A of the beat (over its real samples, in mV): S = A² / 8, the power of a
sinusoid of that peak-to-peak amplitude. Either way the noise is scaled per beat so that the level
holds exactly for every beat. With snr_db, amp_mv cancels out, so beats without it (Kaggle CSV
rows) can be used.

Like the attacks, a noise is called as ``noise(x, y, lengths=..., amp_mv=..., generator=...)`` and
returns an ``AttackResult`` (the noisy beats, and which of them the model gets wrong). Unlike them,
the size of the change is not bounded by an eps in x's units, so the classes do not derive from
Attack. Every draw (segment, channel, phase) comes from ``generator``, per beat, batched.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from nsr_tune.attacks._base import AttackResult, padding_mask
from nsr_tune.errors import ConfigError

__all__ = ["BeatNoise", "GaussianNoise", "Powerline", "RecordedNoise", "signal_power_mv2"]

# The sampling rate of MIT-BIH beats (nsr_tune.data.FS), the default for powerline hum.
BEAT_FS = 125


def _positive(value: object, name: str) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}: must be a positive number, got {value!r}")
    return float(value)


def _real_range(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) max - min of each beat over its real samples (mask (B, L) of 0/1)."""
    real = mask > 0
    hi = x.masked_fill(~real, -math.inf).amax(dim=1)
    lo = x.masked_fill(~real, math.inf).amin(dim=1)
    return hi - lo


def signal_power_mv2(
    x: torch.Tensor, *, lengths: torch.Tensor | None = None, amp_mv: torch.Tensor
) -> torch.Tensor:
    """(B,) the NST's signal power of each beat in mV²: (peak-to-peak over its real samples)² / 8."""
    mask = padding_mask(x, lengths)[:, 0]
    pp = _real_range(x[:, 0], mask) * torch.as_tensor(amp_mv, device=x.device, dtype=x.dtype)
    return pp**2 / 8


class BeatNoise:
    """The shared mechanics: the level (amplitude or SNR), the padding, the mV scaling, the model.

    Subclasses implement ``waveform``: a (B, L) noise of any scale; it is then scaled per beat so
    that its RMS over the beat's real samples is the level asked for.
    """

    kind: str = "noise"

    def __init__(
        self, model: nn.Module, *, amplitude_uv: float | None = None, snr_db: float | None = None
    ) -> None:
        if (amplitude_uv is None) == (snr_db is None):
            raise ConfigError(
                "give exactly one of amplitude_uv and snr_db, "
                f"got amplitude_uv={amplitude_uv!r}, snr_db={snr_db!r}"
            )
        if snr_db is not None and (
            isinstance(snr_db, bool) or not isinstance(snr_db, (int, float)) or not math.isfinite(snr_db)
        ):
            raise ConfigError(f"snr_db: must be a finite number, got {snr_db!r}")
        self.model = model
        self.amplitude_uv = None if amplitude_uv is None else _positive(amplitude_uv, "amplitude_uv")
        self.snr_db = None if snr_db is None else float(snr_db)

    @property
    def label(self) -> str:
        """E.g. "ma 100 uV" or "bw SNR 6 dB", for logs and plots."""
        level = f"{self.amplitude_uv:g} uV" if self.amplitude_uv is not None else f"SNR {self.snr_db:g} dB"
        return f"{self.kind} {level}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label})"

    def waveform(
        self, mask: torch.Tensor, like: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """(B, L) noise on the device and dtype of ``like`` (B, L); mask (B, L) is 1 on real samples."""
        raise NotImplementedError

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        lengths: torch.Tensor | None = None,
        amp_mv: torch.Tensor | np.ndarray | None = None,
        generator: torch.Generator | None = None,
    ) -> AttackResult:
        if x.dim() != 3 or x.shape[1] != 1 or y.shape != (x.shape[0],):
            raise ConfigError(
                f"x, y: expected shapes (B, 1, L) and (B,), got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        x = x.detach()
        batch, length = x.shape[0], x.shape[-1]
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device)
            if lengths.shape != (batch,) or (batch and (lengths.min() < 2 or lengths.max() > length)):
                raise ConfigError(f"lengths: expected ({batch},) beat lengths in 2..{length}")
        elif length < 2:
            raise ConfigError(f"x: beats need at least 2 samples, got {length}")
        work = torch.promote_types(x.dtype, torch.float32)  # float16 beats: the scaling in float32
        mask = padding_mask(x, lengths)[:, 0].to(work)  # (B, L)
        real = mask.sum(dim=1)  # (B,)
        xw = x[:, 0].to(work)

        noise = self.waveform(mask, xw, generator) * mask
        rms = ((noise**2).sum(dim=1) / real).sqrt()
        if batch and not bool((rms > 0).all()):
            raise RuntimeError(f"{self!r} drew a noise segment that is flat over a beat; cannot scale it")
        unit = noise / rms[:, None]  # RMS 1 over the real samples
        if self.amplitude_uv is not None:
            amp = self._amp_mv(amp_mv, batch, xw)
            delta = unit * (self.amplitude_uv / 1000.0 / amp)[:, None]
        else:
            # S / N = snr with S = (pp_mv)² / 8 and pp_mv = pp * amp_mv: in x's units amp_mv cancels.
            pp = _real_range(xw, mask)
            delta = unit * (pp / math.sqrt(8 * 10 ** (self.snr_db / 10)))[:, None]
        x_noisy = x + delta.unsqueeze(1).to(x.dtype)  # delta is exactly 0 on the padding
        if torch.isnan(x_noisy).any():
            raise RuntimeError(f"{self!r} produced NaN beats")
        with torch.no_grad():
            broken = self.model(x_noisy).argmax(dim=1) != y
        return AttackResult(x_noisy, broken)

    def _amp_mv(
        self, amp_mv: torch.Tensor | np.ndarray | None, batch: int, like: torch.Tensor
    ) -> torch.Tensor:
        if amp_mv is None:
            raise ConfigError(f"{self!r}: amp_mv is needed to turn µV into the beats' units (or give snr_db)")
        amp = torch.as_tensor(amp_mv).to(device=like.device, dtype=like.dtype)
        if amp.shape != (batch,):
            raise ConfigError(f"amp_mv: expected shape ({batch},), got {tuple(amp.shape)}")
        bad = ~(torch.isfinite(amp) & (amp > 0))
        if bad.any():
            raise ConfigError(
                f"amp_mv: {int(bad.sum())} of {batch} beats have no positive amplitude in mV (NaN for "
                "Kaggle CSV beats, 0 for a flat window); noise in µV cannot be scaled to them (give snr_db "
                "instead)"
            )
        return amp


def _draw(fn, *args, generator: torch.Generator | None, like: torch.Tensor, **kwargs) -> torch.Tensor:
    """Random numbers from ``generator`` on its own device, moved to ``like``'s device."""
    device = generator.device if generator is not None else like.device
    return fn(*args, generator=generator, device=device, **kwargs).to(like.device)


class GaussianNoise(BeatNoise):
    """White Gaussian noise, at the same levels as the recorded noise: the reference beside it."""

    kind = "white"

    def waveform(
        self, mask: torch.Tensor, like: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        return _draw(torch.randn, mask.shape, generator=generator, like=like, dtype=like.dtype)


class RecordedNoise(BeatNoise):
    """A segment of a real noise record (e.g. NSTDB ``bw`` or ``ma``) added to each beat.

    ``noise``: (channels, n) in mV at the beats' sampling rate (``load_nstdb(...)[kind]``). Each beat
    gets its own segment: a random channel and a random start, as long as the beat. The segment's
    mean over the beat's real samples is removed (a constant offset is not noise to a beat that is
    min-max scaled, and the NST cancels such steps too), then it is scaled to the level.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        noise: np.ndarray,
        kind: str,
        amplitude_uv: float | None = None,
        snr_db: float | None = None,
    ) -> None:
        super().__init__(model, amplitude_uv=amplitude_uv, snr_db=snr_db)
        arr = np.asarray(noise, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 2:
            raise ConfigError(f"noise: expected an array (channels, n) in mV, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ConfigError("noise: holds NaN or infinite samples")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"kind: must be a non-empty name, got {kind!r}")
        self.kind = kind
        self.noise = torch.from_numpy(arr.copy())
        self._on: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def _noise_like(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.device, like.dtype)
        if key not in self._on:
            self._on[key] = self.noise.to(device=like.device, dtype=like.dtype)
        return self._on[key]

    def waveform(
        self, mask: torch.Tensor, like: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        batch, length = mask.shape
        channels, n = self.noise.shape
        if n < length:
            raise ConfigError(f"noise {self.kind}: {n} samples, shorter than a beat of {length}")
        channel = _draw(torch.randint, channels, (batch,), generator=generator, like=like)
        start = _draw(torch.randint, n - length + 1, (batch,), generator=generator, like=like)
        index = start[:, None] + torch.arange(length, device=like.device)[None, :]  # (B, L)
        segment = self._noise_like(like)[channel[:, None], index]  # (B, L) gathered, no loop
        mean = (segment * mask).sum(dim=1) / mask.sum(dim=1)
        return segment - mean[:, None]


class Powerline(BeatNoise):
    """Power-line interference: a sinusoid at ``freq_hz`` (50 or 60 Hz) with a random phase per beat.

    Its amplitude is set per beat so that its RMS over the beat's real samples is the level (for a
    beat of many periods that is a peak amplitude of sqrt(2) x amplitude_uv, to within a few %).
    """

    kind = "powerline"

    def __init__(
        self,
        model: nn.Module,
        *,
        freq_hz: float,
        fs: float = BEAT_FS,
        amplitude_uv: float | None = None,
        snr_db: float | None = None,
    ) -> None:
        super().__init__(model, amplitude_uv=amplitude_uv, snr_db=snr_db)
        self.freq_hz = _positive(freq_hz, "freq_hz")
        self.fs = _positive(fs, "fs")
        if self.freq_hz >= self.fs / 2:
            raise ConfigError(f"freq_hz: {freq_hz} Hz is not below the Nyquist frequency of fs = {fs} Hz")
        self.kind = f"powerline {self.freq_hz:g} Hz"

    def waveform(
        self, mask: torch.Tensor, like: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        batch, length = mask.shape
        phase = _draw(torch.rand, (batch, 1), generator=generator, like=like, dtype=like.dtype)  # in cycles
        # Cycles per sample taken modulo 1 in float64 (on the CPU: not every device has it), so that the
        # angle stays exact in float32 however many periods the beat spans.
        cycles = (torch.arange(length, dtype=torch.float64) * (self.freq_hz / self.fs)) % 1.0
        return torch.sin(2 * math.pi * (cycles.to(like)[None, :] + phase))
