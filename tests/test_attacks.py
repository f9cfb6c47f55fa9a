from __future__ import annotations

import pytest
import torch

from nsr_tune.attacks import PGD, WhiteNoise, margin_loss, padding_mask
from nsr_tune.errors import ConfigError
from nsr_tune.models import build_model
from tests._helpers import kaggle_beats, linear_model, train_quick


@pytest.fixture(scope="module")
def beats(kaggle_dir):
    return kaggle_beats(kaggle_dir / "mitbih_train_sample.csv")


@pytest.fixture(scope="module")
def trained_cnn(beats):
    x, y, _ = beats
    torch.manual_seed(0)
    return train_quick(build_model("cnn"), x, y, epochs=15)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_delta_within_eps_and_padding_untouched(beats, trained_cnn, norm):
    x, y, lengths = beats
    eps = 0.05 if norm == "linf" else 0.5
    attack = PGD(trained_cnn, eps=eps, norm=norm, steps=10)
    res = attack(x, y, lengths=lengths, generator=_gen())
    delta = res.x_adv - x
    norms = delta.flatten(1).abs().amax(1) if norm == "linf" else delta.flatten(1).norm(dim=1)
    assert norms.max().item() <= eps * (1 + 1e-5)
    assert res.broken.any()  # something was actually attacked
    pad = 1 - padding_mask(x, lengths)
    assert (lengths < 187).any()
    assert (delta * pad).abs().max().item() == 0.0
    assert not torch.isnan(res.x_adv).any()


def test_padding_can_be_attacked_when_asked(beats, trained_cnn):
    x, y, lengths = beats
    res = PGD(trained_cnn, eps=0.05, steps=5, respect_padding=False, early_exit=False)(
        x[:100], y[:100], lengths=lengths[:100], generator=_gen()
    )
    pad = 1 - padding_mask(x[:100], lengths[:100])
    assert (((res.x_adv - x[:100]) * pad).abs().amax() > 0).item()


def test_clamp_keeps_beats_in_unit_range(beats, trained_cnn):
    x, y, lengths = beats
    res = PGD(trained_cnn, eps=0.2, steps=5, clamp=True)(x, y, lengths=lengths, generator=_gen())
    assert res.x_adv.min().item() >= 0.0 and res.x_adv.max().item() <= 1.0


def test_broken_means_misclassified(beats, trained_cnn):
    x, y, lengths = beats
    res = PGD(trained_cnn, eps=0.03, steps=20)(x, y, lengths=lengths, generator=_gen())
    with torch.no_grad():
        wrong = trained_cnn(res.x_adv).argmax(1) != y
    assert torch.equal(wrong, res.broken)


def test_robust_accuracy_at_most_clean_and_more_steps_do_not_help_the_model(beats, trained_cnn):
    x, y, lengths = (t[::2] for t in beats)
    with torch.no_grad():
        clean = (trained_cnn(x).argmax(1) == y).float().mean().item()
    robust = {}
    for steps in (5, 20, 40):
        res = PGD(trained_cnn, eps=0.02, steps=steps)(x, y, lengths=lengths, generator=_gen(steps))
        robust[steps] = 1 - res.broken.float().mean().item()
    assert clean > 0.8
    assert all(r <= clean for r in robust.values())
    # Random starts make runs differ a little; more steps must not help the model beyond that.
    assert robust[20] <= robust[5] + 0.02
    assert robust[40] <= robust[20] + 0.02
    assert robust[40] < clean


def test_early_exit_changes_speed_not_results(beats, trained_cnn):
    x, y, lengths = (t[::2] for t in beats)
    a = PGD(trained_cnn, eps=0.02, steps=20, early_exit=True)(x, y, lengths=lengths, generator=_gen(3))
    b = PGD(trained_cnn, eps=0.02, steps=20, early_exit=False)(x, y, lengths=lengths, generator=_gen(3))
    assert torch.equal(a.broken, b.broken)
    assert torch.allclose(a.x_adv, b.x_adv)


def test_linf_pgd_reaches_the_analytic_worst_case_of_a_linear_model(beats):
    # For z = Wx + b, the largest L-inf margin within eps on the free samples is
    #   max_j (z_j - z_y) + eps * ||(W_j - W_y) * mask||_1,
    # so exactly the beats where that is positive can be broken.
    x, y, lengths = beats
    model = train_quick(linear_model(seed=0), x, y, epochs=20)
    w, b = model[1].weight.detach(), model[1].bias.detach()
    mask = padding_mask(x, lengths).flatten(1)  # (B, 187)
    eps = 0.02
    z = x.flatten(1) @ w.T + b  # (B, 5)
    diff = w[None, :, :] - w[y][:, None, :]  # (B, 5, 187): W_j - W_y
    worst = (z - z.gather(1, y[:, None])) + eps * (diff.abs() * mask[:, None, :]).sum(2)
    worst = worst.masked_fill(torch.nn.functional.one_hot(y, 5).bool(), float("-inf")).amax(1)  # (B,)
    breakable = worst > 0
    clear = worst.abs() > 1e-3  # leave out beats on the boundary itself
    res = PGD(model, eps=eps, steps=50, loss="margin")(x, y, lengths=lengths, generator=_gen())
    assert 0 < int(breakable.sum()) < len(y)
    assert torch.equal(res.broken[clear], breakable[clear])
    # The margin loss at the attack point reaches the analytic optimum for broken beats only if
    # they crossed; for unbroken ones, it is below zero as the bound says.
    with torch.no_grad():
        assert (margin_loss(model(res.x_adv), y)[~res.broken] <= 0).all()


def test_white_noise_is_within_eps(beats, trained_cnn):
    x, y, lengths = beats
    res = WhiteNoise(trained_cnn, eps=0.1)(x, y, lengths=lengths, generator=_gen())
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
