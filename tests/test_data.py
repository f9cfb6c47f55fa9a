"""Tests of nsr_tune.data on the real MIT-BIH and Kaggle files (damaged copies in tmp for errors)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import stat
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import wfdb
from scipy.signal import resample_poly

from nsr_tune.data import (
    AAMI_CLASSES,
    AAMI_MAP,
    BEAT_LEN,
    BUNDLED_DIR,
    DEFAULT_VAL_RECORDS,
    DS1,
    DS2,
    FS,
    PACED,
    BeatSet,
    LoadReport,
    default_cache_dir,
    default_data_dir,
    download_mitdb,
    load_kaggle_csv,
    load_mitbih,
    make_splits,
    mitdb_checksum_problems,
    resolve_data_dir,
    summarize,
)
from nsr_tune.errors import ConfigError, DataError

BUNDLED_RECORDS = (208, 209, 213, 223, 232)
ARRAYS = ("x", "y", "length", "record", "amp_mv")


# ---------------------------------------------------------------------------------- helpers


def copy_records(src: Path, dest: Path, records: tuple[int, ...], *, listing: bool = True) -> Path:
    """Writable copies of real records (the shared files are read-only)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rec in records:
        for ext in ("hea", "dat", "atr"):
            target = dest / f"{rec}.{ext}"
            shutil.copyfile(src / f"{rec}.{ext}", target)
            target.chmod(stat.S_IRUSR | stat.S_IWUSR)
    if listing:
        (dest / "RECORDS").write_text("".join(f"{rec}\n" for rec in records))
    return dest


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def same_beats(a: BeatSet, b: BeatSet) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k), equal_nan=True) for k in ARRAYS)


