"""RR intervals measured from the signal inside the model (de Chazal et al. 2004's rhythm features).

A premature supraventricular beat differs from a normal one mostly in *when* it comes: its RR
interval is short against the patient's own local mean. Taking that interval from the reference
annotations would hand the model a side input an attacker cannot touch, so `RRFeatures` detects
the R peaks in the input window itself, like a QRS detector (slope energy, a threshold, a
refractory period), and every number it returns is a function of the signal the attacks perturb.

Which samples are peaks is a hard decision (a threshold and a local maximum); where each peak
lies is a soft-argmax of the slope energy around it, so the intervals have a gradient with
respect to the signal: an attack can move peaks by gradient, and only adding or removing one
needs a search (the strong protocol's gradient-free attacks).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nsr_tune.models._cnn import _ResidualBlock, pooled_length

#: The features, in this order: the interval before the beat, the one after it, the local mean
#: RR over the look-back (seconds), the three ratios as logarithms, and how irregular the rhythm
#: is: the mean absolute difference between successive intervals of the look-back over their
#: mean (high in atrial fibrillation, where an early beat is no sign of an ectopic one).
RR_FEATURES = (
    "pre_rr",
    "post_rr",
    "local_rr",
    "log_pre_local",
    "log_post_local",
    "log_pre_post",
    "irregularity",
)

_SMOOTH_S = 0.08  # slope-energy smoothing: about a QRS complex
_REFRACTORY_S = 0.2  # two beats are never closer than this (local-maximum half-width)
_THRESHOLD = 0.25  # a peak is a QRS if its energy is this share of the window's reference energy
_REFERENCE_Q = 0.98  # the reference energy: this quantile of the window's slope energy
_SOFT_HALF_S = 0.04  # soft-argmax half-width around a detected peak
_SOFT_TEMPERATURE = 0.1  # on energies scaled by the reference
_MAX_BEATS_S = 5  # at most this many peaks a second (the refractory period allows 5)
_TEMPLATE_BEATS = 8  # look-back beats whose median is the patient's template
_TEMPLATE_BEFORE_S, _TEMPLATE_AFTER_S = 0.25, 0.45  # the stretch compared: the QRS and the T wave
# `own_beat`'s stretch: the beat's QRS and the start of its T wave, and not the next beat, which
# in a bigeminy (MIT-BIH 208: a ventricular beat 0.42 s, 5th percentile, after a fusion beat)
# starts its QRS well before 0.4 s.
_OWN_BEFORE_S, _OWN_AFTER_S = 0.25, 0.3


#: `record_peaks`' window: the `lookback` input's 1438 samples at 125 Hz (10 s back, 1.5 s ahead).
_RECORD_WINDOW_S = 11.5
#: `record_peaks` keeps no peak within this of a window's edge, where the smoothing and the local
#: maximum see padding; more than the refractory period plus half the smoothing.
_RECORD_MARGIN_S = 1.0


class RRFeatures(nn.Module):
    """(B, 1, L) beat windows with the R peak at sample ``r_index`` -> (B, 7) RR features.

    The window must reach back several beats (the `lookback` input: 10 s) for the local mean to
    mean something; it is computed from the first detected peak in the window to the beat's own.
    """

    def __init__(self, *, r_index: int, fs: int) -> None:
        super().__init__()
        self.r_index, self.fs = r_index, fs
        self.smooth = max(1, round(_SMOOTH_S * fs)) | 1  # odd, so the energy stays centred
        self.refractory = max(1, round(_REFRACTORY_S * fs))
        self.soft_half = max(1, round(_SOFT_HALF_S * fs))
        self.template_before = round(_TEMPLATE_BEFORE_S * fs)
        self.template_after = round(_TEMPLATE_AFTER_S * fs)

    def energy(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, L) -> (B, L), scaled by the reference
        slope = torch.diff(x[:, 0], dim=1, prepend=x[:, 0, :1])  # (B, L); the first slope is 0
        e = F.avg_pool1d(slope.square().unsqueeze(1), self.smooth, 1, self.smooth // 2).squeeze(1)
        ref = torch.quantile(e.detach(), _REFERENCE_Q, dim=1, keepdim=True)  # (B, 1)
        return e / ref.clamp_min(1e-12)

    def peaks(self, e: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, L) bool, no gradient
        width = 2 * self.refractory + 1
        local_max = F.max_pool1d(e.detach().unsqueeze(1), width, 1, self.refractory).squeeze(1)
        return (e.detach() >= local_max) & (e.detach() > _THRESHOLD)

    def soft_position(
        self, e: torch.Tensor, index: torch.Tensor
    ) -> torch.Tensor:  # (B, L), (B, ...) -> (B, ...)
        """The soft-argmax of the energy within +-soft_half of ``index``: a peak's position in
        samples, with a gradient. Energy outside the window counts as 0."""
        offsets = torch.arange(-self.soft_half, self.soft_half + 1, device=e.device)  # (W,)
        at = index[..., None] + offsets  # (B, ..., W)
        inside = (at >= 0) & (at < e.shape[1])
        gathered = e.gather(1, at.clamp(0, e.shape[1] - 1).flatten(1)).view(at.shape)
        weights = torch.softmax(torch.where(inside, gathered, 0.0) / _SOFT_TEMPERATURE, dim=-1)
        return index.to(e.dtype) + weights @ offsets.to(e.dtype)

    def irregularity(self, e: torch.Tensor, before: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        """(B, L) energy, (B, L) peaks of the look-back, (B,) mean RR in samples -> (B,): the mean
        absolute difference of successive look-back intervals over their mean; 0 with fewer than 3."""
        k = min(e.shape[1], 1 + _MAX_BEATS_S * e.shape[1] // self.fs)
        idx = torch.arange(e.shape[1], device=e.device)
        latest = torch.where(before, idx, -1).topk(k, dim=1).values  # (B, k), latest first; -1: none
        found = latest >= 0
        pos = self.soft_position(e, latest.clamp_min(0))  # (B, k)
        rr = pos[:, :-1] - pos[:, 1:]  # (B, k - 1), each interval
        has_rr = found[:, :-1] & found[:, 1:]
        step = (rr[:, :-1] - rr[:, 1:]).abs()  # (B, k - 2)
        has_step = has_rr[:, :-1] & has_rr[:, 1:]
        mean_step = (step * has_step).sum(dim=1) / has_step.sum(dim=1).clamp_min(1)
        return mean_step / local.clamp_min(1.0)

    def detect(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 1, L) -> the slope energy (B, L), the detected peaks (B, L) bool and the beat's own
        peak (B,): the highest energy within half the refractory period of the annotated R peak;
        ties (a flat stretch) go to the sample nearest it."""
        e = self.energy(x)  # (B, L)
        distance = (torch.arange(e.shape[1], device=x.device) - self.r_index).abs()
        own = torch.where(distance <= self.refractory // 2, e.detach() - 1e-6 * distance, -1.0).argmax(dim=1)
        return e, self.peaks(e), own

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, L) -> (B, 7)
        return self.features(*self.detect(x))

    def features(self, e: torch.Tensor, is_peak: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """`detect`'s energy, peaks and own peak -> (B, 7) RR features."""
        n, gap = e.shape[1], self.refractory
        idx = torch.arange(n, device=e.device)
        own_pos = self.soft_position(e, own)

        before = is_peak & (idx < (own - gap)[:, None])
        after = is_peak & (idx > (own + gap)[:, None])
        has_before, has_after = before.any(dim=1), after.any(dim=1)
        last_before = torch.where(before, idx, -1).amax(dim=1).clamp_min(0)
        first_before = torch.where(before, idx, n).amin(dim=1).clamp_max(n - 1)
        first_after = torch.where(after, idx, n).amin(dim=1).clamp_max(n - 1)
        count = before.sum(dim=1).clamp_min(1)

        # Without a peak in reach, an interval is as long as the window can tell: the whole
        # look-back before, what the window holds after.
        pre = torch.where(has_before, own_pos - self.soft_position(e, last_before), own_pos)
        post = torch.where(has_after, self.soft_position(e, first_after) - own_pos, n - 1 - own_pos)
        local = torch.where(has_before, (own_pos - self.soft_position(e, first_before)) / count, pre)
        irregular = self.irregularity(e, before, local)
        pre, post, local = (v.clamp_min(1.0) / self.fs for v in (pre, post, local))  # seconds
        ratios = [torch.log(pre / local), torch.log(post / local), torch.log(pre / post)]
        return torch.stack([pre, post, local, *ratios, irregular], dim=1)

    def template_offsets(self, device: torch.device) -> torch.Tensor:
        """(T,): the stretch the template covers, in samples from a beat's peak."""
        return torch.arange(-self.template_before, self.template_after + 1, device=device)

    def template_difference(self, x: torch.Tensor, is_peak: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """(B, 1, L) windows, `detect`'s peaks and own peak -> (B, T): the beat's QRS and T wave
        minus the patient's template, the sample-wise median of the same stretch around the
        latest look-back beats (aligned on their detected peaks). Zero where the look-back has
        no beat to compare with.

        The median is the patient's usual beat even when some look-back beats are ectopic;
        against it, a fusion or ventricular beat stands out whatever the patient's own QRS
        looks like, which a CNN trained on a few patients otherwise has to learn from them.
        """
        signal, n = x[:, 0], x.shape[-1]  # (B, L)
        offsets = self.template_offsets(x.device)  # (T,)
        idx = torch.arange(n, device=x.device)
        usable = is_peak & (idx < (own - self.refractory)[:, None]) & (idx >= self.template_before)
        latest = torch.where(usable, idx, -1).topk(_TEMPLATE_BEATS, dim=1).values  # (B, K); -1: none
        found = latest >= 0
        at = latest.clamp_min(self.template_before)[..., None] + offsets  # (B, K, T)
        beats = signal.gather(1, at.flatten(1)).view(at.shape)
        template = torch.where(found[..., None], beats, torch.nan).nanmedian(dim=1).values  # (B, T)
        own_beat = signal.gather(1, (own[:, None] + offsets).clamp(0, n - 1))  # (B, T)
        return torch.where(found.any(dim=1, keepdim=True), own_beat - template.nan_to_num(0.0), 0.0)


def record_peaks(
    signal: np.ndarray | torch.Tensor,
    *,
    fs: int,
    window_s: float = _RECORD_WINDOW_S,
    margin_s: float = _RECORD_MARGIN_S,
) -> np.ndarray:
    """The R peaks `RRFeatures` finds in a whole lead: (n,) signal at ``fs`` -> (P,) int64 sample
    indices, increasing.

    The lead is cut into windows of ``window_s`` (the length the model sees), overlapping by
    2 x ``margin_s``; each window keeps the peaks of its central part, from the middle of its
    overlap with the one before to the middle of its overlap with the one after (the first from
    the start, the last to the end), so every sample is decided by one window, at least
    ``margin_s`` from its edges but in the record's own first and last ``margin_s``. There the
    local-maximum decision is the signal's own (the energy of two windows differs only by its
    scale), so a peak is neither lost nor found twice; only the threshold, relative to each
    window's reference energy, differs. A peak's position is its
    soft position (`RRFeatures.soft_position`), rounded. The signal is taken as the model's
    inputs are made (nsr_tune.data: resampled, unfiltered); the energy ignores offset and scale,
    so the per-window min-max normalisation does not matter.
    """
    x = torch.as_tensor(signal).detach().to(torch.float32).flatten()  # (n,), as the model's inputs
    n, width, margin = x.shape[0], max(1, round(window_s * fs)), round(margin_s * fs)
    if width <= 2 * margin:
        raise ValueError(f"record_peaks: window_s {window_s} must exceed twice margin_s {margin_s}")
    if n == 0:
        return np.zeros(0, np.int64)
    length = min(n, width)
    starts = (
        np.zeros(1, np.int64)
        if n <= width
        else np.append(np.arange(0, n - width, width - 2 * margin), n - width)
    )
    # (K + 1,): window k keeps the peaks in [bounds[k], bounds[k + 1]), the middles of its overlaps.
    bounds = torch.from_numpy(np.concatenate(([0], (starts[1:] + starts[:-1] + length) // 2, [n])))
    starts_t = torch.from_numpy(starts)  # (K,)
    windows = x.unfold(0, length, 1)[starts_t].unsqueeze(1)  # (K, 1, length)
    detector = RRFeatures(r_index=0, fs=fs)
    with torch.no_grad():
        e = detector.energy(windows)  # (K, length)
        is_peak = detector.peaks(e)  # (K, length)
        at = starts_t[:, None] + torch.arange(length)  # (K, length) record samples
        is_peak &= (at >= bounds[:-1, None]) & (at < bounds[1:, None])  # each sample decided once
        most = max(1, int(is_peak.sum(dim=1).max()))
        index = torch.where(is_peak, torch.arange(length), length).sort(dim=1).values[:, :most]  # (K, M)
        found = index < length  # (K, M); `length`: no peak
        position = detector.soft_position(e, index.clamp_max(length - 1))  # (K, M) in window samples
    peaks = (starts_t[:, None] + position)[found].round().long().clamp(0, n - 1)  # (P,)
    return np.sort(peaks.numpy())


#: Samples after the R peak in every windowed MIT-BIH input (1.5 s at 125 Hz); see data.INPUTS.
_AFTER = 187
#: RR_FEATURES' leading intervals in seconds, which `rrcnn` leaves out: a patient's own rate says
#: little about a beat's class, and a model that sees it learns the training patients' rates
#: (the S beats of DS1 come at fast rates, those of MIT-BIH 232 at a slow one). Normalised by the
#: local mean, an early beat is early at any rate, as in de Chazal et al. (2004).
_ABSOLUTE = 3
#: The most blocks the morphology branch takes: 375 samples survive 6 poolings.
MAX_BLOCKS = 6
#: The shortest look-back `rrcnn` takes, in seconds: a few beats even at slow rates (`context`: 4 s).
MIN_LOOKBACK_S = 4


_N, _S, _F = 0, 1, 3  # in data.AAMI_CLASSES (N, S, V, F, Q); models stay free of the data package


def _tied_to_n(logits: torch.Tensor, k: int) -> torch.Tensor:
    """(B, C) logits with class k's logit replaced by N's: that head cannot tell k from N."""
    return torch.cat([logits[:, :k], logits[:, _N : _N + 1], logits[:, k + 1 :]], dim=1)


def lookback_samples(length: int) -> int:
    """Samples before the R peak in a windowed MIT-BIH input of ``length`` samples."""
    return length - _AFTER - 1


class RRCNN(nn.Module):
    """The paper's CNN on the 1.5 s either side of the beat, beside the RR features measured over
    the whole window, each with its own logits, summed.

    Morphology: conv 1->W (k5); B x [conv k5, ReLU, conv k5, +input, ReLU, max-pool k5 s2] -> 32
    -> n_classes, on the `rhythm` window (the neighbouring beats are the patient's own reference
    for a wide or odd QRS). Rhythm: RRFeatures' three ratios (and with ``irregularity=1`` the
    irregularity) -> ``rr_hidden`` -> n_classes. With ``template=1`` the CNN has a second input
    channel: the beat minus the patient's template, the median of the look-back beats, against
    which a fusion (F) or ventricular beat stands out whatever the patient's normal beat looks
    like. With ``fusion_by_shape=1`` the rhythm logits give F the N logit, so F against N is
    the morphology's alone. With ``own_beat=1`` the CNN sees only the beat's own stretch (0.25 s
    before the R peak to 0.3 s after it), the rest of its window zeroed: the neighbours are then
    no shortcut (MIT-BIH 208's F beats are mostly followed by a V beat, 213's by an N). Takes
    windows of ``length`` samples with the R peak 187 samples before the end, as every windowed
    MIT-BIH input has it.

    N against S is the rhythm's alone: the morphology logits give S the N logit (an S beat's
    QRS is supraventricular, i.e. normal, in the AAMI definition). Left free, the CNN learns the
    few training S beats by their shape, or by the absolute intervals to its neighbours, the
    training patients' rates, and calls an unseen patient's early beats normal.
    """

    def __init__(
        self,
        *,
        width: int = 32,
        blocks: int = 6,
        rr_hidden: int = 16,
        irregularity: int = 0,
        template: int = 0,
        fusion_by_shape: int = 0,
        own_beat: int = 0,
        n_classes: int = 5,
        length: int,
        fs: int = 125,
    ) -> None:
        super().__init__()
        r = lookback_samples(length)
        self.start, self.stop = r - _AFTER, r + _AFTER + 1  # the `rhythm` window
        self.rr = RRFeatures(r_index=r, fs=fs)
        self.template, self.fusion_by_shape = bool(template), bool(fusion_by_shape)
        self.stem = nn.Conv1d(2 if template else 1, width, 5, padding=2)
        self.own_beat = bool(own_beat)
        offset = torch.arange(self.stop - self.start) - (r - self.start)  # (375,) samples from the R peak
        seen = (offset >= -round(_OWN_BEFORE_S * fs)) & (offset <= round(_OWN_AFTER_S * fs))
        # Not saved with the weights, so that models written before `own_beat` load as they were.
        self.register_buffer("seen", seen.float(), persistent=False)  # (375,)
        self.blocks = nn.Sequential(*[_ResidualBlock(width) for _ in range(blocks)])
        pooled = self.stop - self.start
        for _ in range(blocks):
            pooled = pooled_length(pooled)  # 375 -> 186 -> 91 -> 44 -> 20 -> 8 -> 2
        self.fc1 = nn.Linear(width * pooled, 32)
        self.morphology_head = nn.Linear(32, n_classes)
        self.rr_used = slice(_ABSOLUTE, len(RR_FEATURES) if irregularity else len(RR_FEATURES) - 1)
        self.rr_fc = nn.Linear(self.rr_used.stop - self.rr_used.start, rr_hidden)
        self.rhythm_head = nn.Linear(rr_hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, L) -> (B, n_classes)
        e, is_peak, own = self.rr.detect(x)
        return self.morphology_logits(x, is_peak, own) + self.rhythm_logits(e, is_peak, own)

    def morphology_logits(self, x: torch.Tensor, is_peak: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """(B, 1, L) windows and `RRFeatures.detect`'s peaks and own peak -> (B, C): the CNN's logits."""
        beat = x[..., self.start : self.stop]  # (B, 1, 375) at 125 Hz
        if self.template:
            beat = torch.cat([beat, self.template_channel(x, is_peak, own)], dim=1)  # (B, 2, 375)
        if self.own_beat:
            beat = beat * self.seen  # (B, C, 375), zero outside the beat's own stretch
        logits = self.morphology_head(F.relu(self.fc1(self.blocks(self.stem(beat)).flatten(1))))
        # An S beat has a supraventricular, i.e. normal, QRS: the morphology's S logit is its N
        # logit, so N against S is decided by the rhythm alone, as the AAMI definition has it.
        return _tied_to_n(logits, _S)  # (B, C)

    def rhythm_logits(self, e: torch.Tensor, is_peak: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """`RRFeatures.detect`'s energy, peaks and own peak -> (B, C): the RR head's logits."""
        rr = self.rr.features(e, is_peak, own)[:, self.rr_used]  # no absolute RR
        logits = self.rhythm_head(F.relu(self.rr_fc(rr)))  # (B, C)
        if self.fusion_by_shape:
            # A fusion beat comes when the sinus beat does, so its timing is the patient's: the
            # training patients' F beats come early (MIT-BIH 208's bigeminy), others' do not.
            logits = _tied_to_n(logits, _F)
        return logits

    def template_channel(self, x: torch.Tensor, is_peak: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """The beat minus the patient's template (`RRFeatures.template_difference`), placed where
        the beat lies in the `rhythm` window and zero elsewhere: (B, 1, 375)."""
        difference = self.rr.template_difference(x, is_peak, own)  # (B, T)
        width = self.stop - self.start
        at = (own[:, None] - self.start + self.rr.template_offsets(x.device)).clamp(0, width - 1)  # (B, T)
        channel = difference.new_zeros(x.shape[0], width)
        return channel.scatter(1, at, difference).unsqueeze(1)
