"""Frozen configuration of one trial.

The evaluation protocols (EvalConfig, the named PROTOCOLS, `protocol`) live in
nsr_tune._eval_config and are re-exported here, so `nsr_tune.config` stays the one place to
import a configuration from.

A trial is fully described by one `TrialConfig`. Every field is checked when the object is
built, so a bad value fails before any data is read or any model is trained, and the error
names the field. `TrialConfig.to_dict` / `TrialConfig.from_dict` give the plain-data form that
goes into checkpoints, model files, Ray Tune configs and MLflow params.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from nsr_tune._checks import check as _check
from nsr_tune._checks import choice as _choice
from nsr_tune._checks import finite_number as _finite_number
from nsr_tune._checks import positive_int as _positive_int
from nsr_tune._eval_config import (
    ATTACKS,
    FINAL_EVAL,
    NOISE_KINDS,
    PAPER_EPS,
    PROTOCOLS,
    EvalConfig,
    check_multilabel_eval,
    protocol,
)
from nsr_tune.data._cpsc import CPSC_MAX_LEN
from nsr_tune.errors import ConfigError
from nsr_tune.objectives import ObjectiveConfig

__all__ = [
    "ATTACKS",
    "FINAL_EVAL",
    "NOISE_KINDS",
    "PAPER_EPS",
    "PROTOCOLS",
    "SCHEDULES",
    "SPLITS",
    "DataConfig",
    "EvalConfig",
    "FinalConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "TrialConfig",
    "protocol",
]

SPLITS = ("inter", "intra")
OPTIMIZERS = ("adam", "adamw", "adamax", "sgd")
# Learning-rate schedules, stepped once per epoch: constant, cosine annealing to 0 over the
# epochs, or a step decay (x0.1 at half and at three quarters of the epochs).
SCHEDULES = ("none", "cosine", "step")
BALANCE = ("balanced", "none")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset a trial trains, validates and tests on, and how it is split.

    `dataset` names an entry of nsr_tune.data.DATASETS. MIT-BIH settings: `split` (inter or
    intra), `val_records`, `val_fraction`, `test_fraction`, and `input`, the beat representation
    (nsr_tune.data.INPUTS: `kachuee`, the paper's, or `rhythm`, a window that holds the previous
    and next beats, `context`, one that reaches 4 s back, `lookback`, 10 s back, or `lookback30`,
    30 s back). CPSC2018 settings: `leads` (paper: I, II, V1-V6; all: 12), `max_len` (samples at 500 Hz),
    `sample_rate` (resample to this many Hz; None keeps 500), and the records per class held out
    for validation and test. A setting of the other dataset is refused, so a config never says
    more than it does.
    """

    dataset: str = "mitbih"
    split: str | None = None  # None: the dataset's default (inter; records for cpsc2018)
    seed: int = 0
    # A seeded, class-proportional subset of the training samples (None: all of them).
    max_train_beats: int | None = None
    val_records: tuple[int, ...] | None = None  # None: the data module's default for `inter`
    val_fraction: float = 0.1  # `intra` only
    test_fraction: float = 0.2  # `intra` only
    input: str = "kachuee"
    leads: str = "paper"
    max_len: int = CPSC_MAX_LEN
    sample_rate: int | None = None
    val_per_class: int = 5
    test_per_class: int = 50
    # Keep the records with several labels and train on label sets (sigmoid outputs, the `bce`
    # objective); evaluated with PGD on the BCE loss, a record broken when its set changes.
    multi_label: bool = False

    def __post_init__(self) -> None:
        from nsr_tune.data import DATASETS

        _choice(self.dataset, "dataset", tuple(DATASETS))
        spec = DATASETS[self.dataset]
        if self.split is None:
            object.__setattr__(self, "split", spec.splits[0])
        _choice(self.split, "split", spec.splits)
        _check(isinstance(self.seed, int), "seed", f"must be an integer, got {self.seed!r}")
        _positive_int(self.max_train_beats, "max_train_beats", allow_none=True)
        if self.val_records is not None:
            object.__setattr__(self, "val_records", tuple(int(r) for r in self.val_records))
            _check(len(self.val_records) > 0, "val_records", "must name at least one record")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            _finite_number(value, name)
            _check(0.0 < value < 1.0, name, f"must lie strictly between 0 and 1, got {value!r}")
        from nsr_tune.data import INPUTS

        _choice(self.input, "input", tuple(INPUTS))
        _choice(self.leads, "leads", ("paper", "all"))
        _check(isinstance(self.multi_label, bool), "multi_label", "must be true or false")
        _positive_int(self.max_len, "max_len")
        _positive_int(self.sample_rate, "sample_rate", allow_none=True)
        if self.sample_rate is not None:
            _check(self.sample_rate <= 500, "sample_rate", f"must be at most 500 Hz, got {self.sample_rate}")
        for name in ("val_per_class", "test_per_class"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                name,
                f"must be a whole number >= 0, got {value!r}",
            )
        defaults = DataConfig.__dataclass_fields__
        other = _MITBIH_ONLY if self.dataset != "mitbih" else _CPSC_ONLY
        for name in other:
            _check(
                getattr(self, name) == defaults[name].default,
                name,
                f"is a setting of {'mitbih' if name in _MITBIH_ONLY else 'cpsc2018'}, not of {self.dataset}",
            )

    @property
    def n_classes(self) -> int:
        from nsr_tune.data import DATASETS

        return len(DATASETS[self.dataset].classes)

    @property
    def in_len(self) -> int | None:
        """Samples per input, or None where inputs vary in length (CPSC2018 records)."""
        if self.dataset != "mitbih":
            return None
        from nsr_tune.data import INPUTS

        return INPUTS[self.input].width

    @property
    def n_leads(self) -> int:
        if self.dataset == "mitbih":
            return 1
        from nsr_tune.data import ALL_LEADS, PAPER_LEADS

        return len(ALL_LEADS if self.leads == "all" else PAPER_LEADS)

    def split_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `nsr_tune.data.make_splits` that this config pins."""
        out: dict[str, Any] = {
            "split": self.split,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
        }
        if self.val_records is not None:
            out["val_records"] = self.val_records
        return out


_MITBIH_ONLY = ("val_records", "val_fraction", "test_fraction", "input")
_CPSC_ONLY = ("leads", "max_len", "sample_rate", "val_per_class", "test_per_class", "multi_label")


@dataclass(frozen=True)
class ModelConfig:
    """A model family from the registry, its knobs, and the paper's per-unit weight normalisation."""

    name: str = "cnn"
    knobs: Mapping[str, Any] = field(default_factory=dict)
    weight_norm: bool = False

    def __post_init__(self) -> None:
        from nsr_tune.models import check_model_knobs

        check_model_knobs(self.name, dict(self.knobs))
        # Read-only view, so a frozen config cannot be changed through its knobs.
        object.__setattr__(self, "knobs", MappingProxyType(dict(self.knobs)))
        _check(isinstance(self.weight_norm, bool), "weight_norm", "must be true or false")


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 10
    # "balanced" draws each epoch's beats with class-balanced weights: without it the N class
    # (about 90% of MIT-BIH beats) dominates and balanced accuracy suffers.
    balance: str = "balanced"
    # Gradient norm clip (None: off). Double backprop through the NSR term can spike.
    grad_clip: float | None = 10.0
    schedule: str = "none"

    def __post_init__(self) -> None:
        _choice(self.optimizer, "optimizer", OPTIMIZERS)
        _finite_number(self.lr, "lr", low=0.0, low_open=True)
        _finite_number(self.weight_decay, "weight_decay", low=0.0)
        _positive_int(self.batch_size, "batch_size")
        _positive_int(self.epochs, "epochs")
        _choice(self.balance, "balance", BALANCE)
        _choice(self.schedule, "schedule", SCHEDULES)
        if self.grad_clip is not None:
            _finite_number(self.grad_clip, "grad_clip", low=0.0, low_open=True)


