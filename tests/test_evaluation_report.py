"""What an evaluation reports beside robust accuracy: the transfer attack, each attack alone,
robust accuracy by class, the median adversarial eps, and the noise stress test."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from nsr_tune.attacks import PGD, Transfer, padding_mask
from nsr_tune.config import EvalConfig
from nsr_tune.data import AAMI_CLASSES, load_kaggle_csv, load_mitbih, make_splits
from nsr_tune.data._nstdb import load_nstdb
from nsr_tune.errors import ConfigError
from nsr_tune.evaluation.run import evaluate, plan
from nsr_tune.protocol import protocol
from tests._helpers import kaggle_beats, linear_model, train_quick
from tests.conftest import SHARED_DATA

RECORDS = (208, 213, 223, 232)  # `inter` test records 213 and 232: N, S, V, F beats with amplitudes


@pytest.fixture(scope="module")
def kaggle(kaggle_dir):
    return kaggle_beats(kaggle_dir / "mitbih_train_sample.csv")


@pytest.fixture(scope="module")
def linear(kaggle):
    x, y, _ = kaggle
    return train_quick(linear_model(seed=1), x, y, epochs=30)


@pytest.fixture(scope="module")
def test_beats(mitdb_dir):
    beats, _ = load_mitbih(mitdb_dir, records=RECORDS)
    return make_splits(beats, split="inter", seed=0).test


@pytest.fixture(scope="module")
def cnn_pair(kaggle):
    """Two small CNNs trained on the same real beats from different seeds: target and surrogate."""
    x, y, _ = kaggle

    def cnn(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv1d(1, 8, 7, padding=3), nn.ReLU(), nn.MaxPool1d(4), nn.Flatten(), nn.Linear(8 * 46, 5)
        )
        return train_quick(model, x, y, epochs=8, seed=seed)

    return cnn(0), cnn(1)


@pytest.mark.slow
def test_transfer_from_an_identical_surrogate_is_pgd_exactly(kaggle, linear):
    # With the target's own weights as surrogate, every iterate is PGD's, and the target is
    # queried at each: the beats broken are PGD's, beat for beat.
    x, y, lengths = kaggle
    for loss in ("ce", "margin", "worst"):
        pgd = PGD(linear, eps=0.02, steps=20, loss=loss, early_exit=False)
        transfer = Transfer(linear, surrogate=copy.deepcopy(linear), eps=0.02, steps=20, loss=loss)
        a = pgd(x, y, lengths=lengths, generator=torch.Generator().manual_seed(5))
        b = transfer(x, y, lengths=lengths, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a.broken, b.broken), loss
        assert 0 < int(b.broken.sum()) < len(y)


@pytest.mark.slow
def test_transfer_stays_in_the_ball_and_off_the_padding(kaggle, cnn_pair):
    x, y, lengths = kaggle
    target, surrogate = cnn_pair
    for norm, eps in (("linf", 0.05), ("l2", 0.5)):
        res = Transfer(target, surrogate=surrogate, eps=eps, norm=norm, steps=10)(x, y, lengths=lengths)
        delta = (res.x_adv - x).flatten(1)
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert size.max().item() <= eps * (1 + 1e-5)
        assert ((res.x_adv - x) * (1 - padding_mask(x, lengths))).abs().max().item() == 0.0
        with torch.no_grad():
            assert torch.equal(res.broken, target(res.x_adv).argmax(1) != y)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda m: Transfer(m, surrogate=m, eps=0.1), "surrogate: is the target model itself"),
        (lambda m: Transfer(m, surrogate="model.pt", eps=0.1), "surrogate: must be a torch nn.Module"),
        (lambda m: Transfer(m, surrogate=copy.deepcopy(m), eps=0.1, loss="dlr"), "loss: must be"),
    ],
)
def test_transfer_settings_are_checked(linear, make, message):
    with pytest.raises(ConfigError, match=message):
        make(linear)


@pytest.mark.slow
def test_without_a_surrogate_the_transfer_attack_is_skipped_and_the_result_says_so(test_beats, cnn_pair):
    target, surrogate = cnn_pair
    config = protocol(
        "strong",
        eps=(0.03,),
        per_class_cap=6,
        apgd_steps=5,
        square_queries=20,
        sap_steps=3,
        transfer_steps=5,
        check_masking=False,
        noise_stress=False,
        bisect_steps=0,
    )
    without = evaluate(target, test_beats, config=config)
    assert "transfer" not in without.robust_acc_by_attack
    assert without.skipped == {"transfer": "no surrogate model was given (--surrogate MODEL)"}
    assert "transfer" not in without.attack
    given = evaluate(target, test_beats, config=config, surrogate=surrogate)
    assert list(given.robust_acc_by_attack) == ["apgd_ce", "apgd_t", "square", "sap", "transfer"]
    assert given.skipped == {}
    assert given.attack.startswith("APGD-CE-5 -> APGD-T-5 -> Square-20q -> SAP-3 -> transfer(PGD-5")
    with pytest.raises(ConfigError, match=r"surrogate: must be a torch nn\.Module or None"):
        evaluate(target, test_beats, config=config, surrogate="model.pt")


@pytest.mark.slow
def test_each_attack_alone_and_the_cascade_agree_beat_for_beat(test_beats, cnn_pair):
    target, surrogate = cnn_pair
    config = EvalConfig(
        eps=(0.01, 0.05),
        attacks=("pgd", "square", "transfer"),
        steps=10,
        square_queries=30,
        per_class_cap=10,
        each_attack=True,
        bisect_steps=0,
    )
    result = evaluate(target, test_beats, config=config, surrogate=surrogate)
    alone, after = result.robust_acc_alone, result.robust_acc_by_attack
    assert list(alone) == ["pgd", "square", "transfer"]
    for e in config.eps:
        # The cascade's beat survives only if it survives every attack run alone.
        assert result.robust_acc[e] <= min(alone[a][e] for a in alone)
        assert after["pgd"][e] == alone["pgd"][e]  # the first attack is the same run either way
        assert after["transfer"][e] == result.robust_acc[e]
        for a in alone:
            assert alone[a][e] <= result.clean_acc
    assert "(each attack alone and as a cascade)" in result.attack
    flat = result.flat_metrics("test")
    assert flat["test_robust_acc_alone_square_eps_0.05"] == alone["square"][0.05]


@pytest.mark.slow
def test_robust_accuracy_by_class_adds_up_to_robust_accuracy(test_beats, cnn_pair):
    target, _ = cnn_pair
    result = evaluate(target, test_beats, config=protocol("quick", per_class_cap=12), split="inter")
    present = [c for c in AAMI_CLASSES if result.per_class[c].support > 0]
    assert list(result.robust_acc_by_class) == present
    for e in result.eps:
        weighted = sum(result.robust_acc_by_class[c][e] * result.per_class[c].support for c in present)
        assert weighted / result.n == pytest.approx(result.robust_acc[e], abs=1e-12)
    flat = result.flat_metrics("val")
    assert flat["val_robust_sensitivity_N_eps_0.05"] == result.robust_acc_by_class["N"][0.05]


@pytest.mark.slow
def test_median_adversarial_eps_of_a_linear_model_matches_its_closed_form(kaggle_dir):
    # For a two-class z = Wx + b the smallest L-inf change that flips a right beat is, in closed
    # form, (z_y - z_o) / ||(W_y - W_o) * mask||_1, and PGD with the margin loss reaches it (its
    # step direction never changes). Grid plus bisection brackets each beat's value, so the median
    # must lie between the closed form's and that of the brackets' upper ends.
    beats = load_kaggle_csv(kaggle_dir / "mitbih_train_sample.csv")
    beats = dataclasses.replace(beats, y=(beats.y > 0).astype(beats.y.dtype))  # N against the rest
    x, y = torch.from_numpy(beats.x), torch.from_numpy(beats.y)
    linear = train_quick(linear_model(seed=1, classes=2), x, y, epochs=30)
    w, b = linear[1].weight.detach(), linear[1].bias.detach()
    mask = padding_mask(x, torch.from_numpy(beats.length.astype(np.int64))).flatten(1)
    z = x.flatten(1) @ w.T + b  # (B, 2)
    margin = (z.gather(1, y[:, None]) - z.gather(1, 1 - y[:, None])).squeeze(1)
    critical = (margin / ((w[y] - w[1 - y]) * mask).abs().sum(1)).numpy()
    right = margin.numpy() > 0

    grid = tuple(0.01 * k for k in range(1, 17))
    steps = 4
    config = EvalConfig(
        eps=grid,
        steps=100,
        attack_loss="margin",
        per_class_cap=None,
        bisect_steps=steps,
        balanced_classes=("N",),
    )
    result = evaluate(linear, beats, config=config, split="intra")
    assert right.mean() == pytest.approx(result.clean_acc)
    c = critical[right]
    inside = c <= grid[-1]
    upper = np.where(inside, c + 0.01 / 2**steps, np.inf)  # every bracket is 0.01 wide, then halved
    assert np.median(c) - 1e-6 <= result.median_adv_eps <= np.median(upper) + 1e-6
    # Kaggle rows keep no amplitude in mV, so there is no median in microvolts.
    assert math.isnan(result.median_adv_eps_uv)


@pytest.mark.slow
def test_median_adversarial_eps_in_microvolts_and_above_the_grid(test_beats, cnn_pair):
    target, _ = cnn_pair
    low = EvalConfig(eps=(0.01, 0.3), steps=10, per_class_cap=10, bisect_steps=2)
    result = evaluate(target, test_beats, config=low)
    assert 0 < result.median_adv_eps <= 0.3
    assert result.median_adv_eps_uv > 0
    # At a grid far below what breaks most beats, more than half survive: the median lies above it.
    tiny = EvalConfig(eps=(1e-6,), steps=2, per_class_cap=10, bisect_steps=0)
    above = evaluate(target, test_beats, config=tiny)
    assert above.median_adv_eps == math.inf
    assert json.loads(json.dumps(above.to_dict()))["median_adv_eps"] == math.inf


@pytest.fixture(scope="module")
def nstdb():
    return load_nstdb(SHARED_DATA / "nstdb")


@pytest.mark.slow
def test_the_noise_stress_test_reports_every_kind_and_level(test_beats, cnn_pair, nstdb):
    target, _ = cnn_pair
    config = EvalConfig(
        eps=(0.01,), steps=2, per_class_cap=8, noise_stress=True, noise_uv=(100.0,), noise_snr_db=(6.0,)
    )
    result = evaluate(target, test_beats, config=config, nstdb=nstdb)
    kinds = ("white", "bw", "ma", "powerline_50hz", "powerline_60hz")
    assert list(result.noise_stress) == [f"{k}_{lv}" for k in kinds for lv in ("100uv", "snr_6db")]
    assert all(0.0 <= v <= 1.0 for v in result.noise_stress.values())
    assert result.skipped == {}
    assert result.flat_metrics("test")["test_noise_bw_snr_6db"] == result.noise_stress["bw_snr_6db"]
    # Without the noise records, bw and ma are skipped and the result says why.
    without = evaluate(target, test_beats, config=config)
    assert [k for k in without.noise_stress if k.startswith(("bw", "ma"))] == []
    assert set(without.skipped) == {"noise_bw", "noise_ma"}
    assert "NSR_TUNE_NSTDB" in without.skipped["noise_bw"]


@pytest.mark.slow
def test_noise_in_microvolts_needs_amplitudes(kaggle_dir, linear):
    beats = load_kaggle_csv(kaggle_dir / "mitbih_train_sample.csv")
    config = EvalConfig(eps=(0.01,), steps=2, per_class_cap=5, noise_stress=True, noise_snr_db=(12.0,))
    result = evaluate(linear, beats, config=config, split="intra")
    assert list(result.noise_stress) == [
        "white_snr_12db",
        "powerline_50hz_snr_12db",
        "powerline_60hz_snr_12db",
    ]
    assert "no amplitude in mV" in result.skipped["noise_uv"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"bisect_steps": -1}, "bisect_steps: must be a whole number >= 0"),
        ({"bisect_steps": 1.5}, "bisect_steps: must be a whole number >= 0"),
        ({"noise_uv": (100.0, -5.0)}, "noise_uv: must be > 0.0"),
        ({"noise_snr_db": (float("nan"),)}, "noise_snr_db: must be a finite number"),
        ({"each_attack": "yes"}, "each_attack: must be true or false"),
        ({"attacks": ("pgd", "transfer", "pgd")}, "attacks: names an attack twice"),
    ],
)
def test_bad_evaluation_settings_name_the_field(fields, message):
    with pytest.raises(ConfigError, match=message):
        EvalConfig(**fields)


def test_the_logged_plan_names_the_attacks_the_eps_and_the_cap():
    assert plan(protocol("quick", "mitbih")) == "pgd at eps 0.01, 0.05, 0.1, up to 150 beats per class"
    strong_all = protocol("strong", "mitbih", eps=[0.03], per_class_cap=None)
    assert plan(strong_all) == "apgd_ce, apgd_t, square, sap, transfer at eps 0.03, up to all beats per class"
