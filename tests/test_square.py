from __future__ import annotations

import pytest
import torch
from torch import nn

from nsr_tune.attacks import PGD, margin_loss, padding_mask
from nsr_tune.attacks._square import Square, p_schedule
from nsr_tune.errors import ConfigError
from tests._helpers import gen, linear_model

# Square runs thousands of forwards on tiny tensors (see the fixture).
pytestmark = pytest.mark.usefixtures("one_thread")


def _critical_eps(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor):
    """The exact L-inf budget from which each beat of a 2-class linear model breaks.

    For z = W x + b, the margin z_other - z_y is linear in delta, and over the free samples its
    largest value within eps is (z_other - z_y) + eps * ||(W_other - W_y) * mask||_1: a beat the
    model gets right is breakable at eps exactly when eps exceeds (z_y - z_other) / that norm.
    """
    flat = x.flatten(1)
    z = flat @ w.T + b  # (B, 2)
    other = 1 - y
    diff = w[other] - w[y]  # (B, C*L)
    l1 = (diff.abs() * mask.expand_as(x).flatten(1)).sum(1)
    gap = z.gather(1, y[:, None]).squeeze(1) - z.gather(1, other[:, None]).squeeze(1)
    return gap / l1  # <= 0 for a beat already wrong


def _mid_eps(critical: torch.Tensor) -> float:
    """An eps between the two middle critical budgets of the beats the model gets right: half of
    them breakable and half not, however the training went on this machine."""
    c = critical[critical > 0].sort().values
    k = len(c) // 2
    assert k >= 1 and c[k] > c[k - 1], "the linear model must get two beats right, at distinct budgets"
    return float(c[k - 1] + c[k]) / 2


@pytest.mark.slow
def test_linear_model_sound_and_clearly_breakable_beats_all_broken(two_class):
    x, y, lengths, model = two_class
    mask = padding_mask(x, lengths)
    critical = _critical_eps(model[1].weight.detach(), model[1].bias.detach(), x, y, mask)
    mid = _mid_eps(critical)
    # At `mid`, half the beats the model gets right cannot be broken, so soundness is tested; at
    # 2 * mid, half of them break with half the budget, a large slack for the random search.
    for eps in (mid, 2 * mid):
        breakable = critical < eps
        clear = critical <= eps / 2  # the bound reaches twice their margin
        on_edge = (critical - eps).abs() < 1e-4 * eps  # float arithmetic may go either way there
        if eps == mid:  # by the choice of mid, soundness has beats to be tested on
            assert (~breakable & (critical > 0)).any()
        else:  # and half the beats the model gets right are clearly breakable
            assert int(clear.sum()) >= int((critical > 0).sum()) // 2
        for seed in range(4):
            attack = Square(model, eps=eps, n_queries=2000)
            res = attack(x, y, lengths=lengths, generator=gen(seed))
            # Sound by construction: no point of the ball fools the model on an unbreakable beat.
            assert not (res.broken & ~breakable & ~on_edge).any()
            # Once windows are one sample wide, the search is coordinate ascent on a linear margin,
            # which reaches the optimum: every clearly breakable beat breaks, and fast (at most 76
            # queries of the 2000 where this was written; every breakable beat broke, in 742 at most).
            assert res.broken[clear].all(), (
                f"eps {eps:.4g} seed {seed}: missed {int((clear & ~res.broken).sum())}"
            )
            assert int(attack.last_queries[clear].max()) <= 500
            assert (attack.last_queries <= 2000).all()


