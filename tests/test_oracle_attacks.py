"""The project's APGD-CE, APGD-T and Square against torchattacks 3.5.1 as an oracle.

On a fixed trained model (tests/fixtures/rhythm_mlp.pt, made by tests/fixtures/make_rhythm_mlp.py)
and the same real MIT-BIH beats of its own test split (`rhythm` input, 375 samples, no padding; a
seeded, class-balanced draw of beats it classifies correctly), each of our attacks must reach a
robust accuracy at most 0.01 (1.5 beats of 150) above torchattacks' counterpart at two eps:
APGD-CE against APGD(loss='ce'), APGD-T against APGDT, Square against Square, with the same
budget: 100 steps and one restart each (APGD-T and APGDT attack all 4 other classes in turn) and
5,000 queries for Square. The steps are set explicitly: torchattacks' AutoAttack(version='standard')
would run its gradient attacks for only 10.

The affine view. torchattacks takes images (B, C, H, W) in [0, 1] and clamps every iterate to
[0, 1], while our beats are scaled per beat into [0, 1] and our attacks do not clamp: at a
beat's minimum or maximum, torchattacks' ball would be cut in half. So torchattacks attacks
u = (x - lo) / a, with lo = min(x) - eps - m and a = range(x) + 2 (eps + m) over all the beats
(one scalar pair, as torchattacks' eps is one number), m = eps / 100 a margin that keeps the ball
strictly inside [0, 1]. In u the ball has radius eps / a, the clamp never binds, and the wrapper
model maps u back to x = lo + a u: the eps-ball is exactly ours. The test checks both: every
torchattacks adversarial beat, mapped back to x, lies within eps of its beat in L-inf (to 1e-6),
and no coordinate of it sits on 0 or 1.

The grid. torchattacks' Square draws squares on an H x W image, so each beat is laid out row by
row on a 20 x 20 grid (375 samples, then 25 pixels at u = 0.5 that the wrapper ignores). The
gradient attacks use the same view: the ignored pixels get no gradient.

Measured on this fixture and these 150 beats (robust accuracy, ours vs torchattacks):

    eps    APGD-CE          APGD-T           Square
    0.01   0.7467 / 0.7533  0.7400 / 0.7400  0.7533 / 0.7533
    0.03   0.2600 / 0.2667  0.2333 / 0.2333  0.2667 / 0.3267
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torchattacks  # installed with --no-deps: README, .ci/run
from torch import nn

from nsr_tune.attacks import APGD, Attack, Square
from nsr_tune.checkpoints import load_model_file
from nsr_tune.data import load_mitbih, make_splits

FIXTURE = Path(__file__).parent / "fixtures" / "rhythm_mlp.pt"
EPS = (0.01, 0.03)  # in the units of the per-beat scaled beat; robust accuracy ~0.75 and ~0.25
PER_CLASS = 30  # 150 beats: one beat is 0.0067 of robust accuracy, below the 0.01 tolerance
TOLERANCE = 0.01
STEPS, QUERIES, SEED = 100, 5000, 0
N_CLASSES = 5
SIDE = 20  # 375 samples on a 20 x 20 grid
MARGIN = 0.01  # of eps, between the eps-ball and the edges of [0, 1] in u
PAD_U = 0.5  # the value of the grid's unused pixels


@dataclass(frozen=True)
class AffineView:
    """u = (x - lo) / a on a SIDE x SIDE grid: the eps-ball of every beat strictly inside [0, 1]."""

    lo: float
    a: float
    length: int

    @classmethod
    def around(cls, x: torch.Tensor, eps: float) -> AffineView:
        m = eps * MARGIN
        lo, hi = x.min().item(), x.max().item()
        return cls(lo=lo - eps - m, a=(hi - lo) + 2 * (eps + m), length=x.shape[-1])

    def radius(self, eps: float) -> float:
        return eps / self.a

    def to_u(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, L) -> (B, 1, SIDE, SIDE)
        u = torch.full((len(x), SIDE * SIDE), PAD_U, dtype=x.dtype)
        u[:, : self.length] = (x.flatten(1) - self.lo) / self.a
        return u.view(-1, 1, SIDE, SIDE)

    def to_x(self, u: torch.Tensor) -> torch.Tensor:  # (B, 1, SIDE, SIDE) -> (B, 1, L)
        return (self.lo + self.a * u.flatten(1)[:, : self.length]).unsqueeze(1)


class Viewed(nn.Module):
    """The model as torchattacks sees it: on u, through the view."""

    def __init__(self, model: nn.Module, view: AffineView) -> None:
        super().__init__()
        self.model, self.view = model, view

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.model(self.view.to_x(u))


def _ours(name: str, model: nn.Module, eps: float) -> Attack:
    if name == "apgd_ce":
        return APGD(model, eps=eps, steps=STEPS, restarts=1, loss="ce", rho=0.75)
    if name == "apgd_t":
        return APGD(
            model,
            eps=eps,
            steps=STEPS,
            restarts=1,
            loss="dlr_targeted",
            n_target_classes=N_CLASSES - 1,
            rho=0.75,
        )
    return Square(model, eps=eps, n_queries=QUERIES, p_init=0.8, restarts=1)


def _theirs(name: str, model: nn.Module, radius: float):
    if name == "apgd_ce":
        return torchattacks.APGD(
            model, norm="Linf", eps=radius, steps=STEPS, loss="ce", n_restarts=1, rho=0.75, seed=SEED
        )
    if name == "apgd_t":
        return torchattacks.APGDT(
            model,
            norm="Linf",
            eps=radius,
            steps=STEPS,
            n_restarts=1,
            n_classes=N_CLASSES,
            rho=0.75,
            seed=SEED,
        )
    return torchattacks.Square(
        model, norm="Linf", eps=radius, n_queries=QUERIES, n_restarts=1, p_init=0.8, loss="margin", seed=SEED
    )


@dataclass
class Oracle:
    model: nn.Module
    x: torch.Tensor  # (B, 1, 375)
    y: torch.Tensor  # (B,)


@pytest.fixture(scope="module")
def oracle(mitdb_dir: Path, one_thread) -> Oracle:
    config, model = load_model_file(FIXTURE)
    assert config.data.input == "rhythm" and config.data.split == "intra"
    beats, _ = load_mitbih(mitdb_dir, input="rhythm")
    test = make_splits(beats, **config.data.split_arguments()).test
    x_all, y_all = torch.from_numpy(test.x), torch.from_numpy(test.y)
    assert bool((torch.from_numpy(test.length) == x_all.shape[-1]).all()), "rhythm beats have no padding"
    with torch.no_grad():
        right = torch.cat([model(chunk).argmax(1) for chunk in x_all.split(4096)]) == y_all
    rng = np.random.default_rng(SEED)
    chosen = np.sort(
        np.concatenate(
            [
                rng.choice(np.flatnonzero((y_all == c).numpy() & right.numpy()), PER_CLASS, replace=False)
                for c in range(N_CLASSES)
            ]
        )
    )
    return Oracle(model=model, x=x_all[chosen], y=y_all[chosen])


@pytest.mark.slow
@pytest.mark.parametrize("eps", EPS)
@pytest.mark.parametrize("attack", ["apgd_ce", "apgd_t", "square"])
def test_our_attack_is_as_strong_as_torchattacks(oracle: Oracle, attack: str, eps: float):
    model, x, y = oracle.model, oracle.x, oracle.y
    with torch.no_grad():
        assert bool((model(x).argmax(1) == y).all()), "every beat starts classified correctly"

    # torchattacks, on the affine view.
    view = AffineView.around(x, eps)
    u = view.to_u(x)
    r = view.radius(eps)
    assert (u - r).min().item() > 0 and (u + r).max().item() < 1, "the ball lies strictly inside [0, 1]"
    with torch.random.fork_rng():  # torchattacks reseeds the global generator
        u_adv = _theirs(attack, Viewed(model, view).eval(), r)(u, y)
    assert 0 < u_adv.min().item() and u_adv.max().item() < 1, "torchattacks' clamp bound"
    x_adv = view.to_x(u_adv)
    assert (x_adv - x).abs().max().item() <= eps + 1e-6, "torchattacks left the eps-ball in x"
    with torch.no_grad():
        theirs = (model(x_adv).argmax(1) == y).float().mean().item()

    # Ours, on x itself.
    result = _ours(attack, model, eps)(x, y, generator=torch.Generator().manual_seed(SEED))
    assert (result.x_adv - x).abs().max().item() <= eps * (1 + 1e-5)
    ours = 1 - result.broken.float().mean().item()

    assert ours <= theirs + TOLERANCE, (
        f"{attack} at eps {eps}: our robust accuracy {ours:.4f} is more than {TOLERANCE} above "
        f"torchattacks' {theirs:.4f} on {len(y)} beats"
    )
