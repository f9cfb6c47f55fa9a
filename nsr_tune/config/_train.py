"""What a trial trains: its data, model, objective and optimiser, each a frozen dataclass that
checks its own fields (whether a name exists in a registry is nsr_tune.trial.check_trial's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from nsr_tune._checks import check, choice, finite_number, positive_int, sequence, whole_number

__all__ = [
    "BALANCE",
    "CPSC_MAX_LEN",
    "NSR_OBJECTIVES",
    "OBJECTIVE_FIELDS",
    "OBJECTIVE_NAMES",
    "OPTIMIZERS",
    "SCHEDULES",
    "WEIGHTED",
    "DataConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimConfig",
]

OPTIMIZERS = ("adam", "adamw", "adamax", "sgd")
# Learning-rate schedules, stepped once per epoch: constant, cosine annealing to 0 over the
# epochs, or a step decay (x0.1 at half and at three quarters of the epochs).
SCHEDULES = ("none", "cosine", "step")
BALANCE = ("balanced", "none")
# Samples at 500 Hz a CPSC2018 record is truncated to: 61.44 s, as the paper truncates.
CPSC_MAX_LEN = 30_720
# Losses with a regulariser weighed by `beta`; the others ignore it.
WEIGHTED: tuple[str, ...] = ("nsr", "nsr_ce", "jacobian")
# The objectives nsr-tune ships (nsr_tune.objectives.OBJECTIVES holds exactly these): named here,
# with no torch, so that the command line can list them without loading the losses.
# `bce`: binary cross-entropy on label sets, for multi-label data. `mse` and `mse_margin`: the
# paper's ablations, its loss without the NSR term. `focal`: focal cross-entropy for imbalance.
OBJECTIVE_NAMES: tuple[str, ...] = ("ce", *WEIGHTED, "pgd_at", "bce", "mse", "mse_margin", "focal")
# The objectives whose NSR term takes `nsr_eps`.
NSR_OBJECTIVES: tuple[str, ...] = ("nsr", "nsr_ce")
# The fields a search space may set per loss (`beta` only for the weighted ones).
OBJECTIVE_FIELDS: tuple[str, ...] = ("beta", "nsr_eps", "at_eps", "at_steps", "focal_gamma")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset a trial trains, validates and tests on, and how it is split.

    `dataset` names an entry of nsr_tune.data.DATASETS. MIT-BIH settings: `split` (inter or
    intra), `val_records`, `val_fraction`, `test_fraction`, and `input`, the beat representation
    (nsr_tune.data.INPUTS: `kachuee`, the paper's, or `rhythm`, a window that holds the previous
    and next beats, `context`, one that reaches 4 s back, `lookback`, 10 s back, or `lookback30`,
    30 s back). CPSC2018 settings: `leads` (paper: I, II, V1-V6; all: 12), `max_len` (samples at 500 Hz),
    `sample_rate` (resample to this many Hz; None keeps 500), and the records per class held out
    for validation and test. `wfdb:DIR` datasets also take `lead`, the signal to cut beats from.
    The data registry (`nsr_tune.data.check_data`) refuses a setting of another dataset, so a
    config never says more than it does, and fills in the default split.
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
    # `wfdb:DIR` datasets: the signal to cut beats from, by name (e.g. V1). None: MLII where a
    # record has it, else its first signal, as the built-in MIT-BIH loader does for 102 and 104.
    lead: str | None = None

    def __post_init__(self) -> None:
        for name in ("dataset", "input"):
            check(isinstance(getattr(self, name), str), name, f"must be a name, got {getattr(self, name)!r}")
        check(
            self.split is None or isinstance(self.split, str), "split", f"must be a name, got {self.split!r}"
        )
        check(isinstance(self.seed, int), "seed", f"must be an integer, got {self.seed!r}")
        positive_int(self.max_train_beats, "max_train_beats", allow_none=True)
        if self.val_records is not None:
            records = sequence(self.val_records, "val_records", "record numbers")
            object.__setattr__(self, "val_records", tuple(int(r) for r in records))
            check(len(self.val_records) > 0, "val_records", "must name at least one record")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            finite_number(value, name)
            check(0.0 < value < 1.0, name, f"must lie strictly between 0 and 1, got {value!r}")
        choice(self.leads, "leads", ("paper", "all"))
        check(isinstance(self.multi_label, bool), "multi_label", "must be true or false")
        check(
            self.lead is None
            or (isinstance(self.lead, str) and self.lead != "" and self.lead == self.lead.strip()),
            "lead",
            f"must be a signal name such as MLII or V1, or None (MLII, else the first), got {self.lead!r}",
        )
        positive_int(self.max_len, "max_len")
        positive_int(self.sample_rate, "sample_rate", allow_none=True)
        if self.sample_rate is not None:
            check(self.sample_rate <= 500, "sample_rate", f"must be at most 500 Hz, got {self.sample_rate}")
        for name in ("val_per_class", "test_per_class"):
            whole_number(getattr(self, name), name)

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


@dataclass(frozen=True)
class ModelConfig:
    """A model family from the registry, its knobs, and the paper's per-unit weight normalisation."""

    name: str = "cnn"
    knobs: Mapping[str, Any] = field(default_factory=dict)
    weight_norm: bool = False

    def __post_init__(self) -> None:
        check(isinstance(self.name, str) and bool(self.name), "model", f"must be a name, got {self.name!r}")
        check(isinstance(self.knobs, Mapping), "model.knobs", f"must be a mapping, got {self.knobs!r}")
        # Read-only view, so a frozen config cannot be changed through its knobs.
        object.__setattr__(self, "knobs", MappingProxyType(dict(self.knobs)))
        check(isinstance(self.weight_norm, bool), "weight_norm", "must be true or false")


