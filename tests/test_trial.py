from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nsr_tune.config import DataConfig, EvalConfig, ModelConfig, ObjectiveConfig, OptimConfig, TrialConfig
from nsr_tune.data import AAMI_CLASSES, load_mitbih, make_splits
from nsr_tune.errors import CheckpointError
from nsr_tune.evaluation.run import evaluate
from nsr_tune.evaluation.scores import robust_auc, stratified_cap
from nsr_tune.trial import run_trial

RECORDS = (208, 209, 213, 223, 232)  # train 208 209, val 223, test 213 232 under `inter`


@pytest.fixture(scope="module")
def splits(mitdb_dir):
    beats, _ = load_mitbih(mitdb_dir, records=RECORDS)
    return make_splits(beats, split="inter", seed=0)


def small_config(objective: str = "ce", beta: float = 0.0, epochs: int = 1, **optim) -> TrialConfig:
    quick = EvalConfig(eps=(0.01, 0.05), steps=5, per_class_cap=15, batch_size=256)
    return TrialConfig(
        data=DataConfig(split="inter", max_train_beats=1500),
        model=ModelConfig(name="cnn"),
        objective=ObjectiveConfig(name=objective, beta=beta),
        optim=OptimConfig(epochs=epochs, batch_size=64, **optim),
        val_eval=quick,
        test_eval=quick,
        seed=3,
    )


@pytest.mark.slow
@pytest.mark.parametrize(("objective", "beta"), [("ce", 0.0), ("nsr", 0.3)])
def test_short_run_on_real_beats(splits, objective, beta):
    results = list(run_trial(small_config(objective, beta), splits))
    assert len(results) == 1
    final = results[0]
    assert final.final and not final.diverged
    assert final.epoch == 1 and final.epochs == 1
    assert math.isfinite(final.metrics["train_loss"])
    for result in (final.val, final.test):
        assert result is not None
        assert result.balanced_classes == ("N", "S", "V", "F")
        assert 0.0 <= result.robust_acc[0.05] <= result.robust_acc[0.01] <= result.clean_acc <= 1.0
        assert result.robust_auc == pytest.approx(
            robust_auc([0.01, 0.05], result.clean_acc, [result.robust_acc[0.01], result.robust_acc[0.05]])
        )
        assert result.eps_uv[0.05] > result.eps_uv[0.01] > 0  # real amplitudes, in microvolts
    # The test subset is capped per class: 15 of each class DS2 records 213 and 232 hold.
    assert final.test.n == sum(min(15, c) for c in splits.test.class_counts().values())


@pytest.mark.slow
def test_same_seed_same_metrics_and_resume_continues_exactly(splits):
    config = small_config(epochs=2)
    straight = list(run_trial(config, splits))
    again = list(run_trial(config, splits))
    assert straight[-1].metrics["train_loss"] == again[-1].metrics["train_loss"]

    # JSON text compares NaN (a class with no beats) as equal to itself.
    def same(r):
        return json.dumps(r.to_dict() | {"seconds": 0, "timings": {}}, sort_keys=True)

    assert same(straight[-1].test) == same(again[-1].test)

    first = next(iter(run_trial(config, splits)))
    resumed = list(run_trial(config, splits, resume=first.checkpoint))
    assert [r.epoch for r in resumed] == [2]  # epoch 1 is not trained again
    assert resumed[0].metrics["train_loss"] == straight[-1].metrics["train_loss"]
    for key, value in straight[-1].checkpoint["model_state"].items():
        assert torch.equal(value, resumed[0].checkpoint["model_state"][key]), key


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_config(splits):
    first = next(iter(run_trial(small_config(epochs=2), splits)))
    with pytest.raises(CheckpointError, match="different config"):
        next(iter(run_trial(small_config(epochs=2, lr=0.5), splits, resume=first.checkpoint)))


