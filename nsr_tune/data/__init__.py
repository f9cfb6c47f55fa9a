"""ECG data for nsr-tune: MIT-BIH beats and CPSC2018 records, by name (`DATASETS`), with splits;
and beats read from a path (`SOURCES`): `csv:PATH` (load_csv) and `wfdb:DIR` (load_wfdb).

Typical use::

    from nsr_tune.data import load_mitbih, make_splits
    beats, report = load_mitbih("bundled")          # or a full MIT-BIH directory
    splits = make_splits(beats, split="inter")       # de Chazal DS1/DS2, patient-wise

The preprocessing is documented in nsr_tune/data/_segment.py.
"""

from __future__ import annotations

from nsr_tune.data._beats import AAMI_CLASSES, AAMI_MAP, BEAT_LEN, FS, INPUTS, BeatInput, BeatSet
from nsr_tune.data._cache import default_cache_dir, user_cache_root
from nsr_tune.data._cpsc import (
    ALL_LEADS,
    CPSC_CLASSES,
    PAPER_LEADS,
    CpscReport,
    RecordSet,
    cpsc_splits,
)
from nsr_tune.data._cpsc_load import load_cpsc2018
from nsr_tune.data._csv import CsvReport, load_csv, records_split
from nsr_tune.data._datasets import (
    DATASETS,
    SOURCES,
    absolute_dataset,
    check_data,
    cpsc_dir,
    dataset_spec,
    input_shape,
    load_dataset,
)
from nsr_tune.data._download import (
    BUNDLED_DIR,
    default_cpsc_dir,
    default_data_dir,
    download_cpsc2018,
    download_mitdb,
    mitdb_checksum_problems,
    resolve_data_dir,
)
from nsr_tune.data._kaggle import load_kaggle_csv
from nsr_tune.data._mitbih import LoadReport, MitbihRecord, load_mitbih, read_mitbih_record
from nsr_tune.data._nstdb import (
    NSTDB_KINDS,
    default_nstdb_dir,
    load_nstdb,
    nstdb_if_present,
    resolve_nstdb_dir,
)
from nsr_tune.data._qrs import MATCH_WINDOW_S, QRS_SYMBOLS, DetectionCounts, at_record_rate, detection_counts
from nsr_tune.data._segment import PREPROCESS_VERSION
from nsr_tune.data._spec import Dataset, InputShape, Loaded
from nsr_tune.data._splits import DEFAULT_VAL_RECORDS, DS1, DS2, PACED, SplitData, make_splits
from nsr_tune.data._summary import summarize
from nsr_tune.data._wfdb import load_wfdb

__all__ = [
    "AAMI_CLASSES",
    "AAMI_MAP",
    "ALL_LEADS",
    "BEAT_LEN",
    "BUNDLED_DIR",
    "CPSC_CLASSES",
    "DATASETS",
    "DEFAULT_VAL_RECORDS",
    "DS1",
    "DS2",
    "FS",
    "INPUTS",
    "MATCH_WINDOW_S",
    "NSTDB_KINDS",
    "PACED",
    "PAPER_LEADS",
    "PREPROCESS_VERSION",
    "QRS_SYMBOLS",
    "SOURCES",
    "BeatInput",
    "BeatSet",
    "CpscReport",
    "CsvReport",
    "Dataset",
    "DetectionCounts",
    "InputShape",
    "LoadReport",
    "Loaded",
    "MitbihRecord",
    "RecordSet",
    "SplitData",
    "absolute_dataset",
    "at_record_rate",
    "check_data",
    "cpsc_dir",
    "cpsc_splits",
    "dataset_spec",
    "default_cache_dir",
    "default_cpsc_dir",
    "default_data_dir",
    "default_nstdb_dir",
    "detection_counts",
    "download_cpsc2018",
    "download_mitdb",
    "input_shape",
    "load_cpsc2018",
    "load_csv",
    "load_dataset",
    "load_kaggle_csv",
    "load_mitbih",
    "load_nstdb",
    "load_wfdb",
    "make_splits",
    "mitdb_checksum_problems",
    "nstdb_if_present",
    "read_mitbih_record",
    "records_split",
    "resolve_data_dir",
    "resolve_nstdb_dir",
    "summarize",
    "user_cache_root",
]
