"""Datasets read from a path: `csv:PATH` (the Kaggle heartbeat CSV, or a CSV with a header) and
`wfdb:DIR` (any WFDB database with beat annotations), on real data: the Kaggle sample and the
MIT-BIH records in ../shared/data, and the records bundled with the package. `wfdb:` must give
exactly the built-in MIT-BIH loader's beats."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import nsr_tune.data._mitbih as mitbih_module
from nsr_tune.config import DataConfig, EvalConfig, ModelConfig, OptimConfig, TrialConfig
from nsr_tune.data import (
    AAMI_CLASSES,
    BUNDLED_DIR,
    DATASETS,
    BeatSet,
    check_data,
    dataset_spec,
    input_shape,
    load_csv,
    load_dataset,
    load_kaggle_csv,
    load_mitbih,
    load_wfdb,
    make_splits,
)
from nsr_tune.errors import ConfigError, DataError
from nsr_tune.trial import check_trial, run_trial

MITBIH_MODELS = ("cnn", "mlp", "resnet1d", "transformer")
# 100: MLII on channel 0; 102: no MLII (its first lead, V5); 114: MLII on channel 1; 207: flutter.
SHARED_RECORDS = (100, 102, 114, 207)


def _same_beats(a: BeatSet, b: BeatSet) -> None:
    """Equal counts and arrays, exactly: max abs difference 0."""
    assert len(a) == len(b) > 0
    for name in ("x", "y", "length", "record", "amp_mv"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=name == "amp_mv"), name
    assert float(np.abs(a.x - b.x).max()) == 0.0


def _refused(error: type[Exception], message: str, call, *args, **kwargs) -> None:
    with pytest.raises(error) as caught:
        call(*args, **kwargs)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def kaggle_csv(kaggle_dir: Path) -> Path:
    return kaggle_dir / "mitbih_train_sample.csv"


@pytest.fixture(scope="module")
def bundled() -> BeatSet:
    return load_mitbih(BUNDLED_DIR)[0]


@pytest.fixture(scope="module")
def some_beats(bundled: BeatSet) -> BeatSet:
    """At most 40 beats of each class of each bundled record, in record order."""
    rng = np.random.default_rng(0)
    keep = [
        rng.permutation(idx)[:40]
        for r in np.unique(bundled.record)
        for c in range(len(AAMI_CLASSES))
        if (idx := np.flatnonzero((bundled.record == r) & (bundled.y == c))).size
    ]
    return bundled.subset(np.sort(np.concatenate(keep)))


def _write_csv(path: Path, beats: BeatSet, *, record: list[str] | None, label: list[str]) -> Path:
    """A CSV with a header: record (if given), label, then s0..s186; floats written exactly."""
    head = ["record"] if record is not None else []
    lines = [",".join([*head, "label", *(f"s{i}" for i in range(beats.width))])]
    for i, row in enumerate(beats.x[:, 0].astype(np.float64)):
        cells = [record[i]] if record is not None else []
        lines.append(",".join([*cells, label[i], *map(repr, row.tolist())]))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def beats_csv(tmp_path_factory: pytest.TempPathFactory, some_beats: BeatSet) -> Path:
    """Real beats with their MIT-BIH record numbers and AAMI class names."""
    return _write_csv(
        tmp_path_factory.mktemp("csv") / "beats.csv",
        some_beats,
        record=[str(r) for r in some_beats.record],
        label=[AAMI_CLASSES[y] for y in some_beats.y],
    )


# ------------------------------------------------------------------------------------------ csv:


def test_a_kaggle_csv_is_detected_and_read_as_the_kaggle_loader_reads_it(kaggle_csv):
    name = f"csv:{kaggle_csv}"
    spec = dataset_spec(name)
    assert spec.splits == ("intra",)  # no record column: no patient-wise split
    assert spec.models == MITBIH_MODELS
    assert (spec.eps, spec.quick_eps, spec.objectives) == (
        DATASETS["mitbih"].eps,
        DATASETS["mitbih"].quick_eps,
        DATASETS["mitbih"].objectives,
    )
    config = check_data(DataConfig(dataset=name))
    assert config.split == "intra"
    assert input_shape(config).length == 187
    loaded = load_dataset(config, None)
    direct = load_kaggle_csv(kaggle_csv)
    assert loaded.splits.split == "intra"
    assert sum(len(getattr(loaded.splits, p)) for p in ("train", "val", "test")) == len(direct) == 500
    assert loaded.splits.test.class_counts() == dict.fromkeys(AAMI_CLASSES, 20)
    beats, report = load_csv(kaggle_csv)
    _same_beats(beats, direct)
    assert report.layout == "kaggle" and report.fingerprint == loaded.fingerprint
    _refused(
        ConfigError,
        "split: must be one of intra; got 'records'",
        check_data,
        DataConfig(dataset=name, split="records"),
    )


def test_the_fingerprint_is_the_bytes_not_the_name(kaggle_csv, tmp_path):
    copy = shutil.copy(kaggle_csv, tmp_path / "renamed.csv")
    assert load_csv(copy)[1].fingerprint == load_csv(kaggle_csv)[1].fingerprint
    Path(copy).write_bytes(b"1" + Path(copy).read_bytes().removeprefix(b"1.0"))  # same beats, other bytes
    assert load_csv(copy)[1].fingerprint != load_csv(kaggle_csv)[1].fingerprint


def test_a_csv_with_a_header_gives_back_real_beats_and_splits_them_by_record(beats_csv, some_beats):
    beats, report = load_csv(beats_csv)
    assert report.layout == "header" and report.records == ("208", "209", "213", "223", "232")
    assert np.array_equal(beats.x, some_beats.x) and np.array_equal(beats.y, some_beats.y)
    assert np.array_equal(beats.record, some_beats.record)  # record numbers kept as the ids
    # Trailing zeros read as padding: the length is the loader's wherever the last sample is not 0.
    last = some_beats.x[np.arange(len(some_beats)), 0, some_beats.length - 1]
    assert np.array_equal(beats.length[last != 0], some_beats.length[last != 0])
    assert np.isnan(beats.amp_mv).all()

    name = f"csv:{beats_csv}"
    assert dataset_spec(name).splits == ("intra", "records")
    loaded = load_dataset(DataConfig(dataset=name, split="records", seed=1), None)
    parts = [set(np.unique(getattr(loaded.splits, p).record)) for p in ("train", "val", "test")]
    assert [len(p) for p in parts] == [3, 1, 1]  # 5 records: 1 test (0.2), 1 val, 3 train
    assert set.union(*parts) == {208, 209, 213, 223, 232} and sum(map(len, parts)) == 5
    again = load_dataset(DataConfig(dataset=name, split="records", seed=1), None)
    assert np.array_equal(again.splits.test.x, loaded.splits.test.x)  # seeded


def test_labels_may_be_indices_and_records_names(some_beats, tmp_path):
    path = _write_csv(
        tmp_path / "named.csv",
        some_beats,
        record=[f"patient-{r}" for r in some_beats.record],
        label=[f"{y}.0" if i % 2 else str(y) for i, y in enumerate(some_beats.y)],
    )
    beats, report = load_csv(path)
    assert np.array_equal(beats.y, some_beats.y)
    # Names that are not numbers: ids are positions in name order, and the note says which is which.
    assert np.array_equal(beats.record, np.searchsorted([208, 209, 213, 223, 232], some_beats.record))
    assert report.notes == (
        "record ids are the records' positions in name order: 0 = patient-208, 1 = patient-209, "
        "2 = patient-213, ..., 4 = patient-232",
    )


def test_a_csv_is_refused_in_one_line_naming_the_file_and_line(tmp_path, kaggle_csv):
    missing = tmp_path / "missing.csv"
    _refused(ConfigError, f"dataset: csv:{missing}: no such file {missing}", dataset_spec, f"csv:{missing}")
    _refused(
        ConfigError,
        f"dataset: csv:{tmp_path}: {tmp_path} is a directory, not a CSV file",
        dataset_spec,
        f"csv:{tmp_path}",
    )
    _refused(
        ConfigError, "dataset: csv:: name the file after the colon, e.g. csv:beats.csv", dataset_spec, "csv:"
    )

    def csv(text: str | bytes) -> Path:
        path = tmp_path / "beats.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    p = csv(b"\xff\xfelabel,s0\n")
    _refused(
        DataError,
        f"{p}: cannot read the CSV: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
        dataset_spec,
        f"csv:{p}",
    )
    p = csv("label,s0,s1,s2\nN,0.1,0.2,0.3\nS,0.1,0.2\n")
    _refused(DataError, f"{p}: line 3 has 3 columns, the header has 4", load_csv, p)
    p = csv("label,s0,s1\nN,0.1,0.2\n\nX,0.1,0.2\n")
    _refused(DataError, f"{p}: line 4: unknown label 'X'; labels are N, S, V, F, Q or 0..4", load_csv, p)
    p = csv("label,s0,s1\n5,0.1,0.2\n")
    _refused(DataError, f"{p}: line 2: unknown label '5'; labels are N, S, V, F, Q or 0..4", load_csv, p)
    p = csv("record,label,s0,s1\n1,N,0.1,abc\n")
    _refused(DataError, f"{p}: line 2, column s1: 'abc' is not a number", load_csv, p)
    p = csv("record,label,s0,s1\n1,N,0.1,nan\n")
    _refused(DataError, f"{p}: line 2, column s1: the sample is not a finite number", load_csv, p)
    p = csv("record,label,s0\n,N,0.1\n")
    _refused(DataError, f"{p}: line 2: the `record` cell is empty", load_csv, p)
    p = csv("record,label,s0\n")
    _refused(DataError, f"{p}: the CSV has a header but no beats", load_csv, p)
    p = csv("patient,class,s0\nN,1,0.1\n")
    _refused(
        DataError,
        f"{p}: the header must have one `label` column and at most one `record` column, it has 0 and 0 "
        "(a CSV without a header must be the Kaggle heartbeat format: numbers only)",
        dataset_spec,
        f"csv:{p}",
    )
    p = csv("0.1,0.2,0\n")
    _refused(
        DataError,
        f"{p}: a CSV without a header must be the Kaggle heartbeat format (187 samples, then the label), "
        "but its first line has 3 columns; for beats of another width, add a header with a `label` column",
        dataset_spec,
        f"csv:{p}",
    )
    rows = kaggle_csv.read_text().splitlines()
    p = csv("\n".join([*rows[:2], rows[2].rsplit(",", 1)[0], *rows[3:5]]) + "\n")
    _refused(
        DataError,
        f"{p}: not a Kaggle heartbeat CSV (numbers only, no header): line 3 has 187 columns, "
        "expected 188 (187 samples + label)",
        load_csv,
        p,
    )


def test_check_trial_takes_a_csv_dataset_and_offers_no_rrcnn(kaggle_csv):
    data = DataConfig(dataset=f"csv:{kaggle_csv}")
    checked = check_trial(TrialConfig(data=data, model=ModelConfig(name="cnn")))
    assert checked.data.split == "intra"
    _refused(
        ConfigError,
        f"model: 'rrcnn' is not offered for csv:{kaggle_csv}; choose one of {', '.join(MITBIH_MODELS)}",
        check_trial,
        TrialConfig(data=data, model=ModelConfig(name="rrcnn")),
    )


@pytest.mark.slow
def test_one_epoch_on_a_csv_dataset_trains_and_is_evaluated(kaggle_csv):
    data = DataConfig(dataset=f"csv:{kaggle_csv}", max_train_beats=100)
    config = TrialConfig(
        data=data,
        model=ModelConfig(name="cnn"),
        optim=OptimConfig(epochs=1, batch_size=32),
        val_eval=None,
        test_eval=EvalConfig(eps=(0.01, 0.05), steps=2, per_class_cap=5, batch_size=128),
        seed=1,
    )
    (final,) = run_trial(config, load_dataset(check_trial(config).data, None).splits)
    assert final.final and not final.diverged
    assert math.isfinite(final.metrics["train_loss"])
    assert final.test is not None and final.test.n == 25  # 5 beats of each of the 5 classes
    assert final.test.balanced_classes == AAMI_CLASSES
    assert 0.0 <= final.test.robust_acc[0.05] <= final.test.robust_acc[0.01] <= final.test.clean_acc <= 1.0


# ----------------------------------------------------------------------------------------- wfdb:


def test_wfdb_on_the_bundled_records_gives_the_built_in_loaders_beats_and_splits(bundled):
    beats, report = load_wfdb(BUNDLED_DIR)
    _same_beats(beats, bundled)
    assert report.notes == ("lead MLII in all 5 records",)

    name = f"wfdb:{BUNDLED_DIR}"
    spec = dataset_spec(name)
    assert spec.splits == ("records", "intra", "inter")  # MIT-BIH record numbers: DS1/DS2 apply
    assert spec.models == DATASETS["mitbih"].models
    for split in ("inter", "intra"):
        ours = load_dataset(DataConfig(dataset=name, split=split, seed=2), None).splits
        built_in = make_splits(bundled, split=split, seed=2)
        for part in ("train", "val", "test"):
            _same_beats(getattr(ours, part), getattr(built_in, part))
    # Another lead, by name, as load_mitbih reads it; the model input follows `input`.
    _same_beats(load_wfdb(BUNDLED_DIR, lead="V1")[0], load_mitbih(BUNDLED_DIR, lead="V1")[0])
    assert input_shape(DataConfig(dataset=name, input="rhythm")).length == 375


def test_wfdb_on_shared_mitbih_records_gives_the_built_in_loaders_beats(mitdb_dir, tmp_path, monkeypatch):
    # Without a RECORDS file: every .hea with an .atr beside it.
    for record in SHARED_RECORDS:
        for ext in ("hea", "dat", "atr"):
            (tmp_path / f"{record}.{ext}").symlink_to(mitdb_dir / f"{record}.{ext}")
    (tmp_path / "999.hea").symlink_to(mitdb_dir / "100.hea")  # left out: no annotations
    beats, report = load_wfdb(tmp_path)
    _same_beats(beats, load_mitbih(mitdb_dir, records=SHARED_RECORDS)[0])
    assert report.notes == ("lead MLII in 100, 114, 207; V5 in 102",)

    # A lead a record lacks is refused, naming the record, before any signal is decoded.
    with monkeypatch.context() as m:
        m.setattr(mitbih_module, "read_record", lambda info: pytest.fail(f"read record {info.number}"))
        _refused(
            ConfigError,
            f"lead: record 207 in {tmp_path} has no signal 'V5'; its signals are MLII, V1",
            load_wfdb,
            tmp_path,
            lead="V5",
        )
    (tmp_path / "207.atr").unlink()
    rhythm, report = load_wfdb(tmp_path, lead="V5", input="rhythm")
    _same_beats(rhythm, load_mitbih(mitdb_dir, records=(100, 102, 114), lead="V5", input="rhythm")[0])
    assert report.notes == ("lead V5 in all 3 records",)


def test_a_wfdb_directory_is_refused_in_one_line(tmp_path):
    missing = tmp_path / "missing"
    _refused(
        ConfigError, f"dataset: wfdb:{missing}: no such directory {missing}", dataset_spec, f"wfdb:{missing}"
    )
    file = BUNDLED_DIR / "RECORDS"
    _refused(ConfigError, f"dataset: wfdb:{file}: {file} is not a directory", dataset_spec, f"wfdb:{file}")
    (tmp_path / "208.hea").symlink_to(BUNDLED_DIR / "208.hea")
    _refused(
        DataError,
        f"{tmp_path}: no annotated records here (no RECORDS file, and no .hea header with an .atr "
        "annotation file beside it)",
        dataset_spec,
        f"wfdb:{tmp_path}",
    )
    (tmp_path / "RECORDS").write_text("208\n")
    _refused(
        DataError,
        f"{tmp_path}/208.atr: record 208, listed in RECORDS, has no beat annotations",
        dataset_spec,
        f"wfdb:{tmp_path}",
    )


def test_wfdb_settings_are_its_own(tmp_path):
    name = f"wfdb:{BUNDLED_DIR}"
    assert check_data(DataConfig(dataset=name, lead="V1")).lead == "V1"
    assert check_data(DataConfig(dataset=name)).split == "records"
    for other in ("mitbih", "cpsc2018"):
        _refused(
            ConfigError,
            f"lead: is a setting of wfdb:, not of {other}",
            check_data,
            DataConfig(dataset=other, lead="V1"),
        )
    _refused(
        ConfigError,
        "lead: must be a signal name such as MLII or V1, or None (MLII, else the first), got ' V1'",
        DataConfig,
        lead=" V1",
    )