@pytest.mark.slow
def test_diverging_trial_stops_and_says_so(splits):
    results = list(run_trial(small_config("nsr", beta=1e30, epochs=2, lr=1e6, grad_clip=None), splits))
    *before, last = results
    assert last.diverged and last.final and last.checkpoint == {}
    # Nothing comes after the epoch that diverged, which reports the last finite metrics.
    assert [r.epoch for r in results] == list(range(1, len(results) + 1))
    assert not any(r.diverged or r.final for r in before)
    assert last.metrics == (before[-1].metrics if before else {})


def test_stratified_cap_is_seeded_and_capped():
    y = np.array([0] * 50 + [1] * 3 + [2] * 20)
    a = stratified_cap(y, cap=10, seed=1)
    assert np.array_equal(a, stratified_cap(y, cap=10, seed=1))
    assert np.bincount(y[a]).tolist() == [10, 3, 10]
    assert not np.array_equal(a, stratified_cap(y, cap=10, seed=2))


def test_robust_auc_trapezoid_exact():
    # (0, 1.0) -> (0.1, 0.5) -> (0.2, 0.0): area 0.075 + 0.025 = 0.1, over max eps 0.2 -> 0.5
    assert robust_auc([0.1, 0.2], 1.0, [0.5, 0.0]) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.slow
def test_evaluation_robust_curve_is_monotone(splits):
    config = small_config(epochs=1)
    model_state = next(iter(run_trial(config, splits))).checkpoint["model_state"]
    from nsr_tune.models import build_model

    model = build_model("cnn")
    model.load_state_dict(model_state)
    result = evaluate(model, splits.test, config=EvalConfig(eps=(0.3, 0.01, 0.1), steps=3, per_class_cap=10))
    assert result.eps == (0.01, 0.1, 0.3)
    values = [result.robust_acc[e] for e in result.eps]
    assert values == sorted(values, reverse=True)
    assert all(result.robust_balanced_acc[e] <= result.balanced_acc + 1e-12 for e in result.eps)


def test_the_data_config_pins_the_split_fractions(mitdb_dir):
    beats, _ = load_mitbih(mitdb_dir, records=RECORDS)
    data = DataConfig(split="intra", seed=2, val_fraction=0.25, test_fraction=0.5)
    assert data.split_arguments() == {"split": "intra", "seed": 2, "val_fraction": 0.25, "test_fraction": 0.5}
    ours = make_splits(beats, **data.split_arguments())
    direct = make_splits(beats, split="intra", seed=2, val_fraction=0.25, test_fraction=0.5)
    default = make_splits(beats, split="intra", seed=2)
    assert ours.describe() == direct.describe() != default.describe()
    # About half of the beats are test beats, a quarter of the rest validation (rounded per class).
    assert abs(len(ours.test) - len(beats) / 2) <= 5
    assert abs(len(ours.val) - (len(beats) - len(ours.test)) / 4) <= 5


def _briefly_trained_cnn(splits, *, inputs=lambda x: x) -> torch.nn.Module:
    """A few CE steps on real beats, so that some beats are correct and attacks have work to do."""
    from nsr_tune.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(splits.train.x[:1024]), torch.from_numpy(splits.train.y[:1024])
    for _ in range(3):
        for idx in torch.randperm(len(x)).split(128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs(x[idx])), y[idx]).backward()
            opt.step()
    return model.eval()


@pytest.mark.slow
def test_the_strong_protocol_runs_its_cascade_and_keeps_each_attacks_accuracy(splits):
    from nsr_tune.protocol import protocol

    model = _briefly_trained_cnn(splits)
    config = protocol(
        "strong", eps=(0.02, 0.1), per_class_cap=8, apgd_steps=10, square_queries=30, sap_steps=5
    )
    result = evaluate(model.eval(), splits.test, config=config, split="inter")
    by = result.robust_acc_by_attack
    assert list(by) == ["apgd_ce", "apgd_t", "square", "sap"]
    for e in config.eps:
        chain = [by[a][e] for a in by]
        # Each attack only removes beats: accuracy never rises along the cascade or with eps.
        assert chain == sorted(chain, reverse=True)
        assert chain[-1] == result.robust_acc[e] <= result.clean_acc
    assert result.robust_acc[0.1] <= result.robust_acc[0.02]
    assert result.attack.startswith("APGD-CE-10 -> APGD-T-10 -> Square-30q -> SAP-5 (linf")
    flat = result.flat_metrics("test")
    assert flat["test_robust_acc_square_eps_0.1"] == by["square"][0.1]
    assert json.loads(json.dumps(result.to_dict()))["robust_acc_by_attack"]["sap"]["0.02"] == by["sap"][0.02]
    # A protocol of one attack keeps no per-attack curves: its robust_acc is that attack's.
    quick = evaluate(model, splits.test, config=protocol("quick", per_class_cap=5), split="inter")
    assert quick.robust_acc_by_attack == {}


