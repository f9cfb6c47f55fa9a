"""RR intervals measured inside the model (`rrcnn` on the `lookback` input), checked against the
reference annotations they must not be read from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb

from nsr_tune.config import DataConfig, ModelConfig, TrialConfig
from nsr_tune.data import AAMI_MAP, FS, INPUTS, load_mitbih
from nsr_tune.errors import ConfigError
from nsr_tune.models import RR_FEATURES, RRFeatures, build_model
from nsr_tune.trial import check_trial, new_model

LOOKBACK = INPUTS["lookback"]
_OTHER_BEATS = frozenset("Brn?")  # beat codes outside the AAMI map that still make an RR interval


def annotations_at_fs(base: Path) -> tuple[int, np.ndarray, list[str]]:
    """The record's length and its annotations' positions in samples at FS, and their symbols."""
    header, ann = wfdb.rdheader(str(base)), wfdb.rdann(str(base), "atr")
    n = -(-header.sig_len * 25 // 72)  # samples at 125 Hz after resample_poly(…, 25, 72)
    return n, (2 * ann.sample * 25 + 72) // 144, list(ann.symbol)  # round(s * 125 / 360), halves up


def annotated_rr(base: Path) -> tuple[np.ndarray, np.ndarray]:
    """The interval before each `lookback` beat and the mean RR over its 10 s look-back, in
    samples at FS, from the .atr file: what the model's detector should find in the signal."""
    n, pos, symbols = annotations_at_fs(base)
    is_beat = np.array([s in AAMI_MAP for s in symbols])
    rr_pos = np.sort(pos[is_beat | np.array([s in _OTHER_BEATS for s in symbols])])
    beats = pos[is_beat]
    beats = beats[(beats >= LOOKBACK.before) & (beats - LOOKBACK.before + LOOKBACK.width <= n)]
    at = np.searchsorted(rr_pos, beats)
    first = np.searchsorted(rr_pos, beats - LOOKBACK.before)
    return beats - rr_pos[at - 1], (beats - rr_pos[first]) / np.maximum(at - first, 1)


