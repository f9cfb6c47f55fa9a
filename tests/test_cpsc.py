"""CPSC2018 records as stored (12 leads, 500 Hz, 6-60 s): the 150 real records in ../shared/data."""

from __future__ import annotations

import dataclasses
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
    assert list(np.bincount(recs.y, minlength=9)) == [SINGLE[c] for c in CPSC_CLASSES]


def test_several_labels_and_all_twelve_leads_on_request():
    recs, report = load_cpsc2018(CPSC, leads=ALL_LEADS, multi_label=True)
    assert len(recs) == 150 and report.dropped_multi_label == ()
    assert recs.class_counts() == {**SINGLE, "AF": 24, "RBBB": 32}
    assert recs.digital.shape[0] == 12
    assert recs.multi_label and (recs.targets.sum(axis=1) >= 1).all()
    assert (recs.y == recs.labels.argmax(axis=1)).all()  # a record's first label, for stratifying
    with pytest.raises(DataError, match="have \\[1, 2\\] labels, not one each"):
        _ = dataclasses.replace(recs, multi_label=False).y


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
    assert summary["classes_single_label"] == SINGLE
    assert summary["classes_multi_label"] == {c: 4 if c in ("AF", "RBBB") else 0 for c in CPSC_CLASSES}
    assert summary["several_labels"]["A0043"] == ["AF", "RBBB"] and summary["peak_rss_mb"] > 0
    assert summary["seconds"]["min"] <= summary["seconds"]["median"] <= summary["seconds"]["max"]
    assert main(["data", "summary", "--dataset", "cpsc2018"]) == 2
    assert "--data-dir: give the CPSC2018 directory" in capsys.readouterr().err


def test_the_split_takes_fixed_records_per_class_seeded(records):
    from nsr_tune.data import cpsc_splits

    recs, _ = records
    parts = cpsc_splits(recs, val_per_class=1, test_per_class=3, seed=0)
    y = recs.y
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


# The original CPSC2018 release layout (AXXXX.mat with an ECG struct + REFERENCE.csv), built from
# the real shared records: each one's physical signal in millivolts, as wfdb reads it, in the
# struct the original release uses, and its labels as REFERENCE.csv numbers them.
ORIGINAL = ("A0001", "A0002", "A0003", "A0004", "A0005", "A0043")  # A0043: AF and RBBB


def _ecg_struct(name):
    import wfdb

    record = wfdb.rdrecord(str(CPSC / name))
    assert tuple(record.sig_name) == ALL_LEADS and record.fs == 500
    info = dict(c.split(": ", 1) for c in record.comments if ": " in c)
    age = float(info["Age"]) if info.get("Age", "").isdigit() else float("nan")
    return {"sex": info.get("Sex", ""), "age": age, "data": record.p_signal.T}, record.comments


def _reference_row(name, comments):
    from nsr_tune.data._cpsc import _dx

    numbers = [str(CPSC_CLASSES.index(c) + 1) for c in _dx(comments, name)]
    return ",".join([name, *numbers, *[""] * (3 - len(numbers))])


@pytest.fixture(scope="module")
def two_layouts(tmp_path_factory):
    """The same real records in PhysioNet's layout and in the original release's layout."""
    import scipy.io

    from nsr_tune.data._cpsc_original import REFERENCE_HEADER

    physionet = tmp_path_factory.mktemp("physionet-layout")
    original = tmp_path_factory.mktemp("original-layout")
    rows = [",".join(REFERENCE_HEADER)]
    for name in ORIGINAL:
        for ext in ("hea", "mat"):
            shutil.copy(CPSC / f"{name}.{ext}", physionet)
        ecg, comments = _ecg_struct(name)
        scipy.io.savemat(original / f"{name}.mat", {"ECG": ecg})
        rows.append(_reference_row(name, comments))
    (original / "REFERENCE.csv").write_text("\n".join(rows) + "\n")
    return physionet, original