def reference_beats(base: Path, channel: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Counter[str]]:
    """The preprocessing of _segment's docstring, written beat by beat with exact fractions.

    Returns x (B, 187), y, length, and counts of the branches taken (to show the test covers them).
    """
    sig = wfdb.rdrecord(str(base), channels=[channel]).p_signal[:, 0]
    ann = wfdb.rdann(str(base), "atr")
    x = resample_poly(sig, 25, 72)
    n, win = x.size, 10 * FS
    beats = [
        (math.floor(Fraction(int(s) * 125, 360) + Fraction(1, 2)), AAMI_MAP[sym])
        for s, sym in zip(ann.sample, ann.symbol, strict=True)
        if sym in AAMI_MAP
    ]
    by_window: dict[int, list[int]] = {}
    for p, _ in beats:
        by_window.setdefault(p // win, []).append(p)
    record_t = np.median(np.diff([p for p, _ in beats]))
    out_x, out_y, out_len, branches = [], [], [], Counter[str]()
    for p, cls in beats:
        k = p // win
        peaks = by_window[k]
        t = np.median(np.diff(peaks)) if len(peaks) >= 2 else record_t
        branches["record_median"] += len(peaks) < 2
        seg_len = math.floor(Fraction(6, 5) * Fraction(float(t)) + Fraction(1, 2))
        if p + seg_len > n:
            branches["dropped"] += 1
            continue
        length = min(seg_len, BEAT_LEN)
        seg = x[p : p + length]
        window = x[k * win : (k + 1) * win]
        spill = x[max(p, (k + 1) * win) : p + length]
        lo = min(window.min(), spill.min() if spill.size else np.inf)
        hi = max(window.max(), spill.max() if spill.size else -np.inf)
        branches["truncated"] += seg_len > BEAT_LEN
        branches["spill"] += spill.size > 0
        branches["widened"] += (lo, hi) != (window.min(), window.max())
        beat = np.zeros(BEAT_LEN)
        beat[:length] = (seg - lo) / (hi - lo)
        out_x.append(beat)
        out_y.append(cls)
        out_len.append(length)
    return np.array(out_x), np.array(out_y), np.array(out_len), branches


@pytest.fixture(scope="session")
def bundled() -> tuple[BeatSet, LoadReport]:
    return load_mitbih("bundled")


@pytest.fixture(scope="session")
def rec100(mitdb_dir: Path) -> tuple[BeatSet, LoadReport]:
    return load_mitbih(mitdb_dir, records=[100])


@pytest.fixture(scope="session")
def full(mitdb_dir: Path) -> tuple[BeatSet, LoadReport]:
    # The only load of all 48 records in this file.
    return load_mitbih(mitdb_dir)


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# -------------------------------------------------------------------------------- constants


def test_constants_match_de_chazal_and_aami(mitdb_dir: Path) -> None:
    assert AAMI_CLASSES == ("N", "S", "V", "F", "Q")
    assert dict(AAMI_MAP) == {
        "N": 0, "L": 0, "R": 0, "e": 0, "j": 0, "A": 1, "a": 1, "J": 1, "S": 1,
        "V": 2, "E": 2, "F": 3, "/": 4, "f": 4, "Q": 4,
    }  # fmt: skip
    assert (BEAT_LEN, FS) == (187, 125)
    assert len(DS1) == len(DS2) == 22
    assert not set(DS1) & set(DS2)
    assert not (set(DS1) | set(DS2)) & set(PACED)
    all_records = {int(r) for r in (mitdb_dir / "RECORDS").read_text().split()}
    assert set(DS1) | set(DS2) | set(PACED) == all_records
    assert set(DEFAULT_VAL_RECORDS) <= set(DS1)
    assert BUNDLED_DIR.parts[-4:] == ("nsr_tune", "data", "bundled", "mitdb")


def test_bundled_records_are_byte_identical_copies(mitdb_dir: Path) -> None:
    assert (BUNDLED_DIR / "RECORDS").read_text().split() == [str(r) for r in BUNDLED_RECORDS]
    for rec in BUNDLED_RECORDS:
        for ext in ("hea", "dat", "atr"):
            ours = hashlib.sha256((BUNDLED_DIR / f"{rec}.{ext}").read_bytes()).hexdigest()
            assert ours == hashlib.sha256((mitdb_dir / f"{rec}.{ext}").read_bytes()).hexdigest()
    assert "ODC-By" in (BUNDLED_DIR / "README.md").read_text()


# ------------------------------------------------------------------------------- MIT-BIH beats


def test_record_100_counts_match_its_annotations(rec100: tuple[BeatSet, LoadReport], mitdb_dir: Path) -> None:
    beats, report = rec100
    raw = Counter(wfdb.rdann(str(mitdb_dir / "100"), "atr").symbol)
    assert raw == {"N": 2239, "A": 33, "V": 1, "+": 1}
    # The last two N beats' segments run past the end of the record.
    assert beats.class_counts() == {"N": 2237, "S": 33, "V": 1, "F": 0, "Q": 0}
    assert report.dropped_out_of_record == 2
    assert dict(report.dropped_non_beat) == {"+": 1}
    assert dict(report.unknown_symbols) == {}
    assert report.records == (100,)
    assert dict(report.leads) == {100: "MLII"}
    assert report.notes == ()
    assert len(report.fingerprint) == 64
    assert set(beats.record.tolist()) == {100}


def test_beat_arrays_shape_dtype_range_and_padding(rec100: tuple[BeatSet, LoadReport]) -> None:
    beats, _ = rec100
    n = len(beats)
    assert n == 2271
    assert beats.x.shape == (n, 1, BEAT_LEN) and beats.x.dtype == np.float32
    assert beats.y.dtype == np.int64 and beats.length.dtype == np.int32
    assert beats.record.dtype == np.int32 and beats.amp_mv.dtype == np.float32
    assert beats.x.min() == 0.0 and beats.x.max() <= 1.0
    assert beats.length.min() >= 1 and beats.length.max() <= BEAT_LEN
    after_end = np.arange(BEAT_LEN)[None, :] >= beats.length[:, None]
    assert not beats.x[:, 0, :][after_end].any()
    assert np.isfinite(beats.amp_mv).all() and (beats.amp_mv > 0).all()


@pytest.mark.parametrize("record", [207, 232])
def test_beats_equal_a_beat_by_beat_reference(mitdb_dir: Path, record: int) -> None:
    # 207 has two 10 s windows with a single beat (record median RR); 232 has long pauses, so
    # segments longer than 187 samples and segments that spill into the next window.
    beats, report = load_mitbih(mitdb_dir, records=[record])
    x, y, length, branches = reference_beats(mitdb_dir / str(record), channel=0)
    assert report.dropped_out_of_record == branches["dropped"]
    np.testing.assert_array_equal(beats.y, y)
    np.testing.assert_array_equal(beats.length, length)
    np.testing.assert_allclose(beats.x[:, 0, :], x, atol=2e-7, rtol=0)
    if record == 207:
        assert branches["record_median"] == 2
    else:
        assert branches["truncated"] == (beats.length == BEAT_LEN).sum() > 0
        assert branches["widened"] > 0


def test_record_114_uses_mlii_from_channel_1(mitdb_dir: Path) -> None:
    assert wfdb.rdheader(str(mitdb_dir / "114")).sig_name == ["V5", "MLII"]
    beats, report = load_mitbih(mitdb_dir, records=[114])
    assert dict(report.leads) == {114: "MLII"}
    x_mlii, _, _, _ = reference_beats(mitdb_dir / "114", channel=1)
    np.testing.assert_allclose(beats.x[:, 0, :], x_mlii, atol=2e-7, rtol=0)
    _, report_v5 = load_mitbih(mitdb_dir, records=[114], lead="V5")
    assert dict(report_v5.leads) == {114: "V5"}
    assert report_v5.fingerprint != report.fingerprint


def test_records_without_mlii_use_their_first_lead_with_a_note(
    mitdb_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="nsr_tune.data"):
        beats, report = load_mitbih(mitdb_dir, records=[102])
    assert report.notes == ("record 102 has no MLII; using its first lead V5",)
    assert dict(report.leads) == {102: "V5"}
    assert "record 102 has no MLII" in caplog.text
    assert beats.class_counts()["Q"] == 2083  # paced and fusion-of-paced beats
    _, explicit = load_mitbih(mitdb_dir, records=[102], lead="V2")
    assert explicit.notes == () and dict(explicit.leads) == {102: "V2"}


def test_full_database_counts(full: tuple[BeatSet, LoadReport]) -> None:
    beats, report = full
    assert len(report.records) == 48
    assert beats.class_counts() == {"N": 90582, "S": 2780, "V": 7236, "F": 803, "Q": 8039}
    assert report.dropped_out_of_record == 54
    assert dict(report.dropped_non_beat) == {
        "!": 472, '"': 437, "+": 1291, "[": 6, "]": 6, "x": 193, "|": 132, "~": 616,
    }  # fmt: skip
    assert dict(report.unknown_symbols) == {}
    assert report.notes == (
        "record 102 has no MLII; using its first lead V5",
        "record 104 has no MLII; using its first lead V5",
    )
    assert sum(lead == "MLII" for lead in report.leads.values()) == 46
    splits = make_splits(beats, split="inter")
    assert splits.describe() == {
        "train": {"N": 35670, "S": 737, "V": 3181, "F": 385, "Q": 6},
        "val": {"N": 10173, "S": 206, "V": 607, "F": 30, "Q": 2},
        "test": {"N": 44233, "S": 1837, "V": 3221, "F": 388, "Q": 7},
    }
    parts = {name: set(getattr(splits, name).record.tolist()) for name in ("train", "val", "test")}
    assert parts["train"] == set(DS1) - set(DEFAULT_VAL_RECORDS)
    assert parts["val"] == set(DEFAULT_VAL_RECORDS)
    assert parts["test"] == set(DS2)


# ------------------------------------------------------------------------------------- splits


def test_inter_split_on_bundled_records_is_patient_wise(bundled: tuple[BeatSet, LoadReport]) -> None:
    beats, _ = bundled
    splits = make_splits(beats, split="inter")
    assert splits.split == "inter"
    records = {name: set(getattr(splits, name).record.tolist()) for name in ("train", "val", "test")}
    assert records == {"train": {208, 209}, "val": {223}, "test": {213, 232}}
    assert not records["train"] & records["val"]
    assert not records["train"] & records["test"]
    assert not records["val"] & records["test"]
    assert splits.describe() == {
        "train": {"N": 4205, "S": 385, "V": 993, "F": 373, "Q": 2},
        "val": {"N": 2044, "S": 73, "V": 473, "F": 14, "Q": 0},
        "test": {"N": 3037, "S": 1410, "V": 220, "F": 362, "Q": 0},
    }


def test_inter_split_needs_train_val_and_test_records(rec100: tuple[BeatSet, LoadReport]) -> None:
    with pytest.raises(DataError, match=r"train is empty.*val is empty.*records present: 100"):
        make_splits(rec100[0], split="inter")


def test_intra_split_is_seeded_stratified_and_a_partition(bundled: tuple[BeatSet, LoadReport]) -> None:
    beats, _ = bundled
    # The same beats with amp_mv replaced by a unique id, to check that the parts partition them.
    ids = BeatSet(
        x=beats.x, y=beats.y, length=beats.length, record=beats.record, amp_mv=np.arange(len(beats))
    )
    a = make_splits(ids, split="intra", seed=3)
    b = make_splits(ids, split="intra", seed=3)
    c = make_splits(ids, split="intra", seed=4)
    for name in ("train", "val", "test"):
        assert same_beats(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.test.amp_mv, c.test.amp_mv)
    together = np.concatenate([a.train.amp_mv, a.val.amp_mv, a.test.amp_mv])
    np.testing.assert_array_equal(np.sort(together), np.arange(len(beats)))
    total = beats.class_counts()
    counts = a.describe()
    for cls in AAMI_CLASSES:
        n_test = math.floor(0.2 * total[cls] + 0.5)
        assert counts["test"][cls] == n_test
        assert counts["val"][cls] == math.floor(0.1 * (total[cls] - n_test) + 0.5)
        assert counts["train"][cls] == total[cls] - counts["test"][cls] - counts["val"][cls]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"split": "patient"}, "split"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"test_fraction": float("nan")}, "test_fraction"),
        ({"test_fraction": True}, "test_fraction"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"val_records": (100,)}, "val_records"),
        ({"val_records": ()}, "val_records"),
    ],
)
def test_make_splits_rejects_bad_arguments(
    bundled: tuple[BeatSet, LoadReport], kwargs: dict[str, object], argument: str
) -> None:
    with pytest.raises(ConfigError, match=argument):
        make_splits(bundled[0], **kwargs)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- cache


