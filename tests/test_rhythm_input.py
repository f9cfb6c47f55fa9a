"""The beat representations (`data.input`): the paper's `kachuee` beat and the `rhythm` and
`context` windows around the R peak."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from scipy.signal import resample_poly

from nsr_tune.attacks import PGD, padding_mask
from nsr_tune.config import DataConfig, EvalConfig, ModelConfig, ObjectiveConfig, OptimConfig, TrialConfig
from nsr_tune.data import AAMI_MAP, FS, INPUTS, check_data, input_shape, load_mitbih, make_splits
from nsr_tune.errors import ConfigError, SpaceError
from nsr_tune.models import MODELS, build_model
from nsr_tune.results.front import trial_params
from nsr_tune.study.space import parse_space
from nsr_tune.trial import check_trial, new_model, run_trial

RECORDS = (208, 209, 213, 223, 232)  # train 208 209, val 223, test 213 232 under `inter`
RHYTHM = INPUTS["rhythm"]


def reference_window(base: Path, before: int, width: int) -> tuple[np.ndarray, np.ndarray, Counter[str]]:
    """_segment's windows of channel 0 (``before`` samples ahead of the R peak, ``width`` in all),
    written beat by beat with exact fractions.

    Returns x (B, width), y, and counts of the branches taken (to show the test covers them)."""
    sig = wfdb.rdrecord(str(base), channels=[0]).p_signal[:, 0]
    ann = wfdb.rdann(str(base), "atr")
    x = resample_poly(sig, 25, 72)
    n, win = x.size, 10 * FS
    out_x, out_y, branches = [], [], Counter[str]()
    for s, sym in zip(ann.sample, ann.symbol, strict=True):
        if sym not in AAMI_MAP:
            continue
        p = math.floor(Fraction(int(s) * 125, 360) + Fraction(1, 2))
        start, end = p - before, p - before + width
        if start < 0 or end > n:
            branches["dropped"] += 1
            continue
        k = p // win
        window = x[k * win : (k + 1) * win]
        ahead = x[start : max(start, min(end, k * win))]
        outside = np.concatenate([ahead, x[max(start, (k + 1) * win) : end]])
        lo = min(window.min(), outside.min() if outside.size else np.inf)
        hi = max(window.max(), outside.max() if outside.size else -np.inf)
        branches["before"] += start < k * win
        branches["after"] += end > (k + 1) * win
        branches["widened"] += (lo, hi) != (window.min(), window.max())
        out_x.append((x[start:end] - lo) / (hi - lo))
        out_y.append(AAMI_MAP[sym])
    return np.array(out_x), np.array(out_y), branches


@pytest.mark.parametrize(("input", "record"), [("rhythm", 100), ("rhythm", 208), ("context", 232)])
def test_windows_equal_a_beat_by_beat_reference(mitdb_dir: Path, input: str, record: int) -> None:
    spec = INPUTS[input]
    beats, report = load_mitbih(mitdb_dir, records=[record], input=input)
    x, y, branches = reference_window(mitdb_dir / str(record), spec.before, spec.width)
    assert beats.x.shape == (len(y), 1, spec.width) and beats.width == spec.width
    assert np.array_equal(beats.y, y)
    assert (beats.length == spec.width).all()  # no padding: every sample is signal
    np.testing.assert_allclose(beats.x[:, 0], x, rtol=0, atol=2e-6)
    assert beats.x.min() >= 0.0 and beats.x.max() <= 1.0
    assert report.dropped_out_of_record == branches["dropped"] > 0
    # Windows reach into the 10 s windows on both sides, and some widen the scaling.
    assert branches["before"] > 0 and branches["after"] > 0 and branches["widened"] > 0


def test_rhythm_window_holds_the_kachuee_beat_from_its_r_peak(mitdb_dir: Path) -> None:
    kachuee, _ = load_mitbih(mitdb_dir, records=[100])
    rhythm, _ = load_mitbih(mitdb_dir, records=[100], input="rhythm")
    # Record 100 starts with beats too close to its start for a 1.5 s look back: rhythm drops 2.
    k = kachuee.x[2 : 2 + len(rhythm), 0]
    r = rhythm.x[:, 0, RHYTHM.before :]
    same_scale = np.flatnonzero(np.abs(k[:, 0] - r[:, 0]) == 0)
    assert len(same_scale) > 0.8 * len(rhythm)  # the rest are scaled with a widened range
    for i in same_scale[:200]:
        n = kachuee.length[2 + i]
        assert np.array_equal(k[i, :n], r[i, :n])
    assert np.array_equal(kachuee.y[2 : 2 + len(rhythm)], rhythm.y)


def test_input_is_checked_and_cached_apart(mitdb_dir: Path) -> None:
    with pytest.raises(ConfigError, match="input: must be one of kachuee, rhythm, context"):
        check_data(DataConfig(input="window"))
    with pytest.raises(ConfigError, match="input: is a setting of mitbih, not of cpsc2018"):
        check_data(DataConfig(dataset="cpsc2018", input="rhythm"))
    with pytest.raises(ConfigError, match="input: unknown beat representation 'window'"):
        load_mitbih(mitdb_dir, records=[100], input="window")
    _, kachuee = load_mitbih(mitdb_dir, records=[100])
    _, rhythm = load_mitbih(mitdb_dir, records=[100], input="rhythm")
    assert kachuee.fingerprint != rhythm.fingerprint
    assert input_shape(DataConfig()).length == 187 and input_shape(DataConfig(input="rhythm")).length == 375
    assert input_shape(DataConfig(input="context")).length == 688 and INPUTS["context"].before == 500
    assert input_shape(DataConfig(dataset="cpsc2018")).length is None


@pytest.mark.parametrize("name", [m for m in MODELS if not MODELS[m].multi_lead])
def test_every_mitbih_model_takes_every_input(name: str) -> None:
    for spec in INPUTS.values():
        if name == "rrcnn" and spec.before < 4 * FS:
            continue  # it measures RR intervals over a look-back; see test_rr_features
        config = TrialConfig(data=DataConfig(input=spec.name), model=ModelConfig(name=name))
        model = new_model(config)
        assert model(torch.rand(3, 1, spec.width)).shape == (3, 5)
    # A model built for one width refuses the other rather than silently misreading it.
    if MODELS[name].sized:
        with pytest.raises((RuntimeError, ValueError)):
            build_model(name)(torch.rand(3, 1, RHYTHM.width))


def test_cnn_depth_is_checked_against_the_input_width() -> None:
    six = ModelConfig(name="cnn", knobs={"blocks": 6})
    with pytest.raises(ConfigError, match=r"model\.blocks: at most 5 for 187-sample beats, got 6"):
        check_trial(TrialConfig(model=six))
    check_trial(TrialConfig(model=six, data=DataConfig(input="rhythm")))
    with pytest.raises(ConfigError, match=r"model\.blocks: at most 6 for 375-sample beats, got 7"):
        check_trial(
            TrialConfig(model=ModelConfig(name="cnn", knobs={"blocks": 7}), data=DataConfig(input="rhythm"))
        )
    check_trial(
        TrialConfig(model=ModelConfig(name="cnn", knobs={"blocks": 7}), data=DataConfig(input="context"))
    )
    with pytest.raises(ConfigError, match=r"model\.blocks: at most 7 for 688-sample beats, got 8"):
        check_trial(
            TrialConfig(model=ModelConfig(name="cnn", knobs={"blocks": 8}), data=DataConfig(input="context"))
        )


@pytest.fixture(scope="module")
def rhythm_splits(mitdb_dir: Path):
    beats, _ = load_mitbih(mitdb_dir, records=RECORDS, input="rhythm")
    return make_splits(beats, split="inter", seed=0)


def test_attacks_and_the_nsr_term_reach_the_whole_window(rhythm_splits) -> None:
    """Everything a rhythm model sees is signal an attacker can change: the look back included."""
    torch.manual_seed(0)
    model = build_model("cnn", in_len=RHYTHM.width).eval()
    x, lengths = rhythm_splits.test.inputs(np.arange(64))
    x, lengths = torch.from_numpy(x), torch.from_numpy(lengths)
    assert bool((padding_mask(x, lengths) == 1).all())  # the mask PGD, APGD, Square and NSR use
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # an untrained model: attack what it predicts
    # The NSR term's gradient is nonzero before and after the R peak.
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xg).gather(1, y[:, None]).sum(), xg)
    assert (grad[:, 0, : RHYTHM.before].abs().amax(dim=1) > 0).all()
    assert (grad[:, 0, RHYTHM.before + 1 :].abs().amax(dim=1) > 0).all()
    result = PGD(model, eps=0.3, steps=10)(x, y, lengths=lengths)
    assert result.broken.any()
    delta = (result.x_adv - x)[result.broken, 0]  # (broken, 375)
    assert delta.abs().max() <= 0.3 + 1e-6
    assert (delta[:, : RHYTHM.before].abs().amax(dim=1) > 0).all()


@pytest.mark.slow
def test_a_rhythm_trial_runs_end_to_end(rhythm_splits) -> None:
    quick = EvalConfig(eps=(0.01, 0.05), steps=5, per_class_cap=10, batch_size=256)
    config = TrialConfig(
        data=DataConfig(split="inter", input="rhythm", max_train_beats=600),
        model=ModelConfig(name="cnn"),
        objective=ObjectiveConfig(name="nsr", beta=0.3),
        optim=OptimConfig(epochs=1, batch_size=64),
        val_eval=quick,
        test_eval=quick,
        seed=3,
    )
    final = list(run_trial(config, rhythm_splits))[-1]
    assert final.final and not final.diverged and math.isfinite(final.metrics["train_loss"])
    assert 0.0 <= final.test.robust_acc[0.05] <= final.test.robust_acc[0.01] <= final.test.clean_acc
    assert final.test.n == sum(min(10, c) for c in rhythm_splits.test.class_counts().values())
    assert TrialConfig.from_dict(config.to_dict()).data.input == "rhythm"
    assert trial_params(config.to_dict())["data.input"] == "rhythm"  # the MLflow param of the run


SPACE = """
name: t
data: {split: inter, input: INPUT}
model:
  families:
    cnn: {blocks: {choice: [5, 6]}}
objective: {choices: {ce: {}}}
optim: {epochs: 1}
evaluation:
  search: {eps: [0.01, 0.05], steps: 3, per_class_cap: 5}
  test: {eps: [0.01, 0.05], steps: 3, per_class_cap: 5}
search: {num_samples: 2, sampler: random, seed: 1}
"""


def test_a_space_checks_each_knob_against_its_input() -> None:
    space = parse_space(SPACE.replace("INPUT", "rhythm"))
    assert space.data["input"] == "rhythm"
    with pytest.raises(SpaceError, match=r"model\.families\.cnn\.blocks: model\.blocks: at most 5 for 187"):
        parse_space(SPACE.replace("INPUT", "kachuee"))
    with pytest.raises(SpaceError, match="data: input: must be one of kachuee, rhythm"):
        parse_space(SPACE.replace("INPUT", "window"))
