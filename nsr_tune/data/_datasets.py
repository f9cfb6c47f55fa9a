"""Datasets by name, like models and objectives: `mitbih` (beats) and `cpsc2018` (records).

Each yields a SplitData whose parts give inputs (B, leads, L) with the real samples' lengths,
labels, a patient id per sample, its classes, sampling rate and millivolts per unit, and each
has its own default L-inf eps grid, the models offered for it and the DataConfig settings it
reads. Code downstream reads these from the registry and the data; it does not branch on a
dataset's name. `check_data` holds a DataConfig to the registry; `input_shape` says what a
model built for it takes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from nsr_tune._checks import check, choice
from nsr_tune.config import PAPER_EPS, DataConfig
from nsr_tune.data._beats import AAMI_CLASSES, INPUTS
from nsr_tune.data._cpsc import ALL_LEADS, CPSC_CLASSES, PAPER_LEADS, RecordSet, cpsc_splits
from nsr_tune.data._cpsc import resample as _resample
from nsr_tune.data._cpsc_load import load_cpsc2018
from nsr_tune.data._csv import CSV_SETTINGS, csv_dataset
from nsr_tune.data._download import default_cpsc_dir, resolve_data_dir
from nsr_tune.data._mitbih import load_mitbih
from nsr_tune.data._plugins import check_loaded, plugin_dataset
from nsr_tune.data._spec import Dataset, InputShape, Loaded
from nsr_tune.data._splits import SplitData, make_splits
from nsr_tune.data._wfdb import WFDB_SETTINGS, wfdb_dataset
from nsr_tune.errors import DataError
from nsr_tune.metrics import Direction, Objective

__all__ = [
    "DATASETS",
    "SOURCES",
    "absolute_dataset",
    "check_data",
    "dataset_spec",
    "input_shape",
    "load_dataset",
]


def _load_mitbih(config: DataConfig, data_dir: str | Path | None, progress: bool) -> Loaded:
    directory = resolve_data_dir(data_dir)
    beats, report = load_mitbih(directory, input=config.input, progress=progress)
    return Loaded(
        make_splits(beats, **config.split_arguments()), directory, report.fingerprint, tuple(report.notes)
    )


def cpsc_dir(data_dir: str | Path | None) -> Path:
    """The CPSC2018 directory: `data_dir`, else $NSR_TUNE_CPSC2018, else the download's default
    place (`nsr-tune data download --dataset cpsc2018`) when it holds records."""
    given = data_dir or os.environ.get("NSR_TUNE_CPSC2018", "")
    if not given and any(default_cpsc_dir().glob("*.hea")):
        given = default_cpsc_dir()
    if not given:
        raise DataError(
            "--data-dir: give the CPSC2018 directory (AXXXX.hea + AXXXX.mat records, or the original "
            "release's .mat files and REFERENCE.csv), or set NSR_TUNE_CPSC2018; "
            "`nsr-tune data download --dataset cpsc2018` fetches PhysioNet's copy"
        )
    return Path(given).expanduser()


def _fingerprint(records: RecordSet, settings: dict[str, Any]) -> str:
    h = hashlib.sha256(repr(sorted(settings.items())).encode())
    for part in (records.digital, records.offsets, records.scale, records.labels):
        h.update(np.ascontiguousarray(part).tobytes())
    h.update("\n".join(records.names).encode())
    return h.hexdigest()


def _load_cpsc2018(config: DataConfig, data_dir: str | Path | None, progress: bool) -> Loaded:
    directory = cpsc_dir(data_dir)
    leads = ALL_LEADS if config.leads == "all" else PAPER_LEADS
    records, report = load_cpsc2018(
        directory, leads=leads, max_len=config.max_len, multi_label=config.multi_label
    )
    if config.sample_rate is not None:
        records = _resample(records, config.sample_rate)
    parts = cpsc_splits(
        records, val_per_class=config.val_per_class, test_per_class=config.test_per_class, seed=config.seed
    )
    splits = SplitData(
        train=records.subset(parts["train"]),
        val=records.subset(parts["val"]),
        test=records.subset(parts["test"]),
        split=config.split,
    )
    notes = []
    if report.dropped_multi_label:
        notes.append(f"{len(report.dropped_multi_label)} records with more than one label left out")
    if report.truncated:
        notes.append(f"{report.truncated} records truncated to {config.max_len} samples")
    settings = {
        "leads": leads,
        "max_len": config.max_len,
        "sample_rate": config.sample_rate,
        "multi_label": config.multi_label,
    }
    return Loaded(splits, directory, _fingerprint(records, settings), tuple(notes))


DATASETS: dict[str, Dataset] = {
    "mitbih": Dataset(
        name="mitbih",
        description="MIT-BIH Arrhythmia: single-lead beats at 125 Hz (187-1438 samples), 5 AAMI classes",
        classes=AAMI_CLASSES,
        splits=("inter", "intra"),
        eps=PAPER_EPS,  # the paper's, in units of the [0, 1] beat
        quick_eps=(0.01, 0.05, 0.1),
        models=("cnn", "mlp", "resnet1d", "transformer", "rrcnn"),
        objectives=(
            Objective("val_balanced_acc", Direction.MAXIMIZE),
            Objective("val_robust_balanced_acc_eps_0.05", Direction.MAXIMIZE),
        ),
        settings=("val_records", "val_fraction", "test_fraction", "input"),
        shape=lambda config: (1, INPUTS[config.input].width),
        load=_load_mitbih,
    ),
    "cpsc2018": Dataset(
        name="cpsc2018",
        description="CPSC2018: 12-lead records of 6 to 60 s at 500 Hz (8 leads by default), 9 classes",
        classes=CPSC_CLASSES,
        splits=("records",),
        # The paper's CPSC2018 grid spans 0.001 to 0.3 of the max-abs-scaled record; a record's
        # peak is a few mV, so 0.001 is a few microvolts and 0.3 about a millivolt.
        eps=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3),
        quick_eps=(0.003, 0.01, 0.03),
        models=("resnet18",),
        # The challenge's headline score, clean and under attack.
        objectives=(
            Objective("val_macro_f1", Direction.MAXIMIZE),
            Objective("val_robust_macro_f1_eps_0.01", Direction.MAXIMIZE),
        ),
        settings=("leads", "max_len", "sample_rate", "val_per_class", "test_per_class", "multi_label"),
        shape=lambda config: (len(ALL_LEADS if config.leads == "all" else PAPER_LEADS), None),
        load=_load_cpsc2018,
    ),
}


# Datasets named `SOURCE:PATH`: a function of the path gives the Dataset; SOURCE_SETTINGS
# lists the DataConfig fields each source reads (as Dataset.settings does).
# Both read beats like mitbih's and share its eps grids and objectives (csv: its single-beat models).
SOURCES: dict[str, Callable[[str], Dataset]] = {
    "csv": partial(csv_dataset, like=DATASETS["mitbih"]),
    "wfdb": partial(wfdb_dataset, like=DATASETS["mitbih"]),
}
SOURCE_SETTINGS: dict[str, tuple[str, ...]] = {"csv": CSV_SETTINGS, "wfdb": WFDB_SETTINGS}


def dataset_spec(name: str) -> Dataset:
    """The built-in dataset `name`, one read from a path (`csv:PATH`, `wfdb:DIR`), or a plugin
    (an entry point of `nsr_tune.datasets`, or `package.module:attribute`), its contract checked."""
    if name in DATASETS:
        return DATASETS[name]
    source, sep, path = name.partition(":")
    if sep and source in SOURCES:
        return SOURCES[source](path)
    return plugin_dataset(name, builtins=(*DATASETS, *(f"{s}:PATH" for s in SOURCES)))


def absolute_dataset(name: str) -> str:
    """`csv:PATH` and `wfdb:DIR` with the path made absolute (other names as they are): a Ray
    trial runs in a directory of its own, where a relative path would name nothing."""
    source, sep, path = name.partition(":")
    if sep and source in SOURCES and path:
        return f"{source}:{Path(path).expanduser().absolute()}"
    return name


def _setting_owners() -> dict[str, str]:
    """Each dataset-specific DataConfig field, with the first dataset that reads it."""
    owners: dict[str, str] = {}
    for name, settings in [*((d.name, d.settings) for d in DATASETS.values()), *SOURCE_SETTINGS.items()]:
        for setting in settings:
            owners.setdefault(setting, name if name in DATASETS else f"{name}:")
    return owners


def check_data(config: DataConfig) -> DataConfig:
    """`config` held to the registry: its dataset, split and input exist, and it sets nothing
    another dataset reads. Returned with the dataset's default split filled in."""
    spec = dataset_spec(config.dataset)
    if config.split is None:
        config = dataclasses.replace(config, split=spec.splits[0])
    choice(config.split, "split", spec.splits)
    if "input" in spec.settings:
        choice(config.input, "input", tuple(INPUTS))
    defaults = {f.name: f.default for f in dataclasses.fields(DataConfig)}
    for name, owner in _setting_owners().items():
        if name not in spec.settings:
            check(
                getattr(config, name) == defaults[name],
                name,
                f"is a setting of {owner}, not of {config.dataset}",
            )
    return config


def input_shape(config: DataConfig) -> InputShape:
    """The inputs and outputs of a model for `config`'s data (checked by `check_data`)."""
    config = check_data(config)
    spec = dataset_spec(config.dataset)
    leads, length = spec.shape(config)
    return InputShape(leads=leads, length=length, classes=len(spec.classes))


def load_dataset(config: DataConfig, data_dir: str | Path | None, *, progress: bool = False) -> Loaded:
    """Read `config.dataset` from `data_dir` (None: its default place) and split it as `config` says."""
    config = check_data(config)
    spec = dataset_spec(config.dataset)
    loaded = spec.load(config, data_dir, progress)
    if spec.plugin is not None:
        check_loaded(config.dataset, spec, loaded)
    return loaded