class Quantised(nn.Module):
    """A linear model behind an input quantiser: its gradient is zero almost everywhere (gradient
    masking), though the model is as weak as the linear one. It records whether it was ever
    called with autograd on."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls_with_grad = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls_with_grad += int(torch.is_grad_enabled() or x.requires_grad)
        return self.inner(torch.round(x * 8) / 8)


@pytest.mark.slow
def test_square_breaks_a_gradient_masked_model_that_pgd_cannot(two_class):
    x, y, lengths, linear = two_class
    model = Quantised(linear).eval()
    xg = x[:8].clone().requires_grad_(True)
    margin_loss(model(xg), y[:8]).sum().backward()
    assert xg.grad.abs().max().item() == 0.0  # PGD's every step is sign(0) = 0: it sees nothing
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    eps = 0.1  # under one quantisation step (0.125): only rounding flips can move the model
    pgd = PGD(model, eps=eps, steps=50)(x, y, lengths=lengths, generator=gen())
    model.calls_with_grad = 0
    attack = Square(model, eps=eps, n_queries=1000)
    square = attack(x, y, lengths=lengths, generator=gen())
    assert model.calls_with_grad == 0  # logits only: never a graph, never a gradient
    n_pgd, n_square = int((pgd.broken & correct).sum()), int((square.broken & correct).sum())
    # Where this was written: of 165 beats right, PGD broke 8 (its random start alone) and Square 134.
    assert n_square >= correct.sum() // 2
    assert n_square >= 4 * n_pgd + 20
    assert (attack.last_queries <= 1000).all()


@pytest.mark.slow
def test_queries_budget_padding_and_what_broken_means(two_class):
    x, y, lengths, model = two_class
    mask = padding_mask(x, lengths)
    assert (lengths < 187).any()
    eps = 0.02
    for restarts in (1, 2):
        attack = Square(model, eps=eps, n_queries=50, restarts=restarts)
        res = attack(x, y, lengths=lengths, generator=gen())
        q = attack.last_queries
        with torch.no_grad():
            clean_wrong = model(x).argmax(1) != y
            z = model(res.x_adv)
        assert (q <= 50 * restarts).all() and q.shape == y.shape
        assert (q[clean_wrong] == 1).all() and torch.equal(res.x_adv[clean_wrong], x[clean_wrong])
        assert (q[~res.broken] == 50 * restarts).all()  # an unbroken beat used all its budget
        assert (~res.broken).any() and (res.broken & ~clean_wrong).any()
        # Broken means misclassified at x_adv, up to last-bit differences between batch sizes.
        wrong = z.argmax(1) != y
        assert (margin_loss(z, y)[wrong != res.broken].abs() < 1e-4).all()
        delta = res.x_adv - x
        assert delta.abs().max().item() <= eps * (1 + 1e-5)
        assert (delta * (1 - mask)).abs().max().item() == 0.0
    # Asked to, it perturbs the padding too (an unbroken beat's x_adv is its best point).
    res = Square(model, eps=eps, n_queries=20, respect_padding=False)(x, y, lengths=lengths, generator=gen())
    assert ((res.x_adv - x) * (1 - mask)).abs().max().item() > 0


@pytest.mark.slow
def test_multi_lead_with_per_beat_lengths(two_class):
    x1, _, lengths, _ = two_class
    x1, lengths = x1[:60], lengths[:60]
    mask = padding_mask(x1, lengths)
    x = torch.cat([x1, (1 - x1) * mask, x1.square()], dim=1)  # (B, 3, 187), padding 0 in every lead
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 187, 2)).eval()
    with torch.no_grad():
        y = model(x).argmax(1)  # every beat starts right
    critical = _critical_eps(model[1].weight.detach(), model[1].bias.detach(), x, y, mask)
    eps = _mid_eps(critical)
    attack = Square(model, eps=eps, n_queries=1000)
    res = attack(x, y, lengths=lengths, generator=gen())
    delta = res.x_adv - x
    assert res.x_adv.shape == x.shape
    assert (delta * (1 - mask)).abs().max().item() == 0.0
    assert delta.abs().max().item() <= eps * (1 + 1e-5)
    on_edge = (critical - eps).abs() < 1e-4 * eps
    assert not (res.broken & (critical >= eps) & ~on_edge).any()
    assert res.broken[critical <= eps / 2].all()
    assert (delta[:, 0] != delta[:, 1]).any()  # each lead gets its own signs
    assert (attack.last_queries <= 1000).all()


@pytest.mark.slow
def test_reproducible_from_the_generator(two_class):
    x, y, lengths, model = two_class
    x, y, lengths = x[:80], y[:80], lengths[:80]
    runs = []
    for seed in (5, 5, 6):
        attack = Square(model, eps=0.03, n_queries=100)
        res = attack(x, y, lengths=lengths, generator=gen(seed))
        runs.append((res.x_adv, res.broken, attack.last_queries))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not torch.equal(runs[0][0], runs[2][0])


@pytest.mark.slow
def test_a_beats_queries_stop_at_the_one_that_broke_it_with_or_without_early_exit(two_class):
    # That early exit changes only the speed is tested for every attack (test_attack_invariants);
    # Square also counts each beat's queries, and those must not depend on it.
    x, y, lengths, linear = two_class
    queries = {}
    for early_exit in (True, False):
        attack = Square(linear, eps=0.05, n_queries=200, early_exit=early_exit)
        attack(x, y, lengths=lengths, generator=gen(2))
        queries[early_exit] = attack.last_queries
    assert torch.equal(queries[True], queries[False])


class Recording(nn.Module):
    """Constant logits (class 0 wins by 0: never broken, no proposal ever accepted); keeps every query."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.queries.append(x.clone())
        return torch.zeros(len(x), 2, dtype=x.dtype)


