from __future__ import annotations

import pytest
import torch
from torch import nn

from nsr_tune.attacks._base import padding_mask
from nsr_tune.attacks._pgd import margin_loss
from nsr_tune.attacks._sap import SAP, gaussian_kernels, smooth, smoothing_kernel
from nsr_tune.errors import ConfigError
from tests._helpers import gen, linear_model

FS = 125  # the Kaggle beats' sampling rate
L = 187


def _smoothing_matrix(fs: float) -> torch.Tensor:
    """M (L, L) with smooth(theta) = M @ theta for one lead: its column j smooths the unit impulse e_j."""
    eye = torch.eye(L, dtype=torch.float64).unsqueeze(1)  # (L, 1, L): L impulses
    return smooth(eye, smoothing_kernel(fs, L)).squeeze(1).T


def test_kernels_are_durations_in_seconds():
    at = {fs: gaussian_kernels(fs) for fs in (125, 300, 500)}
    sizes = [5] * 5 + [7] * 5 + [11] * 5 + [15] * 5 + [19] * 5  # every size with every sigma
    assert [len(k) for k in at[300]] == sizes  # the authors' kernels, in samples, at their rate
    for fs, kernels in at.items():
        for size, k in zip(sizes, kernels, strict=True):
            assert len(k) % 2 == 1 and len(k) >= 3
            assert abs(len(k) - size * fs / 300) <= 1  # the same duration, to the nearest odd length
            assert abs(k.sum().item() - 1) < 1e-12
            assert torch.equal(k, k.flip(0)) and k.argmax().item() == len(k) // 2
    for k125, k500 in zip(at[125], at[500], strict=True):
        # Each length is within one sample of size * fs / 300, so 4 * n125 and n500 differ by <= 4 + 1.
        assert abs(len(k500) - 4 * len(k125)) <= 5
    assert abs(smoothing_kernel(FS, L).sum().item() - 1) < 1e-12


def test_kernels_are_cut_to_fit_short_signals():
    with pytest.warns(UserWarning, match="cut to 9 to fit beats of 10"):
        k = smoothing_kernel(500, 10)  # the longest kernel at 500 Hz is 31 samples
    assert len(k) == 9 and abs(k.sum().item() - 1) < 1e-12
    theta = torch.rand(2, 1, 10, dtype=torch.float64)
    assert smooth(theta, k).shape == theta.shape


def test_smoothing_a_clipped_theta_stays_within_eps():
    # Weights >= 0 summing to 1 over a padded signal made only of theta's values: |G * theta| <= max |theta|.
    eps = 0.05
    g = gen()
    signs = torch.randint(0, 2, (64, 3, L), generator=g).double() * 2 - 1
    for theta in (eps * signs, eps * (2 * torch.rand(64, 3, L, generator=g).double() - 1)):
        for fs in (125, 500):
            out = smooth(theta, smoothing_kernel(fs, L))
            assert out.shape == theta.shape
            assert out.abs().max().item() <= eps * (1 + 1e-12)
    ones = torch.full((1, 1, L), eps, dtype=torch.float64)  # a constant passes unchanged, even at the ends
    assert torch.allclose(smooth(ones, smoothing_kernel(FS, L)), ones)


