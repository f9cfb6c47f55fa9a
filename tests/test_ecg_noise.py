"""Real ECG noise (MIT-BIH Noise Stress Test records, power line) added to real MIT-BIH beats."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
import wfdb

from nsr_tune.attacks._ecg_noise import Powerline, RecordedNoise, signal_power_mv2
from nsr_tune.data import FS, load_mitbih
from nsr_tune.data._nstdb import load_nstdb
from nsr_tune.errors import ConfigError, DataError
from tests._helpers import gen, kaggle_beats, linear_model
from tests.conftest import SHARED_DATA

NSTDB = SHARED_DATA / "nstdb"
# 650000 samples at 360 Hz -> the samples at 125 Hz before 650000/360 s: ceil(650000 * 125 / 360).
N_125 = 225695


@pytest.fixture(scope="module")
def nstdb() -> dict[str, np.ndarray]:
    if not (NSTDB / "bw.hea").is_file():
        pytest.fail(f"the real NSTDB noise records are missing: expected {NSTDB} (set NSR_TUNE_SHARED_DATA)")
    return load_nstdb(NSTDB)


@pytest.fixture(scope="module")
def mitbih_beats():
    """120 real beats of the bundled MIT-BIH records, all classes there, with their amp_mv and lengths."""
    b, _ = load_mitbih("bundled")
    rng = np.random.default_rng(0)
    per_class = [np.flatnonzero(b.y == c) for c in range(5)]
    idx = np.concatenate([rng.choice(i, min(30, len(i)), replace=False) for i in per_class])
    s = b.subset(np.sort(idx))
    return tuple(torch.from_numpy(a) for a in (s.x, s.y, s.length, s.amp_mv))


def _added_mv(x, x_noisy, amp):
    """The added noise in mV (float64), undoing each beat's min-max scaling."""
    return (x_noisy - x)[:, 0].double() * amp.double()[:, None]


def _real(lengths, length=187):
    return torch.arange(length)[None, :] < lengths[:, None]


def _rms(d, real):
    return ((d**2 * real).sum(1) / real.sum(1)).sqrt()


def _noises(model, nstdb, **level):
    return [
        RecordedNoise(model, noise=nstdb["bw"], kind="bw", **level),
        RecordedNoise(model, noise=nstdb["ma"], kind="ma", **level),
        Powerline(model, freq_hz=50, **level),
        Powerline(model, freq_hz=60, **level),
    ]


# --- reading the records -------------------------------------------------------------------------


def test_load_nstdb_reads_both_real_records_in_mv_at_125_hz(nstdb):
    assert set(nstdb) == {"bw", "ma"}
    for kind, sig in nstdb.items():
        assert sig.shape == (2, N_125) and sig.dtype == np.float64, kind
        assert np.isfinite(sig).all()
        assert not sig.flags.writeable  # shared through the in-memory cache
        # Real noise in mV: a few tenths of a mV RMS, never beyond the 12-bit range at 200 adu/mV.
        rms = np.sqrt((sig**2).mean(axis=1))
        assert ((rms > 0.1) & (rms < 1.0)).all(), (kind, rms)
        assert np.abs(sig).max() < 10.24
    assert load_nstdb(NSTDB)["ma"] is nstdb["ma"]  # cached per (file, rate)


def test_resampling_keeps_the_rms_of_the_real_noise(nstdb):
    # Measured here: bw 0.46590 -> 0.46584 and 0.17821 -> 0.17813 mV, ma 0.19268 -> 0.19250 and
    # 0.19211 -> 0.19168 mV; at most 0.23 % lost (the muscle noise above 62.5 Hz).
    for kind, sig in nstdb.items():
        raw = wfdb.rdrecord(str(NSTDB / kind)).p_signal.T
        before, after = np.sqrt((raw**2).mean(axis=1)), np.sqrt((sig**2).mean(axis=1))
        np.testing.assert_allclose(after, before, rtol=0.01, err_msg=kind)
        assert (after <= before).all()


def test_load_nstdb_at_360_hz_is_the_record_itself():
    sig = load_nstdb(NSTDB, kinds=("ma",), fs=360)["ma"]
    np.testing.assert_array_equal(sig, wfdb.rdrecord(str(NSTDB / "ma")).p_signal.T)


def test_load_nstdb_errors_name_the_directory_or_file(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=rf"{missing}.*does not exist.*dl_database\('nstdb'"):
        load_nstdb(missing)
    monkeypatch.delenv("NSR_TUNE_NSTDB", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=rf"{tmp_path / 'cache' / 'nsr-tune' / 'nstdb'}.*default location"):
        load_nstdb(None)
    monkeypatch.setenv("NSR_TUNE_NSTDB", str(NSTDB))
    assert load_nstdb(None, kinds=("bw",))["bw"].shape == (2, N_125)

    copy = tmp_path / "nstdb"
    copy.mkdir()
    shutil.copy(NSTDB / "bw.hea", copy)
    with pytest.raises(DataError, match=rf"{copy / 'bw.dat'}: signal file .* missing"):
        load_nstdb(copy, kinds=("bw",))
    with pytest.raises(DataError, match=rf"{copy / 'ma.hea'}: header .* missing.*dl_database"):
        load_nstdb(copy, kinds=("ma",))
    (copy / "bw.dat").write_bytes((NSTDB / "bw.dat").read_bytes()[:100_000])
    with pytest.raises(DataError, match=rf"{copy / 'bw.dat'}: truncated"):
        load_nstdb(copy, kinds=("bw",))
    with pytest.raises(ConfigError, match="kinds"):
        load_nstdb(NSTDB, kinds=("xx",))