@pytest.fixture(scope="module")
def features(mitdb_dir: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    detector = RRFeatures(r_index=LOOKBACK.before, fs=FS)
    out = {}
    for record in (100, 221, 232):
        beats, _ = load_mitbih(mitdb_dir, records=(record,), input="lookback")
        with torch.no_grad():
            out[record] = detector(torch.from_numpy(beats.x)).numpy(), beats.y
    return out


@pytest.mark.parametrize("record", [100, 232])
def test_detected_intervals_match_the_annotations(mitdb_dir: Path, features, record: int) -> None:
    found, _ = features[record]
    pre, local = annotated_rr(mitdb_dir / str(record))
    assert found.shape == (pre.size, len(RR_FEATURES))
    # Within 10% for nearly every beat (the detector's peak is the steepest slope, not the
    # annotator's fiducial point, so a sample or two apart).
    assert np.mean(np.abs(found[:, 0] * FS - pre) <= 0.1 * pre) > 0.95
    assert np.mean(np.abs(found[:, 2] * FS - local) <= 0.1 * local) > 0.95
    np.testing.assert_allclose(found[:, 3], np.log(found[:, 0] / found[:, 2]), rtol=1e-5)


def test_prematurity_against_the_local_mean_separates_record_232s_s_beats(features) -> None:
    # 232's S beats come in runs at a slow rate: their interval is like the one before, but short
    # against the 10 s mean (the note on record 232 in the README).
    found, y = features[232]
    early = found[:, 3] < np.log(0.9)
    assert early[y == 1].mean() > 0.7 and early[y == 0].mean() < 0.1


def test_a_30_s_look_back_finds_more_of_record_232s_s_beats_early(mitdb_dir: Path, features) -> None:
    # A 10 s look-back often holds only a run of S beats, against which a run's beat is not
    # early; 30 s reaches the pauses between the runs (the note on `lookback30` in data._beats).
    long_input = INPUTS["lookback30"]
    beats, _ = load_mitbih(mitdb_dir, records=(232,), input="lookback30")
    with torch.no_grad():
        found = RRFeatures(r_index=long_input.before, fs=FS)(torch.from_numpy(beats.x)).numpy()
    early, early_10s = found[:, 3] < np.log(0.9), features[232][0][:, 3] < np.log(0.9)
    s_30s, s_10s = early[beats.y == 1].mean(), early_10s[features[232][1] == 1].mean()
    assert s_30s > 0.95 and s_30s > s_10s + 0.1
    assert early[beats.y == 0].mean() < 0.1


def test_lookback30_keeps_a_records_first_beats_and_fills_before_it_with_its_first_sample(
    mitdb_dir: Path,
) -> None:
    long_input = INPUTS["lookback30"]
    long, _ = load_mitbih(mitdb_dir, records=(100,), input="lookback30")
    short, _ = load_mitbih(mitdb_dir, records=(100,), input="lookback")
    n, pos, symbols = annotations_at_fs(mitdb_dir / "100")
    pos = pos[np.array([s in AAMI_MAP for s in symbols])]
    # Every beat but those too near the record's end; `lookback` also drops its first 10 s.
    assert len(long) == int(np.sum(pos + long_input.width - long_input.before <= n))
    assert len(long) == len(short) + int(np.sum(pos < LOOKBACK.before))
    assert (long.length == long_input.width).all()
    first = long.x[0, 0]
    missing = long_input.before - int(pos[0])  # samples of the window before the record starts
    assert missing > 0 and (first[:missing] == first[missing]).all()
    # The last 11.5 s are the `lookback` window of the same beat, scaled by a wider range.
    later = long.x[len(long) - len(short) :, 0, -LOOKBACK.width :]
    for a, b in zip(later[::500], short.x[::500, 0], strict=True):
        assert np.corrcoef(a, b)[0, 1] > 0.99999


def test_irregularity_is_low_in_sinus_rhythm_and_high_in_atrial_fibrillation(features) -> None:
    irregular = RR_FEATURES.index("irregularity")
    sinus, fibrillation = (np.median(features[record][0][:, irregular]) for record in (100, 221))
    assert sinus < 0.05 and fibrillation > 0.2  # record 221: atrial fibrillation throughout


def test_intervals_have_a_gradient_that_matches_finite_differences(mitdb_dir: Path) -> None:
    beats, _ = load_mitbih(mitdb_dir, records=(232,), input="lookback")
    x = torch.from_numpy(beats.x[:6]).double().requires_grad_(True)
    detector = RRFeatures(r_index=LOOKBACK.before, fs=FS)
    (grad,) = torch.autograd.grad(detector(x)[:, 0].sum(), x)
    assert (grad.abs().sum(dim=(1, 2)) > 0).all()  # an attack can move the peaks
    step = grad / grad.abs().amax() * 1e-4
    with torch.no_grad():
        moved = detector(x + step)[:, 0] - detector(x)[:, 0]
    np.testing.assert_allclose(moved, (grad * step).sum(dim=(1, 2)), rtol=0.05, atol=1e-9)


def test_rrcnn_takes_the_inputs_with_a_look_back_and_refuses_the_others() -> None:
    for name in ("context", "lookback", "lookback30"):
        model = new_model(TrialConfig(data=DataConfig(input=name), model=ModelConfig(name="rrcnn")))
        assert model(torch.rand(2, 1, INPUTS[name].width)).shape == (2, 5)
    for name in ("kachuee", "rhythm"):
        with pytest.raises(ConfigError, match=r"model: 'rrcnn' measures RR intervals over a look-back"):
            check_trial(TrialConfig(data=DataConfig(input=name), model=ModelConfig(name="rrcnn")))
    with pytest.raises(ConfigError, match=r"model\.blocks: at most 6 for rrcnn"):
        build_model("rrcnn", {"blocks": 7}, in_len=LOOKBACK.width)


def test_no_beats_in_reach_give_the_longest_intervals_the_window_can_tell() -> None:
    # A flat window: no peak anywhere, so no interval is measured; the features stay finite.
    found = RRFeatures(r_index=LOOKBACK.before, fs=FS)(torch.full((1, 1, LOOKBACK.width), 0.5))
    assert torch.isfinite(found).all()
    assert found[0, 0].item() == pytest.approx(LOOKBACK.before / FS)


def test_rrcnn_tells_s_from_n_by_the_rhythm_alone(mitdb_dir: Path) -> None:
    beats, _ = load_mitbih(mitdb_dir, records=(232,), input="lookback")
    torch.manual_seed(0)
    model = build_model("rrcnn", in_len=LOOKBACK.width)
    x = torch.from_numpy(beats.x[:8])
    with torch.no_grad():
        logits = model(x)
        rhythm = model.rhythm_head(torch.relu(model.rr_fc(model.rr(x)[:, model.rr_used])))
    s, n = 1, 0  # AAMI_CLASSES
    torch.testing.assert_close(logits[:, s] - logits[:, n], rhythm[:, s] - rhythm[:, n])


def test_the_irregularity_reaches_the_head_only_when_asked() -> None:
    plain = build_model("rrcnn", in_len=LOOKBACK.width)
    irregular = build_model("rrcnn", {"irregularity": 1}, in_len=LOOKBACK.width)
    assert plain.rr_fc.in_features == 3 and irregular.rr_fc.in_features == 4


def test_the_template_difference_marks_ventricular_beats_against_the_patients_own(mitdb_dir: Path) -> None:
    # Record 119: sinus beats and frequent ventricular ones. Against the median of the look-back
    # beats, a normal beat is nearly its own template; a ventricular one is far from it.
    beats, _ = load_mitbih(mitdb_dir, records=(119,), input="lookback")
    detector = RRFeatures(r_index=LOOKBACK.before, fs=FS)
    x = torch.from_numpy(beats.x)
    with torch.no_grad():
        e, is_peak, own = detector.detect(x)
        difference = detector.template_difference(x, is_peak, own).abs().mean(dim=1).numpy()
    n, v = 0, 2  # AAMI_CLASSES
    assert np.median(difference[beats.y == v]) > 3 * np.median(difference[beats.y == n])
    # detect + features is the detector's forward
    torch.testing.assert_close(detector.features(e, is_peak, own), detector(x))


def test_the_template_channel_is_signal_the_gradient_reaches_and_zero_without_a_look_back(
    mitdb_dir: Path,
) -> None:
    beats, _ = load_mitbih(mitdb_dir, records=(100,), input="lookback")
    torch.manual_seed(0)
    model = build_model("rrcnn", {"template": 1}, in_len=LOOKBACK.width)
    assert model.stem.in_channels == 2 and build_model("rrcnn", in_len=LOOKBACK.width).stem.in_channels == 1
    x = torch.from_numpy(beats.x[:4]).requires_grad_(True)
    _, is_peak, own = model.rr.detect(x)
    model.rr.template_difference(x, is_peak, own).abs().sum().backward()
    # The template is made of look-back beats: the attack and the NSR term reach them.
    assert (x.grad[:, 0, : LOOKBACK.before - FS].abs().sum(dim=1) > 0).all()
    flat = torch.full((1, 1, LOOKBACK.width), 0.5)
    assert model.template_channel(flat, *model.rr.detect(flat)[1:]).abs().sum().item() == 0.0
    assert torch.isfinite(model(flat)).all()


def test_with_fusion_by_shape_the_rhythm_does_not_tell_f_from_n(mitdb_dir: Path) -> None:
    # Record 208: the training patients' F beats, which come early in its bigeminy.
    beats, _ = load_mitbih(mitdb_dir, records=(208,), input="lookback")
    torch.manual_seed(0)
    model = build_model("rrcnn", {"fusion_by_shape": 1}, in_len=LOOKBACK.width)
    x = torch.from_numpy(beats.x[beats.y == 3][:8])
    with torch.no_grad():
        logits = model(x)
        morphology = model.morphology_logits(x, *model.rr.detect(x)[1:])
    n, f = 0, 3  # AAMI_CLASSES
    torch.testing.assert_close(logits[:, f] - logits[:, n], morphology[:, f] - morphology[:, n])


def test_with_own_beat_the_cnn_does_not_see_the_neighbouring_beats(mitdb_dir: Path) -> None:
    # Record 208: most F beats are followed by a V beat 0.42 to 0.5 s later, which a CNN that
    # sees the neighbours can learn F by. With own_beat it sees 0.25 s before the R peak to 0.3 s after.
    beats, _ = load_mitbih(mitdb_dir, records=(208,), input="lookback")
    r, before, after = LOOKBACK.before, round(0.25 * FS), round(0.3 * FS)
    x = torch.from_numpy(beats.x[beats.y == 3][:8]).requires_grad_(True)
    seen = {}
    for own_beat in (0, 1):
        torch.manual_seed(0)
        model = build_model("rrcnn", {"own_beat": own_beat, "template": 1}, in_len=LOOKBACK.width)
        (grad,) = torch.autograd.grad(model.morphology_logits(x, *model.rr.detect(x)[1:]).sum(), x)
        seen[own_beat] = grad[:, 0].abs().sum(dim=0) > 0  # (L,) samples the CNN's logits depend on
    own = torch.zeros(LOOKBACK.width, dtype=torch.bool)
    own[r - before : r + after + 1] = True
    assert seen[1][own].all() and seen[1][r + after + 1 :].sum() == 0
    assert seen[0][r + after + 1 :].any()  # without the knob: the next beat
    # The template channel's look-back beats stay in reach of the gradient, hence of the attacks.
    assert seen[1][: r - before].any()