def _diffs_in_beat(delta: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """First differences of delta (B, C, L) where both samples are a beat's true samples, else 0."""
    both = padding_mask(delta, lengths)[..., 1:] * padding_mask(delta, lengths)[..., :-1]
    return delta.diff(dim=-1) * both


@pytest.mark.slow
def test_returned_perturbations_are_smooth(two_class):
    # delta = mask * K * theta with |theta| <= eps, so on a beat's true samples its first differences are
    # (diff K) * theta: each at most eps * TV(K), and in L2 at most ||diff M||_2 * sqrt(L) * eps. A
    # white-noise perturbation of the same L-inf size breaks both bounds: they are bounds on smoothness.
    x, y, lengths, model = two_class
    eps = 0.1
    kernel = smoothing_kernel(FS, L)
    tv = kernel[0] + kernel[-1] + kernel.diff().abs().sum()  # = 2 max K: the kernel is unimodal
    gain = torch.linalg.matrix_norm(_smoothing_matrix(FS).diff(dim=0), 2)
    max_bound, l2_bound = eps * tv.item(), gain.item() * L**0.5 * eps
    res = SAP(model, eps=eps, fs=FS, steps=30)(x, y, lengths=lengths, generator=gen())
    delta = (res.x_adv - x).double()
    assert int(res.broken.sum()) >= 10  # the returned perturbations below are non-zero ones
    d = _diffs_in_beat(delta, lengths)
    assert d.abs().amax().item() <= max_bound * (1 + 1e-4)
    assert d.flatten(1).norm(dim=1).max().item() <= l2_bound * (1 + 1e-4)
    noise = eps * (2 * torch.rand(x.shape, generator=gen(), dtype=torch.float64) - 1)
    dn = _diffs_in_beat(noise * padding_mask(x, lengths), lengths)
    assert (dn.abs().flatten(1).amax(1) > max_bound).all()
    assert (dn.flatten(1).norm(dim=1) > l2_bound).float().mean().item() > 0.9  # short beats may not
    # What the bounds say at 125 Hz: kernels of the authors' durations smooth mildly at this rate.
    assert max_bound < 0.45 * 2 * eps and l2_bound < 0.65 * (2 / 3) ** 0.5 * L**0.5 * eps


@pytest.mark.slow
def test_linear_model_breaks_exactly_what_the_smoothed_bound_allows(two_class):
    # For z = Wx + b with two classes, margin(theta) = m0 + <g, mask * M theta>, g = W_other - W_y: linear
    # in theta, maximised over the box |theta| <= eps at m0 + eps * ||M^T (mask g)||_1. Its gradient sign
    # is the same at every step, so 100 steps of 0.025 eps reach that corner from any start: SAP must
    # break exactly the beats where the maximum is > 0. Those are among the beats the exact L-inf bound
    # m0 + eps * ||mask g||_1 > 0 lets any attack break.
    x, y, lengths, model = two_class
    w, b = model[1].weight.detach().double(), model[1].bias.detach().double()
    mask = padding_mask(x, lengths).flatten(1).double()  # (B, L)
    z = x.flatten(1).double() @ w.T + b
    m0 = z.gather(1, (1 - y)[:, None]).squeeze(1) - z.gather(1, y[:, None]).squeeze(1)
    g = mask * (w[1 - y] - w[y])  # (B, L)
    sap_gain = (g @ _smoothing_matrix(FS)).abs().sum(1)  # ||M^T (mask g)||_1
    linf_gain = g.abs().sum(1)
    correct = m0 < 0
    assert int(correct.sum()) >= 4, f"the linear model gets {int(correct.sum())} of {len(y)} beats right"
    # An eps in the middle of the budgets at which SAP can start to break the beats the model gets right.
    critical = (-m0 / sap_gain)[correct].sort().values
    k = len(critical) // 2
    eps = float(critical[k - 1] + critical[k]) / 2
    sap_ok, linf_ok = m0 + eps * sap_gain > 0, m0 + eps * linf_gain > 0
    clear = (m0 + eps * sap_gain).abs() > 1e-3  # leave out beats on the boundary itself
    res = SAP(model, eps=eps, fs=FS, steps=100)(x, y, lengths=lengths, generator=gen())
    assert 0 < int(sap_ok[correct].sum()) < int(correct.sum())
    assert torch.equal(res.broken[clear], sap_ok[clear])
    assert not (res.broken & ~linf_ok).any()  # nothing the exact L-inf bound protects
    with torch.no_grad():
        margins = margin_loss(model(res.x_adv), y)
    # Judged in a smaller batch than this one: a beat may disagree only on the boundary itself.
    assert (margins[(margins > 0) != res.broken].abs() < 1e-4).all()


def _three_leads(beats, n: int = 48):
    """(n, 3, L) beats: three different real beats as leads, padded to the longest of their lengths."""
    x, _, lengths = beats
    idx = torch.arange(n) * 3
    x3 = torch.cat([x[idx], x[idx + 1], x[idx + 2]], dim=1)
    length = torch.stack([lengths[idx], lengths[idx + 1], lengths[idx + 2]]).amax(0)
    return x3 * padding_mask(x3, length), length


def test_multi_lead_bounds_padding_and_reproducibility(beats):
    x, lengths = _three_leads(beats)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * L, 2))
    with torch.no_grad():
        y = model(x).argmax(1)  # right on every beat, so every one is attacked
    eps = 0.05
    attack = SAP(model, eps=eps, fs=FS, steps=20, pgd_steps=5)
    first = attack(x, y, lengths=lengths, generator=gen(7))
    again = attack(x, y, lengths=lengths, generator=gen(7))
    assert torch.equal(first.x_adv, again.x_adv) and torch.equal(first.broken, again.broken)
    slow = SAP(model, eps=eps, fs=FS, steps=20, pgd_steps=5, early_exit=False)(
        x, y, lengths=lengths, generator=gen(7)
    )
    assert torch.equal(slow.broken, first.broken) and torch.allclose(slow.x_adv, first.x_adv)
    assert first.broken.any()
    delta = first.x_adv - x
    assert not torch.isnan(first.x_adv).any()
    assert delta.abs().max().item() <= eps * (1 + 1e-5)
    assert (lengths < L).any() and (delta * (1 - padding_mask(x, lengths))).abs().max().item() == 0.0
    assert (delta[first.broken].flatten(1).abs().amax(1) > 0).all()
    assert torch.equal(delta[~first.broken], torch.zeros_like(delta[~first.broken]))
    assert first.x_adv.shape == x.shape


@pytest.mark.slow
def test_l2_and_clamp(two_class):
    x, y, lengths, model = two_class
    x, y, lengths = x[:60], y[:60], lengths[:60]
    attack = SAP(model, eps=0.5, fs=FS, norm="l2", steps=20, pgd_steps=5)
    res = attack(x, y, lengths=lengths, generator=gen())
    assert res.broken.any()
    delta = res.x_adv - x
    assert delta.flatten(1).norm(dim=1).max().item() <= 0.5 * (1 + 1e-5)
    assert (delta * (1 - padding_mask(x, lengths))).abs().max().item() == 0.0
    clamped = SAP(model, eps=0.3, fs=FS, steps=10, pgd_steps=5, clamp=True)(x, y, lengths=lengths)
    assert clamped.x_adv.min().item() >= 0.0 and clamped.x_adv.max().item() <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fs": 0}, "fs: must be a positive sampling rate"),
        ({"fs": -125.0}, "fs: must be a positive sampling rate"),
        ({"fs": "125"}, "fs: must be a positive sampling rate"),
        ({"fs": FS, "steps": 0}, "steps: must be a positive integer"),
        ({"fs": FS, "pgd_steps": 0}, "pgd_steps: must be a positive integer"),
        ({"fs": FS, "step_size": -0.1}, "step_size: must be positive"),
        ({"fs": FS, "norm": "l1"}, "norm: must be one of linf, l2"),
        ({"fs": FS, "eps": 0.0}, "eps: must be a positive number"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SAP(linear_model(), **{"eps": 0.1, **kwargs})
