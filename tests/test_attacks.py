from __future__ import annotations

import itertools

import pytest
import torch

from nsr_tune.attacks import PGD, WhiteNoise, margin_loss, padding_mask
from nsr_tune.errors import ConfigError
from nsr_tune.models import build_model
from tests._helpers import gen, linear_model, train_quick, train_until

# The trained CNN is right on at least this share of the beats that the robust-accuracy test attacks.
CLEAN_TARGET = 0.8
# A budget that surely breaks beats: the L-inf ball of radius 0.5 around any beat in [0, 1] holds the
# flat signal 0.5 on its true samples, one point shared by every beat of that length, and there the
# model is wrong for every class but one. (Where these tests were written, PGD left the trained CNN
# no beat of this sample from eps 0.2 on.)
SURE_EPS = 0.5


def _every_other(beats):
    """The beats the robust-accuracy test attacks: every other one of the sample."""
    return tuple(t[::2] for t in beats)


def _clean_acc(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def trained_cnn(beats):
    """The paper's CNN, trained until it is right on CLEAN_TARGET of the attacked beats.

    A fixed number of epochs reaches a different accuracy on each machine (their float arithmetic
    differs, and training follows it); training until the target holds gives every machine such a
    model, or a failure that says how far it got.
    """
    x, y, _ = beats
    xs, ys, _ = _every_other(beats)
    torch.manual_seed(0)
    model = build_model("cnn")
    return train_until(
        model,
        x,
        y,
        measure=lambda m: _clean_acc(m, xs, ys),
        target=CLEAN_TARGET,
        max_epochs=60,
        what="clean accuracy on the attacked beats",
    )


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_delta_within_eps_and_padding_untouched(beats, trained_cnn, norm):
    x, y, lengths = beats
    eps = 0.05 if norm == "linf" else 0.5
    attack = PGD(trained_cnn, eps=eps, norm=norm, steps=10)
    res = attack(x, y, lengths=lengths, generator=gen())
    # A beat that was not broken comes back as it was; a broken one as its first fooling iterate.
    assert torch.equal(res.x_adv[~res.broken], x[~res.broken])
    # The final iterate attacks every beat, however many the model gets right or the attack
    # breaks, so the bounds are checked on 500 perturbed beats.
    last = attack.last_iterate(x, y, mask=padding_mask(x, lengths), generator=gen())
    pad = 1 - padding_mask(x, lengths)
    assert (lengths < 187).any()
    for x_adv in (res.x_adv, last):
        delta = x_adv - x
        norms = delta.flatten(1).abs().amax(1) if norm == "linf" else delta.flatten(1).norm(dim=1)
        assert norms.max().item() <= eps * (1 + 1e-5)
        assert (delta * pad).abs().max().item() == 0.0
        assert not torch.isnan(x_adv).any()
    assert ((last - x).flatten(1).abs().amax(1) > 0).all()  # every beat was actually attacked


@pytest.mark.slow
def test_padding_can_be_attacked_when_asked(beats, trained_cnn):
    x, y, lengths = (t[:100] for t in beats)
    # Only a broken beat comes back perturbed: a budget that surely breaks some.
    res = PGD(trained_cnn, eps=SURE_EPS, steps=5, respect_padding=False, early_exit=False)(
        x, y, lengths=lengths, generator=gen()
    )
    pad = 1 - padding_mask(x, lengths)
    assert (((res.x_adv - x) * pad).abs().amax() > 0).item()


@pytest.mark.slow
def test_pgd_clamps_its_last_iterate_too(beats, trained_cnn):
    # The returned beats are held to [0, 1] for every attack (test_attack_invariants); PGD's final
    # iterate, which adversarial training uses, is too.
    x, y, lengths = beats
    attack = PGD(trained_cnn, eps=0.2, steps=5, clamp=True)
    last = attack.last_iterate(x, y, mask=padding_mask(x, lengths), generator=gen())  # every beat
    assert last.min().item() >= 0.0 and last.max().item() <= 1.0


@pytest.mark.slow
def test_broken_means_misclassified(beats, trained_cnn):
    x, y, lengths = beats
    res = PGD(trained_cnn, eps=0.03, steps=20)(x, y, lengths=lengths, generator=gen())
    with torch.no_grad():
        z = trained_cnn(res.x_adv)
    wrong = z.argmax(1) != y
    # The attack judged each beat in a smaller batch than this one, whose arithmetic may differ in
    # the last bits: a beat may only disagree where it lies on the decision boundary itself.
    assert (margin_loss(z, y)[wrong != res.broken].abs() < 1e-4).all()


@pytest.mark.slow
def test_robust_accuracy_at_most_clean_and_more_steps_do_not_help_the_model(beats, trained_cnn):
    x, y, lengths = _every_other(beats)
    clean = _clean_acc(trained_cnn, x, y)
    assert clean >= CLEAN_TARGET  # what the fixture trained for, measured the same way
    with torch.no_grad():
        correct = trained_cnn(x).argmax(1) == y
    robust = {}
    for steps in (5, 20, 40):
        res = PGD(trained_cnn, eps=0.02, steps=steps)(x, y, lengths=lengths, generator=gen(steps))
        robust[steps] = 1 - res.broken.float().mean().item()
        assert res.broken[~correct].all()  # a beat the model gets wrong counts as broken unattacked
    assert all(r <= clean for r in robust.values())
    # Random starts make runs differ a little; more steps must not help the model beyond that.
    assert robust[20] <= robust[5] + 0.02
    assert robust[40] <= robust[20] + 0.02
    # With the step size and the random start held fixed, a longer run goes through a shorter run's
    # iterates first, and a beat fooled at any iterate is broken: exactly, more steps break a superset.
    broken = [
        PGD(trained_cnn, eps=0.02, steps=steps, step_size=0.005, loss="ce")(
            x, y, lengths=lengths, generator=gen()
        ).broken
        for steps in (5, 20, 40)
    ]
    for fewer, more in itertools.pairwise(broken):
        assert not (fewer & ~more).any()
    # A budget that surely breaks something takes the robust accuracy below the clean one.
    sure = PGD(trained_cnn, eps=SURE_EPS, steps=40)(x, y, lengths=lengths, generator=gen(40))
    assert (sure.broken & correct).any()
    assert 1 - sure.broken.float().mean().item() < clean


@pytest.mark.slow
def test_linf_pgd_reaches_the_analytic_worst_case_of_a_linear_model(beats):
    # For z = Wx + b, the largest L-inf margin within eps on the free samples is
    #   max_j (z_j - z_y) + eps * ||(W_j - W_y) * mask||_1,
    # so exactly the beats where that is positive can be broken. With two classes (N and V here)
    # the margin loss is linear in delta, its gradient the same at every iterate: 50 sign steps of
    # 0.05 eps reach the maximising corner of the box from any start, so PGD must find every one
    # of those beats. (With more classes, PGD may chase one rival class while another is the
    # weaker spot; whether it does depends on the weights that training reached.)
    two = (beats[1] == 0) | (beats[1] == 2)
    x, y, lengths = beats[0][two], (beats[1][two] == 2).long(), beats[2][two]
    model = train_quick(linear_model(seed=0, classes=2), x, y, epochs=20)
    w, b = model[1].weight.detach(), model[1].bias.detach()
    mask = padding_mask(x, lengths).flatten(1)  # (B, 187)
    z = x.flatten(1) @ w.T + b  # (B, 2)
    z_y = z.gather(1, y[:, None])  # (B, 1)
    diff = w[None, :, :] - w[y][:, None, :]  # (B, 2, 187): W_j - W_y
    l1 = (diff.abs() * mask[:, None, :]).sum(2)  # (B, 2)
    is_y = torch.nn.functional.one_hot(y, 2).bool()
    # The budget at which each beat the model gets right starts to break: min_j (z_y - z_j) / l1_j.
    # An eps between the two middle ones of these leaves half of those beats breakable and half
    # not, however far the training went on this machine.
    correct = z.argmax(1) == y
    assert int(correct.sum()) >= 2, f"the linear model gets {int(correct.sum())} of {len(y)} beats right"
    critical = ((z_y - z) / l1).masked_fill(is_y, float("inf")).amin(1)[correct].sort().values
    k = len(critical) // 2
    eps = float(critical[k - 1] + critical[k]) / 2
    worst = (z - z_y + eps * l1).masked_fill(is_y, float("-inf")).amax(1)  # (B,)
    breakable = worst > 0
    clear = worst.abs() > 1e-3  # leave out beats on the boundary itself
    res = PGD(model, eps=eps, steps=50, loss="margin")(x, y, lengths=lengths, generator=gen())
    assert 0 < int(breakable[correct].sum()) < int(correct.sum())
    assert torch.equal(res.broken[clear], breakable[clear])
    # The margin loss at the attack point reaches the analytic optimum for broken beats only if
    # they crossed; for unbroken ones, it is below zero as the bound says.
    with torch.no_grad():
        assert (margin_loss(model(res.x_adv), y)[~res.broken] <= 0).all()


@pytest.mark.slow
def test_white_noise_is_within_eps(beats, trained_cnn):
    x, y, lengths = beats
    res = WhiteNoise(trained_cnn, eps=0.1)(x, y, lengths=lengths, generator=gen())
    delta = res.x_adv - x
    assert delta.abs().max().item() <= 0.1
    assert delta.abs().max().item() > 0.09  # uniform in the cube reaches near its edge
    assert (delta * (1 - padding_mask(x, lengths))).abs().max().item() == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": 0.0}, "eps: must be a positive number"),
        ({"eps": 0.1, "norm": "l1"}, "norm: must be one of linf, l2"),
        ({"eps": 0.1, "steps": 0}, "steps: must be a positive integer"),
        ({"eps": 0.1, "loss": "mse"}, "loss: must be ce, margin or worst"),
    ],
)
def test_bad_attack_settings_name_the_argument(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PGD(linear_model(), **kwargs)
