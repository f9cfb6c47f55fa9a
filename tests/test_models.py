from __future__ import annotations

import pytest
import torch

from nsr_tune.errors import ConfigError
from nsr_tune.models import MODELS, build_model, check_model_knobs, normalize_units_


def test_paper_cnn_shapes_and_size():
    model = build_model("cnn")
    # conv 1->32 k5 (192) + 5 blocks x 2 convs 32->32 k5 (10 x 5152) + 64*32+32 (2080) + 32*5+5 (165)
    assert sum(p.numel() for p in model.parameters()) == 192 + 10 * 5152 + 2080 + 165
    h = model.blocks(model.stem(torch.zeros(2, 1, 187)))
    assert h.shape == (2, 32, 2)  # 187 -> 92 -> 44 -> 20 -> 8 -> 2
    assert model(torch.zeros(3, 1, 187)).shape == (3, 5)


def test_paper_mlp_layers():
    model = build_model("mlp")
    sizes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert sizes == [(187, 128), (128, 128), (128, 128), (128, 32), (32, 5)]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_maps_beats_to_five_logits(name):
    length = 1438 if name == "rrcnn" else 187  # rrcnn needs a look-back (the `lookback` input)
    model = build_model(name, in_len=length if MODELS[name].sized else None)
    assert model(torch.rand(4, 1, length)).shape == (4, 5)


def test_knobs_change_the_model():
    small = sum(p.numel() for p in build_model("resnet1d", {"width": 8}).parameters())
    big = sum(p.numel() for p in build_model("resnet1d", {"width": 16, "stages": 4}).parameters())
    assert small < big


@pytest.mark.parametrize(
    ("name", "knobs", "message"),
    [
        ("vgg", {}, "model: unknown model 'vgg'"),
        ("cnn", {"depth": 3}, "model.depth: not a knob of 'cnn'"),
        ("mlp", {"hidden": 0}, "model.hidden: must be a int >= 1"),
        ("transformer", {"d_model": 30, "heads": 4}, "model.d_model: 30 is not divisible"),
    ],
)
def test_bad_model_config_names_the_knob(name, knobs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        check_model_knobs(name, knobs)


def test_weight_norm_gives_unit_rows_and_scales_each_unit():
    torch.manual_seed(0)
    model = build_model("mlp").double()
    x = torch.rand(16, 187, dtype=torch.float64)
    first = model.net[0]
    norms = first.weight.detach().norm(dim=1)  # (128,)
    before = first(x).detach()
    normalize_units_(model)
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            assert torch.allclose(m.weight.norm(dim=1), torch.ones(m.out_features, dtype=torch.float64))
    # Weight row and bias share one factor, so each unit's output is divided by its row norm.
    assert torch.allclose(first(x), before / norms, atol=1e-12)
    conv = build_model("cnn").stem
    normalize_units_(conv)
    assert torch.allclose(conv.weight.flatten(1).norm(dim=1), torch.ones(32), atol=1e-6)
