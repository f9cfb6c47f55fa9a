"""APGD: exact against linear models, whose worst case within eps is known in closed form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nsr_tune.attacks import PGD, ce_loss, margin_loss, padding_mask
from nsr_tune.attacks._apgd import APGD, checkpoints
from nsr_tune.errors import ConfigError
from nsr_tune.models import build_model
from tests._helpers import gen, linear_model, train_quick

# Beats within this of the decision boundary at the attack's budget are left out of exact checks:
# float arithmetic decides on which side they land.
BOUNDARY = 1e-3


def _worst_case(model: nn.Sequential, x, y, lengths, norm: str, quantile: float = 0.5):
    """A budget eps that leaves `quantile` of the beats the model gets right unbreakable, and
    which beats can be broken within it: (eps, breakable, clear, correct).

    For z = Wx + b, the largest margin z_j - z_y within eps on the free samples is
    z_j - z_y + eps * ||(W_j - W_y) * mask||_*, with ||.||_* the dual norm (L1 for L-inf, L2 for L2).
    """
    w, b = model[1].weight.detach(), model[1].bias.detach()
    mask = padding_mask(x, lengths).flatten(1)  # (B, 187)
    z = x.flatten(1) @ w.T + b  # (B, C)
    z_y = z.gather(1, y[:, None])  # (B, 1)
    diff = (w[None, :, :] - w[y][:, None, :]) * mask[:, None, :]  # (B, C, 187)
    dual = diff.abs().sum(2) if norm == "linf" else diff.norm(dim=2)  # (B, C)
    is_y = nn.functional.one_hot(y, z.shape[1]).bool()
    correct = z.argmax(1) == y
    assert int(correct.sum()) >= 4, f"the linear model gets {int(correct.sum())} of {len(y)} beats right"
    # The budget at which each right beat starts to break; an eps between two neighbours of these
    # splits the right beats, however far training went on this machine.
    critical = ((z_y - z) / dual).masked_fill(is_y, float("inf")).amin(1)[correct].sort().values
    k = int(len(critical) * quantile)
    eps = float(critical[k - 1] + critical[k]) / 2
    worst = (z - z_y + eps * dual).masked_fill(is_y, float("-inf")).amax(1)  # (B,)
    return eps, worst > 0, worst.abs() > BOUNDARY, correct


def _assert_bounds(x, res, lengths, eps: float, norm: str) -> None:
    delta = res.x_adv - x
    flat = delta.flatten(1)
    norms = flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)
    assert norms.max().item() <= eps * (1 + 1e-5)
    assert (delta * (1 - padding_mask(x, lengths))).abs().max().item() == 0.0
    assert not torch.isnan(res.x_adv).any()
    # An unbroken beat comes back as it was.
    assert torch.equal(res.x_adv[~res.broken], x[~res.broken])


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_ce_breaks_exactly_the_breakable_beats_of_a_two_class_linear_model(beats, norm):
    # With two classes, the CE gradient is a positive multiple of W_other - W_y at every point, so
    # the sign (L-inf) or unit (L2) direction of every step is the same: APGD's first step of 2 eps
    # reaches the worst-case point of the box (L-inf), and on the L2 sphere every step moves closer
    # to it. APGD must break every beat that can be broken, and no attack can break one more.
    two = (beats[1] == 0) | (beats[1] == 2)  # N and V
    x, y, lengths = beats[0][two], (beats[1][two] == 2).long(), beats[2][two]
    model = train_quick(linear_model(seed=0, classes=2), x, y, epochs=20)
    eps, breakable, clear, correct = _worst_case(model, x, y, lengths, norm)
    assert 0 < int(breakable[correct].sum()) < int(correct.sum())
    res = APGD(model, eps=eps, norm=norm, steps=20)(x, y, lengths=lengths, generator=gen())
    assert torch.equal(res.broken[clear], breakable[clear])
    _assert_bounds(x, res, lengths, eps, norm)


@pytest.mark.slow
@pytest.mark.parametrize("quantile", [0.25, 0.75])
def test_targeted_dlr_breaks_exactly_the_breakable_beats_of_a_five_class_linear_model(beats, quantile):
    # The worst case of a linear model lies toward one rival class, and APGD-T attacks each rival
    # class in turn. Toward one target, while the order of the logits holds, the targeted DLR loss is
    # a ratio of two linear functions of the beat, whose ascent meets no false local maximum. That
    # is why, not a proof: it held for 4 model seeds x 3 training lengths x 3 budgets x 2 step
    # counts x 2 attack seeds, every beat off the boundary. (CE missed up to 22 breakable beats.)
    x, y, lengths = beats
    model = train_quick(linear_model(seed=0, classes=5), x, y, epochs=10)
    eps, breakable, clear, correct = _worst_case(model, x, y, lengths, "linf", quantile)
    assert 0 < int(breakable[correct].sum()) < int(correct.sum())
    res = APGD(model, eps=eps, steps=20, loss="dlr_targeted")(x, y, lengths=lengths, generator=gen())
    assert torch.equal(res.broken[clear], breakable[clear])
    _assert_bounds(x, res, lengths, eps, "linf")
    with torch.no_grad():
        z = model(res.x_adv)
    # Broken means misclassified at x_adv. The attack judged each beat in a smaller batch, whose
    # arithmetic may differ in the last bits: a beat may only disagree on the boundary itself.
    assert (margin_loss(z, y)[(z.argmax(1) != y) != res.broken].abs() < 1e-4).all()


@pytest.mark.parametrize(("loss", "classes"), [("dlr_targeted", 3), ("dlr", 2)])
def test_dlr_needs_enough_classes(beats, loss, classes):
    x, y, lengths = (t[:8] for t in beats)
    attack = APGD(linear_model(classes=classes), eps=0.01, loss=loss)
    with pytest.raises(
        ConfigError, match=f"loss: '{loss}' needs a model with at least {classes + 1} classes"
    ):
        attack(x, y.clamp(max=classes - 1), lengths=lengths, generator=gen())


def test_more_targets_than_other_classes_is_an_error(beats):
    x, y, lengths = (t[:8] for t in beats)
    attack = APGD(linear_model(classes=5), eps=0.01, loss="dlr_targeted", n_target_classes=5)
    with pytest.raises(ConfigError, match="n_target_classes: at most 4 with 5 classes, got 5"):
        attack(x, y, lengths=lengths, generator=gen())


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_multi_lead_beats_keep_their_shape_and_padding(beats, norm):
    x1, y, lengths = (t[::5] for t in beats)
    x = torch.cat([x1, 0.5 * x1, x1.square()], dim=1)  # (B, 3, 187), every lead zero-padded alike
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 187, 5))
    eps = 0.05 if norm == "linf" else 0.5
    res = APGD(model, eps=eps, norm=norm, steps=10, loss="dlr")(x, y, lengths=lengths, generator=gen())
    assert res.x_adv.shape == x.shape and res.broken.shape == y.shape
    with torch.no_grad():
        assert (res.broken & (model(x).argmax(1) == y)).any()  # it attacked beats the model got right
    _assert_bounds(x, res, lengths, eps, norm)
    assert (lengths < 187).any()


def test_same_generator_seed_same_result(beats):
    x, y, lengths = beats
    model = linear_model(seed=1, classes=5)
    attack = APGD(model, eps=0.02, norm="l2", steps=10, restarts=2, loss="dlr")
    a, b, c = (attack(x, y, lengths=lengths, generator=gen(seed)) for seed in (7, 7, 8))
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.broken, b.broken)
    assert not torch.equal(a.x_adv, c.x_adv)  # the random start did matter


PEAK = 0.3
PAPER_CHECKPOINTS = [22, 41, 57, 70, 80, 87, 93, 99]  # w_j = ceil(p_j * 100)


class _Bump(nn.Module):
    """Two classes; class 1's logit -(x - PEAK)^2 peaks inside the ball and never wins.

    The input is one sample per beat. The module records every input, so a test sees each iterate.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        f = -(x.flatten(1) - PEAK).square().sum(1)  # in [-2.6, 0] for these beats and eps
        return torch.stack([torch.full_like(f, 5.0), f], dim=1)