def test_second_load_hits_the_cache_written_atomically(
    mitdb_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, report = load_mitbih(mitdb_dir, records=[100], cache_dir=cache)
    assert files_in(cache) == [f"beats-{report.fingerprint}.npz"]  # no temp file left behind

    def no_preprocessing(*args: object, **kwargs: object) -> None:
        raise AssertionError("preprocessed again instead of reading the cache")

    monkeypatch.setattr("nsr_tune.data._mitbih._record_beats", no_preprocessing)
    second, report2 = load_mitbih(mitdb_dir, records=[100], cache_dir=cache)
    assert same_beats(first, second)
    assert report2 == report
    # The same bytes in another directory are the same data: a hit, reported at the new place.
    elsewhere = copy_records(mitdb_dir, cache.parent / "copy", (100,))
    third, report3 = load_mitbih(elsewhere, records=[100], cache_dir=cache)
    assert same_beats(first, third)
    assert report3.data_dir == str(elsewhere.resolve()) and report3.fingerprint == report.fingerprint


def test_default_cache_dir_is_used(rec100: tuple[BeatSet, LoadReport]) -> None:
    assert (default_cache_dir() / f"beats-{rec100[1].fingerprint}.npz").is_file()


def test_changed_source_bytes_change_the_fingerprint(mitdb_dir: Path, tmp_path: Path, cache: Path) -> None:
    data = copy_records(mitdb_dir, tmp_path / "data", (100,))
    _, before = load_mitbih(data, cache_dir=cache)
    with (data / "100.dat").open("r+b") as fh:  # one sample near the end, after the last kept beat
        fh.seek(-3, os.SEEK_END)
        byte = fh.read(1)[0]
        fh.seek(-3, os.SEEK_END)
        fh.write(bytes([byte ^ 0x01]))
    _, after = load_mitbih(data, cache_dir=cache)
    assert after.fingerprint != before.fingerprint
    assert len(files_in(cache)) == 2


def test_damaged_cache_file_is_rebuilt_with_a_warning(
    mitdb_dir: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, report = load_mitbih(mitdb_dir, records=[100], cache_dir=cache)
    path = cache / f"beats-{report.fingerprint}.npz"
    path.write_bytes(path.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        second, _ = load_mitbih(mitdb_dir, records=[100], cache_dir=cache)
    assert "damaged beat cache" in caplog.text and path.name in caplog.text
    assert same_beats(first, second)
    with np.load(path) as npz:  # rebuilt whole
        assert npz["x"].shape == first.x.shape


def test_failed_cache_write_leaves_nothing(
    mitdb_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(file: object, *args: object, **kwargs: object) -> None:
        file.write(b"PK partial")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(DataError, match=r"cannot write the beat cache.*No space left"):
        load_mitbih(mitdb_dir, records=[100], cache_dir=cache)
    assert files_in(cache) == []


# ------------------------------------------------------------------------------------- errors

Damage = Callable[[Path], None]


def _truncate(name: str, size: int) -> Damage:
    def damage(d: Path) -> None:
        with (d / name).open("r+b") as fh:
            fh.truncate(size)

    return damage


def _write(name: str, text: str) -> Damage:
    return lambda d: (d / name).write_text(text)


def _invalid_samples(d: Path) -> None:
    # -2048 is format 212's "no sample" value; put it in MLII (first of each 3-byte pair) of 10 frames.
    data = bytearray((d / "100.dat").read_bytes())
    for frame in range(5000, 5010):
        data[3 * frame] = 0x00
        data[3 * frame + 1] = (data[3 * frame + 1] & 0xF0) | 0x08
    (d / "100.dat").write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "100.dat").unlink(), r"100\.dat: signal file of record 100 is missing"),
        (lambda d: (d / "100.atr").unlink(), r"100\.atr: annotation file of record 100 is missing"),
        (lambda d: (d / "100.hea").unlink(), r"100\.hea: header file of record 100 is missing"),
        (_truncate("100.dat", 1_000_000), r"100\.dat: truncated: 1000000 bytes.*1950000 bytes"),
        (_truncate("100.dat", 1_949_999), r"100\.dat: truncated: 1949999 bytes"),
        (_truncate("100.atr", 101), r"100\.atr: cannot read the annotations of record 100"),
        (_write("100.hea", "this is not a header\n"), r"100\.hea: cannot parse the header of record 100"),
        (_write("100.hea", ""), r"100\.hea: cannot parse the header of record 100"),
        (_invalid_samples, r"100\.dat: lead MLII of record 100 has 10 invalid .*first at sample 5000,"),
        (_write("RECORDS", "\n"), r"RECORDS: the record list is empty"),
        (_write("RECORDS", "100\nx_1\n"), r"RECORDS: record names must be MIT-BIH record numbers.*x_1"),
    ],
    ids=[
        "missing-dat", "missing-atr", "missing-hea", "truncated-dat", "truncated-dat-by-1",
        "truncated-atr", "garbage-hea", "empty-hea", "invalid-samples", "empty-RECORDS", "bad-RECORDS",
    ],
)  # fmt: skip
def test_damaged_record_raises_data_error_and_caches_nothing(
    mitdb_dir: Path, tmp_path: Path, cache: Path, damage: Damage, message: str
) -> None:
    data = copy_records(mitdb_dir, tmp_path / "data", (100,))
    damage(data)
    with pytest.raises(DataError, match=message) as info:
        load_mitbih(data, cache_dir=cache)
    assert str(data) in str(info.value)
    assert files_in(cache) == []