# --- the noise added to beats --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bw", "ma"])
def test_recorded_noise_has_the_rms_asked_for_in_every_beat(nstdb, mitbih_beats, kind):
    x, y, lengths, amp = mitbih_beats
    noise = RecordedNoise(linear_model(), noise=nstdb[kind], kind=kind, amplitude_uv=150)
    result = noise(x, y, lengths=lengths, amp_mv=amp, generator=gen())
    added, real = _added_mv(x, result.x_adv, amp), _real(lengths)
    torch.testing.assert_close(
        _rms(added, real), torch.full((len(x),), 0.150, dtype=torch.float64), rtol=1e-5, atol=0
    )
    # Zero mean over the real samples, nothing on the padding.
    assert ((added * real).sum(1) / real.sum(1)).abs().max() < 1e-5
    assert torch.equal(result.x_adv[:, 0][~real], x[:, 0][~real])
    if kind == "ma":
        # Each beat its own segment: no two beats' noise the same shape over the samples they all have
        # (as it would be with one start for all; bw is left out: its segments of 0.45 s are all
        # nearly straight lines). Where this was written the closest two correlated at 0.89.
        head = added[:, : int(lengths.min())]
        head = (head - head.mean(1, keepdim=True)) / head.std(1, keepdim=True)
        corr = head @ head.T / (head.shape[1] - 1)
        assert (corr - torch.eye(len(x), dtype=corr.dtype)).abs().max() < 0.9999


def test_recorded_noise_is_a_segment_of_a_random_channel(mitbih_beats):
    # A record exactly as long as the beats: every beat gets the whole of channel 0 or of channel 1.
    x, y, lengths, amp = mitbih_beats
    t = np.arange(187)
    record = np.stack([np.sin(t / 7.0) + t / 50.0, np.cos(t / 3.0) ** 3])
    noise = RecordedNoise(linear_model(), noise=record, kind="test", amplitude_uv=100)
    added = _added_mv(x, noise(x, y, lengths=lengths, amp_mv=amp, generator=gen()).x_adv, amp)
    chosen = []
    for d, n in zip(added.numpy(), lengths.tolist(), strict=True):
        segs = [r[:n] - r[:n].mean() for r in record]
        scaled = [s * 0.1 / np.sqrt((s**2).mean()) for s in segs]
        fits = [np.abs(d[:n] - s).max() < 1e-5 for s in scaled]
        assert sum(fits) == 1
        chosen.append(fits.index(True))
    assert set(chosen) == {0, 1}


@pytest.mark.parametrize("snr_db", [-6.0, 0.0, 12.0])
def test_snr_holds_in_every_beat(nstdb, mitbih_beats, snr_db):
    x, y, lengths, amp = mitbih_beats
    real = _real(lengths)
    # The NST's signal power: (peak-to-peak amplitude in mV over the beat's real samples)² / 8.
    x_mv = x[:, 0].double() * amp.double()[:, None]
    p_signal = (x_mv.masked_fill(~real, -np.inf).amax(1) - x_mv.masked_fill(~real, np.inf).amin(1)) ** 2 / 8
    torch.testing.assert_close(
        signal_power_mv2(x, lengths=lengths, amp_mv=amp).double(), p_signal, rtol=1e-5, atol=0
    )
    for noise in _noises(linear_model(), nstdb, snr_db=snr_db):
        x_noisy = noise(x, y, lengths=lengths, amp_mv=amp, generator=gen()).x_adv
        p_noise = _rms(_added_mv(x, x_noisy, amp), real) ** 2
        snr = 10 * torch.log10(p_signal / p_noise)
        torch.testing.assert_close(snr, torch.full_like(snr, snr_db), rtol=0, atol=1e-3, msg=noise.label)
        # The beats' amplitudes cancel out of an SNR: beats without them (Kaggle rows) get the same noise.
        same = noise(x, y, lengths=lengths, amp_mv=None, generator=gen()).x_adv
        assert torch.equal(same, x_noisy)