class _Quantised(torch.nn.Module):
    """A model behind an input quantiser: its input gradient is zero almost everywhere, so
    gradient attacks see nothing, yet a small change that crosses a level flips its output."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    @staticmethod
    def quantise(x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 8) / 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.quantise(x))


@pytest.mark.slow
def test_the_strong_protocol_flags_a_masked_gradient_and_sees_through_it(splits):
    from nsr_tune.protocol import protocol

    model = _briefly_trained_cnn(splits, inputs=_Quantised.quantise)
    masked = _Quantised(model).eval()
    small = {"eps": (0.15,), "per_class_cap": 25, "apgd_steps": 10, "square_queries": 300, "sap_steps": 5}
    strong = evaluate(masked, splits.test, config=protocol("strong", **small), split="inter")
    pgd = evaluate(
        masked, splits.test, config=protocol("standard", eps=(0.15,), per_class_cap=25), split="inter"
    )
    assert strong.clean_acc == pgd.clean_acc > 0
    # The input gradient is exactly zero, so PGD breaks beats only through its random start,
    # while the black-box Square attack finds what it cannot.
    assert {"zero_gradients", "black_box_beats_white_box"} <= set(strong.flags), strong.flags
    assert strong.robust_acc[0.15] < pgd.robust_acc[0.15]
    plain = evaluate(model, splits.test, config=protocol("strong", **small), split="inter")
    assert "zero_gradients" not in plain.flags


def test_learning_rate_schedules_are_exact_functions_of_the_epoch():
    from nsr_tune.trial._run import _lr_factor

    cosine = _lr_factor("cosine", 8)
    assert [cosine(e) for e in (0, 4)] == [1.0, pytest.approx(0.5)]
    assert [_lr_factor("step", 8)(e) for e in range(8)] == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    assert _lr_factor("none", 8)(7) == 1.0


@pytest.mark.slow
def test_adamax_with_a_cosine_schedule_resumes_on_the_same_curve(splits):
    """The paper scripts' optimiser; the rate of each epoch is reported, and a resumed trial
    continues exactly where the straight run would be (the rate depends on the epoch alone)."""
    config = small_config(epochs=2, optimizer="adamax", schedule="cosine", lr=0.002)
    straight = list(run_trial(config, splits))
    assert [r.metrics["lr"] for r in straight] == [0.002, pytest.approx(0.001)]
    resumed = list(run_trial(config, splits, resume=straight[0].checkpoint))
    assert resumed[0].metrics["lr"] == straight[1].metrics["lr"]
    assert resumed[0].metrics["train_loss"] == straight[1].metrics["train_loss"]


def test_a_model_that_calls_every_beat_one_class_is_reported_at_chance():
    from nsr_tune.trial._run import _collapse

    classes = ("N", "S", "V", "F")
    y = np.array([0] * 6 + [1] * 2 + [2] * 2 + [3] * 2)  # indices into AAMI_CLASSES (N, S, V, F, Q)
    message = _collapse(np.full_like(y, 1), y, classes, AAMI_CLASSES)
    assert message is not None
    assert "balanced accuracy 0.250 over 4 classes (chance 0.250), 100% of the beats called S" in message
    assert _collapse(y, y, classes, AAMI_CLASSES) is None
    # N and V right, S and F called N: balanced accuracy 0.5, better than chance.
    better = np.where(y == 2, 2, 0)
    assert _collapse(better, y, classes, AAMI_CLASSES) is None