def test_missing_lead_names_the_record_and_its_leads(mitdb_dir: Path, cache: Path) -> None:
    with pytest.raises(DataError, match=r"100\.hea: record 100 has no lead 'V2'; its leads are MLII, V5"):
        load_mitbih(mitdb_dir, records=[100], lead="V2", cache_dir=cache)
    assert files_in(cache) == []


def test_missing_and_empty_directories(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere .*does not exist.*nsr-tune data download.*-dir bundled"):
        load_mitbih(tmp_path / "nowhere", cache_dir=cache)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no MIT-BIH records here"):
        load_mitbih(tmp_path / "empty", cache_dir=cache)
    assert files_in(cache) == []


def test_records_are_listed_from_headers_without_a_records_file(mitdb_dir: Path, tmp_path: Path) -> None:
    data = copy_records(mitdb_dir, tmp_path / "data", (100, 101), listing=False)
    _, report = load_mitbih(data)
    assert report.records == (100, 101)


def test_unknown_record_is_a_data_error(mitdb_dir: Path, cache: Path) -> None:
    with pytest.raises(DataError, match=r"mitdb: no record 999 in this directory"):
        load_mitbih(mitdb_dir, records=[100, 999], cache_dir=cache)
    assert files_in(cache) == []


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"records": "100"}, "records"),
        ({"records": [100, 100]}, "records"),
        ({"records": [True]}, "records"),
        ({"records": []}, "records"),
        ({"lead": ""}, "lead"),
        ({"progress": "yes"}, "progress"),
    ],
)
def test_load_mitbih_rejects_bad_arguments(mitdb_dir: Path, kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(ConfigError, match=argument):
        load_mitbih(mitdb_dir, **kwargs)  # type: ignore[arg-type]


def test_unknown_symbols_are_counted_and_warned(
    mitdb_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = copy_records(mitdb_dir, tmp_path / "data", (100,))
    ann = wfdb.rdann(str(data / "100"), "atr")
    symbols = list(ann.symbol)
    assert symbols[5:7] == ["N", "N"]
    symbols[5] = "r"  # a WFDB beat code (R-on-T PVC) outside the AAMI map
    symbols[6] = "Z"  # no WFDB code at all, declared as a custom label
    custom = pd.DataFrame({"label_store": [42], "symbol": ["Z"], "description": ["made up"]})
    wfdb.wrann("100", "atr", ann.sample, symbol=symbols, subtype=ann.subtype, chan=ann.chan, num=ann.num,
               aux_note=ann.aux_note, fs=360, custom_labels=custom, write_dir=str(data))  # fmt: skip
    with caplog.at_level(logging.WARNING):
        beats, report = load_mitbih(data)
    assert dict(report.unknown_symbols) == {"Z": 1, "r": 1}
    assert beats.class_counts() == {"N": 2235, "S": 33, "V": 1, "F": 0, "Q": 0}
    assert "record 100" in caplog.text and "'r': 1" in caplog.text


# --------------------------------------------------------------------------------------- Kaggle


@pytest.mark.parametrize("name", ["mitbih_train_sample.csv", "mitbih_test_sample.csv"])
def test_kaggle_csv(kaggle_dir: Path, name: str) -> None:
    beats = load_kaggle_csv(kaggle_dir / name)
    assert len(beats) == 500
    assert beats.class_counts() == dict.fromkeys(AAMI_CLASSES, 100)
    assert beats.x.shape == (500, 1, BEAT_LEN) and beats.x.dtype == np.float32
    assert (beats.record == -1).all() and np.isnan(beats.amp_mv).all()
    raw = np.loadtxt(kaggle_dir / name, delimiter=",")
    np.testing.assert_array_equal(beats.x[:, 0, :], raw[:, :BEAT_LEN].astype(np.float32))
    for i in (0, 137, 499):
        assert beats.length[i] == np.flatnonzero(raw[i, :BEAT_LEN])[-1] + 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "has no rows"),
        ("1,2,3\n", "expected 188 columns"),
        ("a,b\n", "not a Kaggle heartbeat CSV"),
        (",".join(["0.5"] * 187) + ",7\n", "row 1 has label 7"),
        (",".join(["1.5"] * 187) + ",0\n", r"row 1 has values outside \[0, 1\]"),
    ],
)
def test_kaggle_csv_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        load_kaggle_csv(path)
    assert "bad.csv" in str(info.value)
    with pytest.raises(DataError, match=r"missing\.csv: Kaggle heartbeat CSV not found"):
        load_kaggle_csv(tmp_path / "missing.csv")


