from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from nsr_tune.config import ObjectiveConfig
from nsr_tune.models import build_model
from nsr_tune.objectives import OBJECTIVES, nsr_penalty, nsr_penalty_reference
from tests._helpers import linear_model


def half_right(model, x: torch.Tensor) -> torch.Tensor:
    """Labels that ``model`` gets right on the first half of ``x`` and wrong on the rest.

    The penalty counts only the beats a model classifies correctly; with these labels both kinds
    are there by construction, whatever the random weights predict.
    """
    with torch.no_grad():
        pred = model(x).argmax(1)
    return torch.where(torch.arange(len(x)) < len(x) // 2, pred, (pred + 1) % 5)


def test_nsr_closed_form_on_linear_model(beats):
    # For z = Wx + b, dz_y/dx = W_y, so R has a closed form.
    x, _, _ = beats
    x = x[:64].double()
    model = linear_model(seed=1, dtype=torch.float64)
    y = half_right(model, x)
    w, b = model[1].weight, model[1].bias
    z = x.flatten(1) @ w.T + b
    correct = z.argmax(1) == y
    assert int(correct.sum()) == 32  # both kinds present, so the masking is exercised
    z_y = z.gather(1, y[:, None]).squeeze(1)
    expected = torch.log(1 + 0.7 * w[y].abs().sum(1) / (z_y.abs() + 0.01))[correct].mean()
    r, _, _ = nsr_penalty(model, x, y, eps=0.7)
    assert r.item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("name", ["cnn", "mlp", "transformer"])
def test_vectorised_nsr_equals_per_beat_reference(beats, name):
    x, _, _ = beats
    torch.manual_seed(0)
    model = build_model(name).double()
    x = x[:40].double()
    y = half_right(model, x)
    r, _, correct = nsr_penalty(model, x, y)
    assert int(correct.sum()) == 20
    assert r.item() == pytest.approx(nsr_penalty_reference(model, x, y).item(), abs=1e-5)


def test_nsr_gradient_reaches_every_weight(beats):
    x, _, _ = beats
    torch.manual_seed(0)
    model = build_model("cnn")
    x = x[:64]
    r, _, correct = nsr_penalty(model, x, half_right(model, x))
    assert int(correct.sum()) == 32
    r.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.endswith("weight"):
            assert p.grad.abs().sum() > 0, name


def test_nsr_loss_parts(beats):
    x, y, _ = beats
    torch.manual_seed(0)
    model = build_model("mlp").double()
    x, y = x[:50].double(), y[:50]
    cfg = ObjectiveConfig(name="nsr", beta=0.3)
    out = OBJECTIVES["nsr"](model, x, y, config=cfg, mask=torch.ones_like(x))
    z = model(x)
    mse = (z - F.one_hot(y, 5).double()).pow(2).sum(1).mean()  # summed over classes, as in the paper
    correct = z.argmax(1) == y
    t = 1 - z.gather(1, y[:, None]) + z
    keep = correct[:, None] & ~F.one_hot(y, 5).bool() & (t > 0) & (t < 2)
    margin = t[keep].mean() if keep.any() else torch.zeros(())
    r = nsr_penalty_reference(model, x, y)
    assert out.loss.item() == pytest.approx((mse + margin + 0.3 * r).item(), abs=1e-8)
    assert out.logs["nsr"] == pytest.approx(r.item(), abs=1e-8)


def test_jacobian_penalty_equals_per_class_loop(beats):
    x, y, _ = beats
    torch.manual_seed(0)
    model = build_model("cnn").double()
    x, y = x[:16].double(), y[:16]
    out = OBJECTIVES["jacobian"](
        model, x, y, config=ObjectiveConfig(name="jacobian", beta=1.0), mask=torch.ones_like(x)
    )
    xr = x.clone().requires_grad_(True)
    z = model(xr)
    total = sum(torch.autograd.grad(z[:, c].sum(), xr, retain_graph=True)[0].abs().sum() for c in range(5))
    assert out.logs["jacobian_l1"] == pytest.approx(total.item() / len(x), rel=1e-9)
    assert out.loss.item() == pytest.approx(F.cross_entropy(z, y).item() + total.item() / len(x), rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_trains_the_paper_cnn_one_step(beats, name):
    x, y, lengths = beats
    torch.manual_seed(0)
    model = build_model("cnn")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mask = (torch.arange(187)[None, :] < lengths[:, None]).float().unsqueeze(1)
    target = F.one_hot(y[:32], 5).float() if name == "bce" else y[:32]  # bce takes label sets
    out = OBJECTIVES[name](model, x[:32], target, config=ObjectiveConfig(name=name, beta=0.3), mask=mask[:32])
    assert math.isfinite(out.loss.item())
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    out.loss.backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_the_ablations_and_focal_loss_have_their_exact_values(beats):
    x, y, _ = beats
    torch.manual_seed(0)
    model = build_model("mlp").double()
    xb, yb = x[:16].double(), y[:16]
    mask = torch.ones_like(xb)
    nsr0 = OBJECTIVES["nsr"](model, xb, yb, config=ObjectiveConfig(name="nsr", beta=0.0), mask=mask)
    mm = OBJECTIVES["mse_margin"](model, xb, yb, config=ObjectiveConfig(name="mse_margin"), mask=mask)
    assert mm.loss.item() == pytest.approx(nsr0.loss.item(), rel=1e-12)  # the NSR loss at beta 0
    z = model(xb)
    mse = OBJECTIVES["mse"](model, xb, yb, config=ObjectiveConfig(name="mse"), mask=mask)
    assert mse.loss.item() == pytest.approx((z - F.one_hot(yb, 5).double()).pow(2).sum(1).mean().item())
    focal0 = OBJECTIVES["focal"](
        model, xb, yb, config=ObjectiveConfig(name="focal", focal_gamma=0.0), mask=mask
    )
    assert focal0.loss.item() == pytest.approx(F.cross_entropy(z, yb).item(), rel=1e-12)
    p = F.softmax(z, dim=1).gather(1, yb[:, None]).squeeze(1)
    focal2 = OBJECTIVES["focal"](model, xb, yb, config=ObjectiveConfig(name="focal"), mask=mask)
    assert focal2.loss.item() == pytest.approx((-((1 - p) ** 2) * p.log()).mean().item(), rel=1e-9)
