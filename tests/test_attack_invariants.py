"""What every attack must keep, whatever it is: its perturbations inside the eps-ball and off the
zero padding, clamping when asked, the same result with and without early exit, and no beat
called broken that the model gets right at its adversarial input.

One parametrised test per invariant over every attack; what is particular to one attack (its
exact worst case on a linear model, its schedule) is tested in its own file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn

from nsr_tune.attacks import (
    APGD,
    PGD,
    SAP,
    Attack,
    AttackResult,
    MultiLabelPGD,
    Square,
    Transfer,
    WhiteNoise,
    label_sets,
    margin_loss,
    padding_mask,
)
from tests._helpers import gen, linear_model

FS = 125  # the Kaggle beats' sampling rate

# name -> (build(model, surrogate, eps, norm, **options), the norms it runs under)
ATTACKS: dict[str, tuple[Callable[..., Attack], tuple[str, ...]]] = {
    "pgd": (lambda m, s, eps, norm, **kw: PGD(m, eps=eps, norm=norm, steps=20, **kw), ("linf", "l2")),
    "apgd_ce": (
        lambda m, s, eps, norm, **kw: APGD(m, eps=eps, norm=norm, steps=20, loss="ce", **kw),
        ("linf", "l2"),
    ),
    "apgd_t": (
        lambda m, s, eps, norm, **kw: APGD(
            m, eps=eps, norm=norm, steps=20, loss="dlr_targeted", n_target_classes=2, **kw
        ),
        ("linf", "l2"),
    ),
    "square": (lambda m, s, eps, norm, **kw: Square(m, eps=eps, n_queries=150, **kw), ("linf",)),
    "sap": (lambda m, s, eps, norm, **kw: SAP(m, eps=eps, norm=norm, fs=FS, steps=20, **kw), ("linf", "l2")),
    "transfer": (
        lambda m, s, eps, norm, **kw: Transfer(m, surrogate=s, eps=eps, norm=norm, steps=10, **kw),
        ("linf", "l2"),
    ),
    "white_noise": (lambda m, s, eps, norm, **kw: WhiteNoise(m, eps=eps, norm=norm, **kw), ("linf", "l2")),
}
EARLY_EXIT = ("pgd", "apgd_ce", "apgd_t", "square", "sap")
# A budget that breaks beats of the untrained linear model, in each norm.
EPS = {"linf": 0.05, "l2": 0.5}
CASES = [(name, norm) for name, (_, norms) in ATTACKS.items() for norm in norms]


# Square runs many forwards on tiny tensors (see the fixture).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setting(beats) -> tuple[nn.Module, nn.Module, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """An untrained linear model of the five classes, a copy of it for the transfer attack's
    surrogate, and the real beats labelled as the model classifies them: every beat starts right,
    so every one is attacked, and no training is needed to have beats to break."""
    x, _, lengths = beats
    model = linear_model(seed=0, classes=5)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, copy.deepcopy(model), (x, y, lengths)


def _attack(name: str, setting, norm: str, **options) -> Attack:
    build, _ = ATTACKS[name]
    return build(setting[0], setting[1], EPS[norm], norm, **options)


def _norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_perturbations_stay_within_eps_and_off_the_padding(setting, name, norm):
    x, y, lengths = setting[2]
    res = _attack(name, setting, norm)(x, y, lengths=lengths, generator=gen(1))
    assert res.broken.any()  # some beats come back perturbed, so the bounds below say something
    delta = res.x_adv - x
    assert not torch.isnan(res.x_adv).any()
    assert _norms(delta, norm).max().item() <= EPS[norm] * (1 + 1e-5)
    assert (lengths < 187).any()
    assert (delta * (1 - padding_mask(x, lengths))).abs().max().item() == 0.0


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_a_multi_label_attack_stays_within_eps_and_off_the_padding(beats, norm):
    x, _, lengths = beats
    model = linear_model(seed=2, classes=3)
    with torch.no_grad():
        targets = label_sets(model(x)).float()  # right on every beat, so every one is attacked
    res = MultiLabelPGD(model, eps=EPS[norm], norm=norm, steps=10)(
        x, targets, lengths=lengths, generator=gen()
    )
    delta = res.x_adv - x
    assert res.broken.any()
    assert _norms(delta, norm).max().item() <= EPS[norm] * (1 + 1e-5)
    assert (delta * (1 - padding_mask(x, lengths))).abs().max().item() == 0.0


class Counting(nn.Module):
    """Counts the rows (beats) of every forward: what early exit saves."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        return self.inner(x)


@pytest.mark.parametrize("name", EARLY_EXIT)
def test_early_exit_changes_speed_not_results(setting, name):
    x, y, lengths = (t[::2] for t in setting[2])
    out = {}
    for early_exit in (True, False):
        model = Counting(setting[0])
        res = ATTACKS[name][0](model, setting[1], 0.02, "linf", early_exit=early_exit)(
            x, y, lengths=lengths, generator=gen(3)
        )
        out[early_exit] = (res, model.rows)
    (a, rows_a), (b, rows_b) = out[True], out[False]
    assert a.broken.any()  # some beats leave early
    assert torch.equal(a.broken, b.broken)
    assert torch.allclose(a.x_adv, b.x_adv)
    assert rows_a < rows_b


@pytest.mark.parametrize("name", list(ATTACKS))
def test_clamp_keeps_beats_in_unit_range(setting, name):
    x, y, lengths = setting[2]
    res = ATTACKS[name][0](setting[0], setting[1], 0.2, "linf", clamp=True)(
        x, y, lengths=lengths, generator=gen()
    )
    assert res.broken.any()
    assert res.x_adv.min().item() >= 0.0 and res.x_adv.max().item() <= 1.0


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_a_broken_beat_is_misclassified_at_its_adversarial_input(setting, name, norm):
    x, y, lengths = setting[2]
    res = _attack(name, setting, norm)(x, y, lengths=lengths, generator=gen(5))
    assert res.broken.any()
    with torch.no_grad():
        z = setting[0](res.x_adv[res.broken])
    # The attack judged each beat in another batch than this one, whose arithmetic may differ in
    # the last bits: a beat may only come out right where it lies on the decision boundary itself.
    assert (margin_loss(z, y[res.broken]) > -1e-4).all()


class _Lying(PGD):
    """A broken attack: it calls every beat broken and returns it unchanged."""

    def forward(self, x, y, mask, generator) -> AttackResult:
        return AttackResult(x.clone(), torch.ones(len(x), dtype=torch.bool))


def test_an_attack_that_calls_a_right_beat_broken_is_stopped(setting):
    x, y, lengths = setting[2]  # every beat right
    with pytest.raises(
        RuntimeError, match=r"_Lying reported 500 sample\(s\) broken that the model classifies"
    ):
        _Lying(setting[0], eps=0.05)(x, y, lengths=lengths, generator=gen())