def test_kaggle_rows_cannot_make_an_inter_split(kaggle_dir: Path) -> None:
    beats = load_kaggle_csv(kaggle_dir / "mitbih_test_sample.csv")
    with pytest.raises(DataError, match="Kaggle rows have no record"):
        make_splits(beats, split="inter")
    assert make_splits(beats, split="intra").describe()["test"] == dict.fromkeys(AAMI_CLASSES, 20)


# ------------------------------------------------------------------------------------ summary


def test_summarize_bundled(bundled: tuple[BeatSet, LoadReport]) -> None:
    beats, report = bundled
    summary = json.loads(json.dumps(summarize(beats, report)))
    assert summary["records"] == list(BUNDLED_RECORDS) and summary["n_records"] == 5
    assert summary["classes"] == list(AAMI_CLASSES)
    assert summary["all"] == {"N": 9286, "S": 1868, "V": 1686, "F": 749, "Q": 2}
    assert all(summary["all"][c] > 0 for c in AAMI_CLASSES)
    assert summary["dropped"]["out_of_record"] == report.dropped_out_of_record == 5
    assert summary["splits"]["inter"] == make_splits(beats, split="inter").describe()
    assert summary["splits"]["intra"] == make_splits(beats, split="intra").describe()
    assert summary["data_dir"] == str(BUNDLED_DIR)