@pytest.mark.parametrize("freq", [50, 60])
def test_powerline_is_a_sinusoid_at_its_frequency(mitbih_beats, freq):
    x, y, lengths, amp = mitbih_beats
    noise = Powerline(linear_model(), freq_hz=freq, fs=125, amplitude_uv=40)
    assert Powerline(linear_model(), freq_hz=freq, amplitude_uv=40).fs == FS  # the beats' rate by default
    result = noise(x, y, lengths=lengths, amp_mv=amp, generator=gen())
    added, real = _added_mv(x, result.x_adv, amp), _real(lengths)
    torch.testing.assert_close(
        _rms(added, real), torch.full((len(x),), 0.040, dtype=torch.float64), rtol=1e-5, atol=0
    )
    assert torch.equal(result.x_adv[:, 0][~real], x[:, 0][~real])
    phases = []
    for d, n in zip(added.numpy(), lengths.tolist(), strict=True):
        d = d[:n]
        # Its spectrum peaks at freq (within one bin), and it is exactly a sinusoid at freq.
        peak = np.argmax(np.abs(np.fft.rfft(d)))
        assert abs(peak * 125 / n - freq) <= 125 / n
        t = np.arange(n) / 125
        basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
        coef, *_ = np.linalg.lstsq(basis, d, rcond=None)
        assert np.abs(basis @ coef - d).max() < 1e-4 * 0.040
        phases.append(math.atan2(coef[1], coef[0]))
    assert np.std(phases) > 1.0  # a random phase per beat


def test_noise_is_reproducible_from_the_generator_and_leaves_padding_alone(nstdb, mitbih_beats):
    x, y, lengths, amp = mitbih_beats
    for noise in _noises(linear_model(), nstdb, amplitude_uv=80):
        a = noise(x, y, lengths=lengths, amp_mv=amp, generator=gen(3)).x_adv
        b = noise(x, y, lengths=lengths, amp_mv=amp, generator=gen(3)).x_adv
        c = noise(x, y, lengths=lengths, amp_mv=amp, generator=gen(4)).x_adv
        assert torch.equal(a, b) and not torch.equal(a, c), noise.label
        pad = ~_real(lengths)
        assert pad.any() and torch.equal(a[:, 0][pad], x[:, 0][pad])


def test_broken_is_where_the_model_is_wrong_on_the_noisy_beats(nstdb, mitbih_beats):
    x, y, lengths, amp = mitbih_beats
    model = linear_model(seed=1)
    for noise in _noises(model, nstdb, amplitude_uv=200):
        result = noise(x, y, lengths=lengths, amp_mv=amp, generator=gen())
        assert result.broken.dtype == torch.bool and result.broken.shape == y.shape
        assert result.x_adv.dtype == x.dtype and result.x_adv.shape == x.shape
        with torch.no_grad():
            assert torch.equal(result.broken, model(result.x_adv).argmax(1) != y)


def test_bad_settings_are_config_errors(nstdb, mitbih_beats, kaggle_dir):
    x, y, lengths, amp = mitbih_beats
    model = linear_model()
    ma = nstdb["ma"]
    with pytest.raises(ConfigError, match="exactly one of amplitude_uv and snr_db"):
        RecordedNoise(model, noise=ma, kind="ma")
    with pytest.raises(ConfigError, match="exactly one of amplitude_uv and snr_db"):
        RecordedNoise(model, noise=ma, kind="ma", amplitude_uv=10, snr_db=6)
    with pytest.raises(ConfigError, match="amplitude_uv"):
        RecordedNoise(model, noise=ma, kind="ma", amplitude_uv=-1)
    with pytest.raises(ConfigError, match=r"noise: expected an array \(channels, n\)"):
        RecordedNoise(model, noise=ma[0], kind="ma", amplitude_uv=10)
    with pytest.raises(ConfigError, match="Nyquist"):
        Powerline(model, freq_hz=60, fs=100, amplitude_uv=10)
    with pytest.raises(ConfigError, match="shorter than a beat"):
        RecordedNoise(model, noise=ma[:, :100], kind="ma", amplitude_uv=10)(x, y, lengths=lengths, amp_mv=amp)
    # Kaggle CSV beats have no amplitude in mV: µV cannot be placed on them, an SNR can.
    kx, ky, klen = kaggle_beats(kaggle_dir / "mitbih_test_sample.csv")
    noise = RecordedNoise(model, noise=ma, kind="ma", amplitude_uv=10)
    with pytest.raises(ConfigError, match="amp_mv"):
        noise(kx, ky, lengths=klen, amp_mv=None)
    with pytest.raises(ConfigError, match="amp_mv: 500 of 500 beats"):
        noise(kx, ky, lengths=klen, amp_mv=torch.full((len(kx),), float("nan")))
    snr = RecordedNoise(model, noise=ma, kind="ma", snr_db=6)
    assert snr(kx, ky, lengths=klen, generator=gen()).x_adv.isfinite().all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_noise_on_cuda_with_a_cpu_generator_matches_the_cpu(nstdb, mitbih_beats):
    x, y, lengths, amp = mitbih_beats
    model = linear_model()
    for noise in _noises(model, nstdb, amplitude_uv=80):
        cpu = noise(x, y, lengths=lengths, amp_mv=amp, generator=gen())
        model.cuda()
        gpu = noise(x.cuda(), y.cuda(), lengths=lengths.cuda(), amp_mv=amp.cuda(), generator=gen())
        model.cpu()
        torch.testing.assert_close(gpu.x_adv.cpu(), cpu.x_adv, rtol=1e-5, atol=1e-6)