@dataclass(frozen=True)
class ObjectiveConfig:
    """The training loss (a name of nsr_tune.objectives.OBJECTIVES, or a plugin) and its settings.

    `beta` weighs the regulariser of the WEIGHTED losses (the others ignore it). A plugin
    objective takes its settings from `params` instead, into its own typed config
    (nsr_tune.objectives.ObjectivePlugin); the built-in ones take none.
    """

    name: str = "ce"
    beta: float = 0.0
    nsr_eps: float = 1.0  # the eps inside the NSR term; the paper uses 1
    at_eps: float = 0.05  # PGD adversarial training (`pgd_at`): L-inf budget
    at_steps: int = 10
    # `focal`: the factor (1 - p_y)^gamma that shrinks the loss of beats already classified well,
    # so the rare classes' hard beats weigh more (Lin et al. 2017); 0 gives plain CE.
    focal_gamma: float = 2.0
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(
            isinstance(self.name, str) and bool(self.name), "objective", f"must be a name, got {self.name!r}"
        )
        check(isinstance(self.params, Mapping), "objective.params", f"must be a mapping, got {self.params!r}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        finite_number(self.beta, "beta", low=0.0)
        finite_number(self.nsr_eps, "nsr_eps", low=0.0, low_open=True)
        finite_number(self.at_eps, "at_eps", low=0.0, low_open=True)
        positive_int(self.at_steps, "at_steps")
        finite_number(self.focal_gamma, "focal_gamma", low=0.0)

    @property
    def weighted(self) -> bool:
        return self.name in WEIGHTED


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
        choice(self.optimizer, "optimizer", OPTIMIZERS)
        finite_number(self.lr, "lr", low=0.0, low_open=True)
        finite_number(self.weight_decay, "weight_decay", low=0.0)
        positive_int(self.batch_size, "batch_size")
        positive_int(self.epochs, "epochs")
        choice(self.balance, "balance", BALANCE)
        choice(self.schedule, "schedule", SCHEDULES)
        if self.grad_clip is not None:
            finite_number(self.grad_clip, "grad_clip", low=0.0, low_open=True)