def _plain(value: Any) -> Any:
    """Dataclasses, mappings and tuples as plain data (str, numbers, lists, dicts)."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(kind: type, value: Any) -> Any:
    """`kind(**value)` from plain data, its list fields as tuples; None stays None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{kind.__name__}: expected a mapping, got {value!r}")
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ConfigError(f"{kind.__name__}: unknown key(s) {', '.join(unknown)}")
    kwargs = dict(value)
    for key in ("eps", "val_records", "balanced_classes", "attacks", "noise_uv", "noise_snr_db"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    return kind(**kwargs)


@dataclass(frozen=True)
class FinalConfig:
    """A study's second stage: its finalists, evaluated again on the test split.

    The finalists are the trials of validation Pareto rank below `top_ranks` (2: the front and
    the rank behind it). `bootstrap` resamples of the test records give each final metric a
    `ci`-level interval (0: no intervals).
    """

    evaluation: EvalConfig = FINAL_EVAL
    top_ranks: int = 2
    bootstrap: int = 1000
    ci: float = 0.95

    def __post_init__(self) -> None:
        _check(isinstance(self.evaluation, EvalConfig), "evaluation", "must be an EvalConfig")
        _positive_int(self.top_ranks, "top_ranks")
        _check(
            isinstance(self.bootstrap, int) and not isinstance(self.bootstrap, bool) and self.bootstrap >= 0,
            "bootstrap",
            f"must be a whole number of resamples >= 0, got {self.bootstrap!r}",
        )
        _finite_number(self.ci, "ci", low=0.0, low_open=True)
        _check(self.ci < 1.0, "ci", f"must be a level below 1, such as 0.95, got {self.ci!r}")

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinalConfig:
        kwargs = dict(data)
        if "evaluation" in kwargs:
            kwargs["evaluation"] = _build(EvalConfig, kwargs["evaluation"])
        return _build(cls, kwargs)

    def fingerprint(self) -> str:
        """A short hash of these settings: final results are kept per setting."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs. `val_eval` feeds a search; `test_eval` is the held-out report."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    val_eval: EvalConfig | None = None
    test_eval: EvalConfig | None = field(default_factory=EvalConfig)
    seed: int = 0
    # Early-stopping rungs: after these epochs the trial is also evaluated under `rung_eval` (a
    # cheap protocol on a small fixed validation subset) and reports `rung_*` metrics, which
    # only a multi-objective scheduler reads. Empty: no rungs.
    rung_epochs: tuple[int, ...] = ()
    rung_eval: EvalConfig | None = None

    def __post_init__(self) -> None:
        from nsr_tune.data import DATASETS

        _check(isinstance(self.seed, int), "seed", f"must be an integer, got {self.seed!r}")
        offered = DATASETS[self.data.dataset].models
        _check(
            self.model.name in offered,
            "model",
            f"{self.model.name!r} is not offered for {self.data.dataset}; choose one of {', '.join(offered)}",
        )
        # Label sets need sigmoid outputs and BCE; one label per sample needs the others.
        _check(
            self.data.multi_label == (self.objective.name == "bce"),
            "objective",
            "multi_label data train with `bce` (sigmoid outputs), and `bce` only on multi_label data; "
            f"got objective {self.objective.name!r} with multi_label={self.data.multi_label}",
        )
        for part, ev in (("val_eval", self.val_eval), ("test_eval", self.test_eval)):
            if self.data.multi_label and ev is not None:
                check_multilabel_eval(ev, part)
        from nsr_tune.models import check_model_input

        check_model_input(self.model.name, self.model.knobs, self.data.in_len)
        rungs = self.rung_epochs
        _check(
            isinstance(rungs, (list, tuple)) and all(isinstance(e, int) and e >= 1 for e in rungs),
            "rung_epochs",
            f"must be a list of epochs >= 1, got {rungs!r}",
        )
        object.__setattr__(self, "rung_epochs", tuple(sorted(set(rungs))))
        _check(
            (self.rung_eval is None) == (not self.rung_epochs),
            "rung_eval",
            "is needed exactly when there are rung_epochs",
        )

    def build_model(self) -> Any:
        """The untrained model this config describes, shaped for its dataset's leads and classes."""
        from nsr_tune.models import build_model

        return build_model(
            self.model.name,
            self.model.knobs,
            n_classes=self.data.n_classes,
            in_leads=self.data.n_leads,
            in_len=self.data.in_len,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, numbers, lists, dicts): safe for JSON, torch weights_only files, MLflow."""

        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialConfig:
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"TrialConfig: unknown key(s) {', '.join(unknown)}")
        return cls(
            data=_build(DataConfig, data.get("data", {})),
            model=_build(ModelConfig, data.get("model", {})),
            objective=_build(ObjectiveConfig, data.get("objective", {})),
            optim=_build(OptimConfig, data.get("optim", {})),
            val_eval=_build(EvalConfig, data.get("val_eval")),
            test_eval=_build(EvalConfig, data.get("test_eval")),
            seed=data.get("seed", 0),
            rung_epochs=tuple(data.get("rung_epochs", ())),
            rung_eval=_build(EvalConfig, data.get("rung_eval")),
        )