def test_summarize_reports_a_split_that_cannot_be_made(rec100: tuple[BeatSet, LoadReport]) -> None:
    summary = summarize(*rec100)
    assert set(summary["splits"]["inter"]) == {"error"}
    assert "inter split cannot be made" in summary["splits"]["inter"]["error"]
    # round(0.2 x count) per class: N 2237 -> 447, S 33 -> 7, V 1 -> 0.
    assert summary["splits"]["intra"]["test"] == {"N": 447, "S": 7, "V": 0, "F": 0, "Q": 0}


# ------------------------------------------------------------------------------- BeatSet


def test_beatset_subset_and_counts(rec100: tuple[BeatSet, LoadReport]) -> None:
    beats, _ = rec100
    s_beats = beats.subset(beats.y == 1)
    assert len(s_beats) == 33 and s_beats.class_counts() == {"N": 0, "S": 33, "V": 0, "F": 0, "Q": 0}
    first = beats.subset(np.array([0, 2]))
    np.testing.assert_array_equal(first.x, beats.x[[0, 2]])
    assert len(beats.subset(np.array([], dtype=np.int64))) == 0
    with pytest.raises(ValueError, match="shape"):
        BeatSet(x=np.zeros((2, 2, 9)), y=np.zeros(2), length=np.ones(2), record=np.ones(2), amp_mv=np.ones(2))


