"""CPSC2018 records as stored (12 leads, 500 Hz, 6-60 s): the 150 real records in ../shared/data."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from nsr_tune.cli import main
from nsr_tune.data import ALL_LEADS, CPSC_CLASSES, PAPER_LEADS, load_cpsc2018
from nsr_tune.errors import DataError
from tests.conftest import SHARED_DATA

CPSC = SHARED_DATA / "cpsc2018"
# ../shared/data/README.md: RBBB 28, Normal 20, AF 20, STD 19, PVC 18, STE 13, PAC 13, LBBB 8,
# I-AVB 7, and 4 records labelled AF and RBBB.
SINGLE = {
    "Normal": 20,
    "AF": 20,
    "I-AVB": 7,
    "LBBB": 8,
    "RBBB": 28,
    "PAC": 13,
    "PVC": 18,
    "STD": 19,
    "STE": 13,
}


@pytest.fixture(scope="module")
def records():
    if not (CPSC / "A0001.hea").is_file():
        pytest.fail(f"the real CPSC2018 records are missing: expected {CPSC} (set NSR_TUNE_SHARED_DATA)")
    return load_cpsc2018(CPSC)


def test_the_shared_records_are_read_with_their_labels(records):
    recs, report = records
    assert report.n_read == 150 and len(recs) == 146
    assert report.dropped_multi_label == ("A0043", "A0079", "A0109", "A0112")
    assert recs.class_counts() == SINGLE
    assert recs.leads == PAPER_LEADS and recs.fs == 500
    assert recs.digital.dtype == np.int16 and recs.digital.shape == (8, int(recs.lengths.sum()))
    assert recs.lengths.min() >= 3000 and recs.lengths.max() <= 30_720
    assert list(np.bincount(recs.y(), minlength=9)) == [SINGLE[c] for c in CPSC_CLASSES]


def test_several_labels_and_all_twelve_leads_on_request():
    recs, report = load_cpsc2018(CPSC, leads=ALL_LEADS, multi_label=True)
    assert len(recs) == 150 and report.dropped_multi_label == ()
    assert recs.class_counts() == {**SINGLE, "AF": 24, "RBBB": 32}
    assert recs.digital.shape[0] == 12
    with pytest.raises(DataError, match="have \\[1, 2\\] labels, not one each"):
        recs.y()


def test_a_batch_is_max_abs_scaled_padded_and_masked(records):
    recs, _ = records
    idx = [0, 5, 9]
    x, mask = recs.batch(idx)
    lengths = recs.lengths[idx]
    assert x.shape == (3, 8, lengths.max()) and mask.shape == (3, lengths.max())
    assert mask.sum(axis=1).tolist() == lengths.tolist()
    for b, r in enumerate(idx):
        start = recs.offsets[r]
        real = recs.digital[:, start : start + lengths[b]]
        np.testing.assert_array_equal(x[b, :, : lengths[b]], real / recs.scale[r])
        assert np.abs(x[b]).max() == 1.0  # per-record max-abs scaling
        assert not x[b, :, lengths[b] :].any()  # zero padding after the record


def test_records_longer_than_the_limit_are_truncated(records):
    recs, _ = records
    cut, report = load_cpsc2018(CPSC, max_len=6000)
    assert report.truncated == int((recs.lengths > 6000).sum()) > 0
    assert cut.lengths.max() == 6000


def _copy(tmp_path, name="A0002"):
    folder = tmp_path / "cpsc"
    folder.mkdir(exist_ok=True)
    for ext in ("hea", "mat"):
        shutil.copy(CPSC / f"{name}.{ext}", folder)
    return folder, folder / f"{name}.hea", folder / f"{name}.mat"


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_snomed_ct_codes_are_read_as_the_challenge_writes_them(tmp_path):
    folder, hea, _ = _copy(tmp_path, "A0001")  # #Dx: RBBB
    _edit(hea, "#Dx: RBBB", "#Dx: 59118001")
    recs, _ = load_cpsc2018(folder)
    assert recs.class_counts()["RBBB"] == 1 and recs.names == ("A0001",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no_label", "A0002: no label (its header has no #Dx line with a class)"),
        ("unknown_label", "A0002: unknown label 'XYZ' in its #Dx line"),
        ("missing_lead", "A0002: lead(s) ['V6'] missing"),
        ("truncated", "A0002: the header says 5000 samples of 12 leads, its A0002.mat holds 2499"),
        ("longer_header", "A0002: the header says 6000 samples of 12 leads, its A0002.mat holds 5000"),
    ],
)
def test_a_bad_record_is_named_in_one_line(tmp_path, change, message):
    folder, hea, mat = _copy(tmp_path)
    dx = next(line for line in hea.read_text().splitlines() if line.startswith("#Dx"))
    if change == "no_label":
        _edit(hea, dx + "\n", "")
    elif change == "unknown_label":
        _edit(hea, dx, "#Dx: XYZ")
    elif change == "missing_lead":
        _edit(hea, " V6\n", " V7\n")
    elif change == "truncated":
        with open(mat, "r+b") as f:
            f.truncate(os.path.getsize(mat) // 2)
    else:
        _edit(hea, "A0002 12 500 5000", "A0002 12 500 6000")
    with pytest.raises(DataError) as e:
        load_cpsc2018(folder)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_settings_are_checked_before_any_record_is_read(tmp_path):
    with pytest.raises(DataError, match="leads: unknown lead"):
        load_cpsc2018(CPSC, leads=("I", "V7"))
    with pytest.raises(DataError, match="holds no CPSC2018 records"):
        load_cpsc2018(tmp_path)


def test_data_summary_of_cpsc2018(capsys):
    assert main(["data", "summary", "--dataset", "cpsc2018", "--data-dir", str(CPSC), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_records"] == 146 and summary["classes"] == SINGLE
    assert summary["leads"] == list(PAPER_LEADS) and summary["dropped_multi_label"] == [
        "A0043",
        "A0079",
        "A0109",
        "A0112",
    ]
    assert main(["data", "summary", "--dataset", "cpsc2018"]) == 2
    assert "--data-dir: give the CPSC2018 directory" in capsys.readouterr().err


def test_the_split_takes_fixed_records_per_class_seeded(records):
    from nsr_tune.data import cpsc_splits

    recs, _ = records
    parts = cpsc_splits(recs, val_per_class=1, test_per_class=3, seed=0)
    y = recs.y()
    assert [int((y[parts["test"]] == c).sum()) for c in range(9)] == [3] * 9
    assert [int((y[parts["val"]] == c).sum()) for c in range(9)] == [1] * 9
    assert len(parts["train"]) == 146 - 36
    together = np.concatenate(list(parts.values()))
    assert sorted(together.tolist()) == list(range(146))  # disjoint, and every record placed
    again = cpsc_splits(recs, val_per_class=1, test_per_class=3, seed=0)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = cpsc_splits(recs, val_per_class=1, test_per_class=3, seed=1)
    assert not np.array_equal(parts["test"], other["test"])


def test_the_paper_split_sizes_are_refused_on_150_records_with_the_reason(records):
    from nsr_tune.data import cpsc_splits

    with pytest.raises(DataError) as e:
        cpsc_splits(records[0])  # 5 validation and 50 test records per class
    assert str(e.value).startswith("Normal: 20 records, too few for 50 test and 5 validation records")


def test_resampling_to_250_hz_halves_each_record_and_scales_it_again(records):
    from nsr_tune.data._cpsc import resample

    recs, _ = records
    low = resample(recs, 250)
    assert low.fs == 250 and len(low) == len(recs)
    assert (low.lengths == (recs.lengths + 1) // 2).all()
    x, mask = low.batch([0, 1])
    assert np.abs(x).max(axis=(1, 2)).tolist() == [1.0, 1.0]
    assert mask.sum(axis=1).tolist() == low.lengths[:2].tolist()
    with pytest.raises(DataError, match=r"fs: must be a whole number of Hz in 1\.\.500"):
        resample(recs, 1000)