def _bump_iterates(norm: str, rho: float, checkpoints: list[int] | None = None):
    """Four one-sample beats at different distances from the peak, in one batch (each gets its own
    step size), attacked with eps 1 for 100 steps: (clean beats (4,), iterates (101, 4))."""
    x = torch.tensor([0.0, 0.5, -0.2, 0.9]).view(4, 1, 1)
    model = _Bump()
    attack = APGD(model, eps=1.0, norm=norm, steps=100, rho=rho)
    if checkpoints is not None:
        attack.checkpoints = checkpoints
    res = attack(x, torch.zeros(4, dtype=torch.long), generator=gen())
    assert not res.broken.any()
    iterates = torch.stack(model.seen[1:])[:, :, 0, 0]  # x^(0) ... x^(100); seen[0] was the clean beats
    assert iterates.shape == (101, 4)
    return x.flatten(), iterates


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("rho", [0.75, 0.0])
def test_every_step_follows_the_paper(norm, rho):
    # Algorithm 1 of Croce & Hein, replayed on the recorded iterates: each iterate is checked
    # against the step from the one before, so float rounding cannot make the two drift apart. In
    # one dimension both norms' ascent direction is the sign of the gradient, and the projection
    # clips delta to [-1, 1]. rho = 0 turns condition 1 off, so there only condition 2 halves.
    xc, it = _bump_iterates(norm, rho)
    # APGD-CE's loss at each iterate, computed as the attack did: the same batch, the same arithmetic.
    f = torch.stack([ce_loss(_Bump()(x.view(4, 1, 1)), torch.zeros(4, dtype=torch.long)) for x in it])
    eta = torch.full((4,), 2.0)  # 2 eps
    best, best_k = f[0].clone(), torch.zeros(4, dtype=torch.long)
    eta_check, best_check, prev, successes, last = eta.clone(), f[0].clone(), f[0].clone(), torch.zeros(4), 0
    cuts, before = 0, it[0]  # before: the point the last step started from
    for k in range(100):
        if k > 0:
            successes += (f[k] > prev).float()
            prev = f[k]
        better = f[k] > best
        best, best_k = torch.where(better, f[k], best), torch.where(better, k, best_k)
        start = it[k]
        if k in PAPER_CHECKPOINTS:
            cut = (successes < rho * (k - last)) | ((eta == eta_check) & (best <= best_check))
            eta_check, best_check = eta.clone(), best.clone()
            eta = torch.where(cut, eta / 2, eta)
            start = torch.where(cut, it[best_k, torch.arange(4)], start)  # go on from the best point
            prev = torch.where(cut, best, prev)
            successes, last, cuts = torch.zeros(4), k, cuts + int(cut.sum())
        # The momentum term is x^(k) - x^(k-1), where a cut replaced x^(k-1) by the best point.
        d, d_prev = start - xc, before - xc
        before = start
        a = 1.0 if k == 0 else 0.75  # no momentum on the first step
        z = (d + eta * torch.sign(PEAK - start)).clamp(-1, 1)
        expected = (d + a * (z - d) + (1 - a) * (d - d_prev)).clamp(-1, 1)
        assert torch.allclose(it[k + 1] - xc, expected, atol=1e-5), f"iterate {k + 1}"
    assert cuts > 0  # the schedule was exercised


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_step_size_halves_until_the_iterates_settle_at_an_interior_maximum(norm):
    # A step of 2 eps jumps across the peak and back; where the loss stops rising, APGD halves the
    # step at the checkpoints and so closes in on the peak. With its checkpoints taken away (a fixed
    # step), the same run never does. (Over 20 seeds: within 0.015 of the peak over the last 6
    # iterates with checkpoints, never closer than 0.63 without.)
    xc, paper = _bump_iterates(norm, 0.75)
    # The first step has no momentum and is 2 eps long: it reaches the edge of the ball.
    assert torch.allclose((paper[1] - xc).abs(), torch.ones(4))
    _, fixed = _bump_iterates(norm, 0.75, checkpoints=[])
    assert ((paper[-6:] - PEAK).abs().amax(0) < 0.1).all()
    assert ((fixed[-6:] - PEAK).abs().amax(0) > 0.5).all()