@pytest.mark.slow
def test_every_proposal_changes_one_window_within_the_beat(two_class):
    x1, _, _, _ = two_class
    lengths = torch.tensor([40, 101, 187])
    x = torch.cat([x1[:3], 1 - x1[:3]], dim=1) * padding_mask(x1[:3], lengths)  # (3, 2, 187)
    model = Recording()
    n_queries = 300
    attack = Square(model, eps=0.05, n_queries=n_queries)
    attack(x, torch.zeros(3, dtype=torch.long), lengths=lengths, generator=gen())
    clean, start, *proposals = model.queries
    assert torch.equal(clean, x) and len(proposals) == n_queries - 2
    # +-eps on every real sample (to the float rounding of x + eps), 0 on the padding.
    assert torch.allclose((start - x).abs(), 0.05 * padding_mask(x, lengths), rtol=0, atol=1e-6)
    for i, proposal in enumerate(proposals):
        # Nothing is accepted, so each proposal is the start with one window changed.
        changed = (proposal != start).any(dim=1)  # (3, L)
        p = p_schedule(0.8, i, n_queries)
        for beat, n in enumerate(lengths.tolist()):
            where = changed[beat].nonzero().squeeze(1)
            # Redrawing the signs makes every query count (8 draws: all fail with odds 4^-8 here).
            assert where.numel() > 0, f"proposal {i} of beat {beat} changes nothing"
            assert where.max() < n  # within the beat's real samples
            assert where.max() - where.min() < max(
                1, round(p * n)
            )  # within one window of the schedule's width
    assert (attack.last_queries == n_queries).all()


def test_p_halves_on_the_papers_schedule():
    # The paper's iterations of 10,000 after which p halves.
    for i, halvings in [(10, 0), (11, 1), (50, 1), (51, 2), (200, 2), (201, 3), (8000, 8), (8001, 9)]:
        assert p_schedule(0.8, i, 10000) == 0.8 / 2**halvings
    # Rescaled to a smaller budget, as in the paper's code.
    assert p_schedule(0.8, 1, 1000) == 0.8 and p_schedule(0.8, 2, 1000) == 0.4
    assert p_schedule(0.8, 999, 1000) == 0.8 / 512


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"eps": 0}, "eps"),
        ({"eps": 0.1, "norm": "l2"}, "norm"),
        ({"eps": 0.1, "norm": "l1"}, "norm"),
        ({"eps": 0.1, "n_queries": 0}, "n_queries"),
        ({"eps": 0.1, "n_queries": 10.5}, "n_queries"),
        ({"eps": 0.1, "p_init": 0}, "p_init"),
        ({"eps": 0.1, "p_init": 1.5}, "p_init"),
        ({"eps": 0.1, "restarts": 0}, "restarts"),
    ],
)
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ConfigError, match=f"^{name}:"):
        Square(linear_model(classes=2), **kwargs)