# ------------------------------------------------------------------------- data dir, download


def test_resolve_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_data_dir("bundled") == BUNDLED_DIR
    assert resolve_data_dir(tmp_path) == tmp_path.resolve()
    monkeypatch.setenv("NSR_TUNE_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path.resolve() and default_data_dir() == tmp_path
    monkeypatch.delenv("NSR_TUNE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "nsr-tune" / "mitdb"
    with pytest.raises(DataError, match=r"xdg/nsr-tune/mitdb .*does not exist.*nsr-tune data download"):
        resolve_data_dir(None)
    (tmp_path / "xdg" / "nsr-tune" / "mitdb").mkdir(parents=True)
    assert resolve_data_dir(None) == (tmp_path / "xdg" / "nsr-tune" / "mitdb").resolve()
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match=r"file .*is not a directory"):
        resolve_data_dir(tmp_path / "file")
    with pytest.raises(ConfigError, match="data_dir"):
        resolve_data_dir(3)  # type: ignore[arg-type]


def test_default_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSR_TUNE_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NSR_TUNE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "nsr-tune" / "beats"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "nsr-tune" / "beats"


def test_download_failure_says_physionet_could_not_be_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No network here: simulate what requests raises when physionet.org cannot be resolved.
    def unreachable(db: str, dest: str) -> None:
        raise requests.ConnectionError("Failed to resolve 'physionet.org'")

    monkeypatch.setattr(wfdb, "dl_database", unreachable)
    with pytest.raises(
        DataError, match=r"PhysioNet could not be reached.*https://physionet\.org/content/mitdb/"
    ):
        download_mitdb(tmp_path / "mitdb")


def test_download_skips_a_directory_that_already_holds_the_exact_release(
    mitdb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_fetch(db: str, dest: str) -> None:
        raise AssertionError("PhysioNet was contacted although the data was complete")

    monkeypatch.setattr(wfdb, "dl_database", must_not_fetch)
    dest = tmp_path / "mitdb"
    dest.mkdir()
    for f in mitdb_dir.iterdir():
        (dest / f.name).symlink_to(f)
    assert mitdb_checksum_problems(dest) == []
    assert download_mitdb(dest) == dest


def test_download_is_checked_against_physionets_sums(
    mitdb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A "download" that leaves one record out and corrupts another must not pass as MIT-BIH.
    def partial(db: str, dest: str) -> None:
        for f in mitdb_dir.glob("[0-9][0-9][0-9].*"):
            if not f.name.startswith("232."):
                (Path(dest) / f.name).write_bytes(f.read_bytes())
        with (Path(dest) / "100.dat").open("r+b") as fh:
            fh.write(b"\0")

    monkeypatch.setattr(wfdb, "dl_database", partial)
    with pytest.raises(DataError, match=r"not match PhysioNet.s MIT-BIH 1\.0\.0 \(100\.dat: SHA-256 differs"):
        download_mitdb(tmp_path / "mitdb")
    assert mitdb_checksum_problems(tmp_path / "mitdb") == [
        "100.dat: SHA-256 differs from PhysioNet's",
        "232.atr: missing",
        "232.dat: missing",
        "232.hea: missing",
    ]