@pytest.fixture(scope="module")
def small_cnn(beats):
    """The paper's CNN after 20 epochs on every other beat; any model will do, however good."""
    torch.manual_seed(0)
    return train_quick(build_model("cnn"), beats[0][::2], beats[1][::2], epochs=20)


@pytest.mark.slow
@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.01), ("l2", 0.1)])
def test_apgd_breaks_about_as_many_beats_as_pgd_on_a_small_cnn(beats, small_cnn, norm, eps):
    # Neither attack is a bound on the other, so this asserts no order, only that APGD is not far
    # behind: 100 attacked beats, within 2. Where this was written, over 4 model seeds x 4 attack
    # seeds x 4 budgets, APGD-CE and APGD-T each broke between 1 fewer and 1 more beat than PGD
    # (CE and margin losses, 20 steps), whether they ran 20 steps or 100.
    model = small_cnn
    xa, ya, la = (t[1::2][:100] for t in beats)  # beats it was not trained on
    counts = {}
    for name, attack in {
        "pgd": PGD(model, eps=eps, norm=norm, steps=20),
        "apgd_ce": APGD(model, eps=eps, norm=norm, steps=20),
        "apgd_t": APGD(model, eps=eps, norm=norm, steps=20, loss="dlr_targeted"),
    }.items():
        res = attack(xa, ya, lengths=la, generator=gen())
        _assert_bounds(xa, res, la, eps, norm)
        counts[name] = int(res.broken.sum())
    assert counts["apgd_ce"] >= counts["pgd"] - 2, counts
    assert counts["apgd_t"] >= counts["pgd"] - 2, counts


def test_checkpoints_follow_the_paper():
    # p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99: w_j = ceil(p_j * steps), each once.
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10) == [3, 5, 6, 7, 8, 9, 10]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": 0.0}, "eps: must be a positive number"),
        ({"eps": 0.1, "norm": "l1"}, "norm: must be one of linf, l2"),
        ({"eps": 0.1, "steps": 0}, "steps: must be a positive integer"),
        ({"eps": 0.1, "restarts": 0}, "restarts: must be a positive integer"),
        ({"eps": 0.1, "loss": "margin"}, "loss: must be one of ce, dlr, dlr_targeted"),
        ({"eps": 0.1, "loss": "dlr_targeted", "n_target_classes": 0}, "n_target_classes: must be a positive"),
        ({"eps": 0.1, "n_target_classes": 2}, "n_target_classes: applies only to loss 'dlr_targeted'"),
        ({"eps": 0.1, "rho": 1.5}, r"rho: must be a number in \[0, 1\]"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        APGD(linear_model(), **kwargs)