@pytest.mark.parametrize(
    "settings",
    [{}, {"leads": ALL_LEADS, "max_len": 6000, "multi_label": True}],
    ids=["paper-defaults", "12-leads-truncated-multi-label"],
)
def test_the_original_release_reads_as_physionets_copy(two_layouts, settings):
    from nsr_tune.data._cpsc_original import load_cpsc2018_original

    physionet, original = two_layouts
    expected, expected_report = load_cpsc2018(physionet, **settings)
    for load in (load_cpsc2018, load_cpsc2018_original):  # the first finds the layout itself
        got, report = load(original, **settings)
        for field in ("digital", "offsets", "scale", "gain", "labels"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field), err_msg=field)
        assert got.digital.dtype == np.int16 and got.names == expected.names
        assert (got.leads, got.fs) == (expected.leads, expected.fs)
        assert (report.n_read, report.dropped_multi_label, report.truncated) == (
            expected_report.n_read,
            expected_report.dropped_multi_label,
            expected_report.truncated,
        )
        assert report.data_dir == str(original)
    if settings:
        assert expected_report.truncated > 0 and len(got) == len(ORIGINAL)
    else:
        assert report.dropped_multi_label == ("A0043",) and len(got) == len(ORIGINAL) - 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no_row", "A0003: A0003.mat has no row in REFERENCE.csv"),
        ("label_10", "A0003: label '10' in REFERENCE.csv (line 4) is not one of 1..9"),
        ("label_0", "A0003: label '0' in REFERENCE.csv (line 4) is not one of 1..9"),
        ("no_label", "A0003: no label in REFERENCE.csv (line 4)"),
        ("no_mat", "A0003: listed in REFERENCE.csv, but A0003.mat is missing"),
        ("no_ecg_struct", "A0003: A0003.mat holds no ECG struct with a data field (it holds val)"),
        ("eleven_leads", "A0003: ECG.data in A0003.mat has shape (11, 5000), expected 12 leads x samples"),
        ("transposed", "A0003: ECG.data in A0003.mat has shape (5000, 12), expected 12 leads x samples"),
        ("truncated", "A0003: A0003.mat cannot be read, truncated or not a MATLAB file"),
        ("not_matlab", "A0003: A0003.mat cannot be read, truncated or not a MATLAB file"),
    ],
)
def test_a_bad_original_record_is_named_in_one_line(two_layouts, tmp_path, change, message):
    import scipy.io

    folder = shutil.copytree(two_layouts[1], tmp_path / "original")
    reference, mat = folder / "REFERENCE.csv", folder / "A0003.mat"
    row = next(line for line in reference.read_text().splitlines() if line.startswith("A0003,"))
    data = scipy.io.loadmat(mat)["ECG"][0, 0]["data"]  # the real record, as the fixture wrote it
    if change == "no_row":
        _edit(reference, row + "\n", "")
    elif change in ("label_10", "label_0", "no_label"):
        labels = {"label_10": "10,,", "label_0": "0,,", "no_label": ",,"}[change]
        _edit(reference, row, f"A0003,{labels}")
    elif change == "no_mat":
        mat.unlink()
    elif change == "no_ecg_struct":
        scipy.io.savemat(mat, {"val": data})
    elif change == "eleven_leads":
        scipy.io.savemat(mat, {"ECG": {"sex": "Female", "age": 0.0, "data": data[:11]}})
    elif change == "transposed":
        scipy.io.savemat(mat, {"ECG": {"sex": "Female", "age": 0.0, "data": data.T}})
    elif change == "truncated":
        with open(mat, "r+b") as f:
            f.truncate(os.path.getsize(mat) // 2)
    else:
        mat.write_text("Recording,First_label\n")
    with pytest.raises(DataError) as e:
        load_cpsc2018(folder)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_directory_in_neither_layout_says_what_both_look_like(two_layouts, tmp_path):
    for mat in two_layouts[1].glob("*.mat"):  # .mat files without REFERENCE.csv
        shutil.copy(mat, tmp_path)
    with pytest.raises(DataError) as e:
        load_cpsc2018(tmp_path)
    assert "holds no CPSC2018 records" in str(e.value)
    assert "AXXXX.hea + AXXXX.mat" in str(e.value) and "AXXXX.mat + REFERENCE.csv" in str(e.value)


# `data download --dataset cpsc2018`: the network cannot be reached here, so the one function that
# fetches is replaced where needed by a copy of the real shared records, laid out as the download
# leaves them (records side by side, a RECORDS file). The SHA256SUMS.txt these tests write stands
# in for PhysioNet's: the sums of those copies, in PhysioNet's format and paths.
def _as_downloaded(folder, names, *, sums=True):
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        for ext in ("hea", "mat"):
            shutil.copy(CPSC / f"{name}.{ext}", folder)
    (folder / "RECORDS").write_text("".join(f"{name}\n" for name in names))
    if sums:
        files = [f"{n}.{ext}" for n in names for ext in ("hea", "mat")]
        lines = [
            f"{hashlib.sha256((folder / f).read_bytes()).hexdigest()}  training/cpsc_2018/g1/{f}"
            for f in files
        ]
        (folder / "SHA256SUMS.txt").write_text("\n".join(["0" * 64 + "  RECORDS", *lines]) + "\n")
    return folder


def _no_fetch(path, **_):
    raise AssertionError(f"the download fetched into {path}")


def test_the_download_check_accepts_the_shared_records(tmp_path):
    from nsr_tune.data._download import cpsc2018_problems

    names = sorted(p.stem for p in CPSC.glob("*.hea"))
    folder = _as_downloaded(tmp_path / "cpsc", names, sums=False)
    assert len(names) == 150 and cpsc2018_problems(folder) == []
    _as_downloaded(folder, names)  # now with the sums
    assert cpsc2018_problems(folder) == []
    records, report = load_cpsc2018(folder)  # readable as it is
    assert report.n_read == 150 and len(records) == 146


def test_the_download_check_names_each_incomplete_record(tmp_path):
    from nsr_tune.data._download import cpsc2018_problems

    folder = _as_downloaded(tmp_path / "cpsc", [f"A{i:04d}" for i in range(1, 11)])
    (folder / "A0007.mat").unlink()
    with open(folder / "A0008.mat", "r+b") as f:
        f.truncate(os.path.getsize(folder / "A0008.mat") - 24)
    data = bytearray((folder / "A0009.mat").read_bytes())
    data[-1] ^= 1  # one bit of one sample: only the SHA-256 can tell
    (folder / "A0009.mat").write_bytes(bytes(data))
    (folder / "A0010.hea").unlink()
    problems = cpsc2018_problems(folder)
    assert problems[0] == "A0007: A0007.mat missing"
    assert problems[1].startswith("A0008: the header says")
    assert problems[2:] == ["A0009.mat: SHA-256 differs from PhysioNet's", "A0010: A0010.hea missing"]
    (folder / "RECORDS").unlink()
    assert cpsc2018_problems(folder)[0].startswith("RECORDS: missing")


def test_download_cpsc2018_refuses_a_dest_that_is_a_file(tmp_path, monkeypatch, capsys):
    from nsr_tune.data import download_cpsc2018

    monkeypatch.setattr("nsr_tune.data._download._fetch_cpsc2018", _no_fetch)
    dest = tmp_path / "cpsc"
    dest.write_text("not a directory")
    with pytest.raises(DataError, match=f"--dest: {dest} is a file, not a directory"):
        download_cpsc2018(dest)
    assert main(["data", "download", "--dataset", "cpsc2018", "--dest", str(dest)]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_data_download_cpsc2018_checks_what_it_fetched(tmp_path, monkeypatch, capsys):
    from nsr_tune.data import default_cpsc_dir, download_cpsc2018

    names = [f"A{i:04d}" for i in range(1, 6)]
    monkeypatch.setattr(
        "nsr_tune.data._download._fetch_cpsc2018", lambda path, **_: _as_downloaded(path, names) and None
    )
    dest = tmp_path / "new" / "cpsc"
    assert main(["data", "download", "--dataset", "cpsc2018", "--dest", str(dest)]) == 0
    assert f"CPSC2018 ready in {dest}" in capsys.readouterr().out
    assert load_cpsc2018(dest)[1].n_read == 5
    # Complete, every file with its sum: nothing is fetched again.
    monkeypatch.setattr("nsr_tune.data._download._fetch_cpsc2018", _no_fetch)
    assert download_cpsc2018(dest) == dest
    # A fetch that left a record incomplete is named.
    (dest / "A0004.mat").unlink()
    monkeypatch.setattr("nsr_tune.data._download._fetch_cpsc2018", lambda path, **_: None)
    with pytest.raises(DataError) as e:
        download_cpsc2018(dest)
    assert "is not PhysioNet's CPSC2018 (A0004: A0004.mat missing)" in str(e.value)
    assert "\n" not in str(e.value)
    monkeypatch.setenv("NSR_TUNE_CPSC2018", str(dest))
    assert default_cpsc_dir() == dest


def test_the_fetch_reads_physionets_layout_from_a_local_server(tmp_path, monkeypatch):
    """The fetch itself, against a server on this machine that serves real shared records in
    PhysioNet's layout: a project RECORDS naming the group folders, a RECORDS per group, and
    SHA256SUMS.txt. Only the address is changed; no network is needed."""
    import functools
    import hashlib
    import http.server
    import threading

    from nsr_tune.data import download_cpsc2018

    site = tmp_path / "site"
    groups = {"g1": ["A0001", "A0002", "A0003"], "g2": ["A0004", "A0005"]}
    for group, names in groups.items():
        _as_downloaded(site / "training" / "cpsc_2018" / group, names, sums=False)
    (site / "RECORDS").write_text(
        "".join(f"training/cpsc_2018/{g}/\n" for g in groups) + "training/georgia/g1/\n"
    )
    files = sorted(p for p in site.rglob("*") if p.is_file())
    (site / "SHA256SUMS.txt").write_text(
        "".join(
            f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(site).as_posix()}\n" for p in files
        )
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(
            "nsr_tune.data._download._CPSC_FILES", f"http://127.0.0.1:{server.server_address[1]}/"
        )
        dest = download_cpsc2018(tmp_path / "cpsc")
        assert (dest / "RECORDS").read_text().split() == groups["g1"] + groups["g2"]
        records, report = load_cpsc2018(dest)
        assert report.n_read == 5 and records.names == ("A0001", "A0002", "A0003", "A0004", "A0005")
        (dest / "A0004.mat").unlink()  # an interrupted download is completed when run again
        assert download_cpsc2018(dest) == dest and (dest / "A0004.mat").is_file()
    finally:
        server.shutdown()
        server.server_close()
