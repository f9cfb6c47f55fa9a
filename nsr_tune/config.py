"""Frozen configuration of one trial, as plain data: no registry, no torch.

A trial is fully described by one `TrialConfig`: its data, model, objective, optimiser and
evaluation protocols (`EvalConfig`). Each field is checked for what it is on its own (a
number in range, a known norm, a list without repeats) when the object is built, and the error
names the field. Whether a name exists in a registry (a dataset, an input, a model, an
objective) and fits the rest (is this model offered for this dataset?) is checked where the
config meets the registries: `nsr_tune.trial.check_trial`, which the trial, the CLI and the
search-space parser call. The named protocols are in nsr_tune.protocol.

`TrialConfig.to_dict` / `TrialConfig.from_dict` give the plain-data form that goes into
checkpoints, model files, Ray Tune configs and MLflow params.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from nsr_tune._checks import check as _check
from nsr_tune._checks import choice as _choice
from nsr_tune._checks import finite_number as _finite_number
from nsr_tune._checks import positive_int as _positive_int
from nsr_tune._checks import whole_number as _whole_number
from nsr_tune.errors import ConfigError

__all__ = [
    "ATTACKS",
    "ATTACK_LOSSES",
    "BALANCE",
    "CPSC_MAX_LEN",
    "NOISE_KINDS",
    "NORMS",
    "NSR_OBJECTIVES",
    "OBJECTIVE_FIELDS",
    "OBJECTIVE_NAMES",
    "OPTIMIZERS",
    "PAPER_EPS",
    "SCHEDULES",
    "WEIGHTED",
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "TrialConfig",
    "check_multilabel_eval",
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
NORMS = ("linf", "l2")
ATTACK_LOSSES = ("worst", "ce", "margin")
# The attacks a protocol may chain (see nsr_tune.evaluation.cascade): PGD, APGD with the CE
# loss, APGD-T (targeted DLR), the Square attack (black box), SAP (smooth perturbations) and the
# transfer attack (PGD on a surrogate model, which the evaluation is given).
ATTACKS = ("pgd", "apgd_ce", "apgd_t", "square", "sap", "transfer")
# The noise stress test's kinds of noise: white Gaussian noise, the NSTDB's baseline wander and
# muscle artifact records, and powerline hum at 50 and 60 Hz.
NOISE_KINDS = ("white", "bw", "ma", "powerline_50hz", "powerline_60hz")
# The paper's L-inf noise levels for MIT-BIH, in units of the [0, 1]-normalised beat; each
# dataset has its own (nsr_tune.data.DATASETS), which `nsr_tune.protocol.protocol` uses.
PAPER_EPS: tuple[float, ...] = (0.01, 0.03, 0.05, 0.1, 0.2, 0.3)


def _sequence(value: Any, name: str, what: str) -> tuple[Any, ...]:
    """A list or tuple from YAML, JSON or Python as a tuple: the one place a sequence is typed."""
    _check(isinstance(value, (list, tuple)), name, f"must be a list of {what}")
    return tuple(value)


def _levels(value: Any, name: str, what: str, *, positive: bool = True) -> tuple[float, ...]:
    """Numeric levels (noise levels, microvolts, dB) as a float tuple, each checked."""
    levels = _sequence(value, name, what)
    for v in levels:
        _finite_number(v, name, low=0.0 if positive else None, low_open=positive)
    return tuple(float(v) for v in levels)


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
            _check(isinstance(getattr(self, name), str), name, f"must be a name, got {getattr(self, name)!r}")
        _check(
            self.split is None or isinstance(self.split, str), "split", f"must be a name, got {self.split!r}"
        )
        _check(isinstance(self.seed, int), "seed", f"must be an integer, got {self.seed!r}")
        _positive_int(self.max_train_beats, "max_train_beats", allow_none=True)
        if self.val_records is not None:
            records = _sequence(self.val_records, "val_records", "record numbers")
            object.__setattr__(self, "val_records", tuple(int(r) for r in records))
            _check(len(self.val_records) > 0, "val_records", "must name at least one record")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            _finite_number(value, name)
            _check(0.0 < value < 1.0, name, f"must lie strictly between 0 and 1, got {value!r}")
        _choice(self.leads, "leads", ("paper", "all"))
        _check(isinstance(self.multi_label, bool), "multi_label", "must be true or false")
        _check(
            self.lead is None
            or (isinstance(self.lead, str) and self.lead != "" and self.lead == self.lead.strip()),
            "lead",
            f"must be a signal name such as MLII or V1, or None (MLII, else the first), got {self.lead!r}",
        )
        _positive_int(self.max_len, "max_len")
        _positive_int(self.sample_rate, "sample_rate", allow_none=True)
        if self.sample_rate is not None:
            _check(self.sample_rate <= 500, "sample_rate", f"must be at most 500 Hz, got {self.sample_rate}")
        for name in ("val_per_class", "test_per_class"):
            _whole_number(getattr(self, name), name)

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
        _check(isinstance(self.name, str) and bool(self.name), "model", f"must be a name, got {self.name!r}")
        _check(isinstance(self.knobs, Mapping), "model.knobs", f"must be a mapping, got {self.knobs!r}")
        # Read-only view, so a frozen config cannot be changed through its knobs.
        object.__setattr__(self, "knobs", MappingProxyType(dict(self.knobs)))
        _check(isinstance(self.weight_norm, bool), "weight_norm", "must be true or false")


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
        _check(
            isinstance(self.name, str) and bool(self.name), "objective", f"must be a name, got {self.name!r}"
        )
        _check(
            isinstance(self.params, Mapping), "objective.params", f"must be a mapping, got {self.params!r}"
        )
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        _finite_number(self.beta, "beta", low=0.0)
        _finite_number(self.nsr_eps, "nsr_eps", low=0.0, low_open=True)
        _finite_number(self.at_eps, "at_eps", low=0.0, low_open=True)
        _positive_int(self.at_steps, "at_steps")
        _finite_number(self.focal_gamma, "focal_gamma", low=0.0)

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
        _choice(self.optimizer, "optimizer", OPTIMIZERS)
        _finite_number(self.lr, "lr", low=0.0, low_open=True)
        _finite_number(self.weight_decay, "weight_decay", low=0.0)
        _positive_int(self.batch_size, "batch_size")
        _positive_int(self.epochs, "epochs")
        _choice(self.balance, "balance", BALANCE)
        _choice(self.schedule, "schedule", SCHEDULES)
        if self.grad_clip is not None:
            _finite_number(self.grad_clip, "grad_clip", low=0.0, low_open=True)


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol: which beats, which attack, which noise levels.

    Robust accuracy at eps counts a beat as correct only if it is clean-correct and survives
    the attack at every eps up to this one, so the curve never rises with eps. Sequences (eps,
    attacks, noise levels, classes) may be given as lists or tuples: they are held as tuples,
    eps as sorted floats, from the YAML or the command line all the way to the attack.
    """

    eps: tuple[float, ...] = PAPER_EPS
    norm: str = "linf"
    steps: int = 100
    step_size: float | None = None  # None: 2.5 * eps / steps
    restarts: int = 1
    attack_loss: str = "worst"  # the worst case of CE and margin losses
    early_exit: bool = True
    respect_padding: bool = True  # leave the zero padding after a beat unperturbed
    clamp: bool = False  # clamp adversarial beats to [0, 1]
    per_class_cap: int | None = 300  # evaluate on at most this many beats per class (None: all)
    seed: int = 0
    batch_size: int = 512
    # Classes the headline balanced accuracy averages over. None: N, S, V, F for `inter`
    # (as EC57 and de Chazal do: DS2 has about 7 Q beats), all five for `intra`.
    balanced_classes: tuple[str, ...] | None = None
    # The attacks, in the order they run as a cascade: each attacks only the beats that every
    # attack before it left correct (as AutoAttack does); a beat is broken if any attack breaks
    # it. `steps`, `step_size`, `restarts` and `attack_loss` configure `pgd`.
    attacks: tuple[str, ...] = ("pgd",)
    apgd_steps: int = 100  # apgd_ce and apgd_t
    square_queries: int = 1000  # per beat
    sap_steps: int = 100
    # The PGD (CE loss) that `transfer` runs on its surrogate. Few steps: iterates that overfit
    # the surrogate transfer worse (Kurakin et al. 2017; Dong et al. 2018).
    transfer_steps: int = 20
    # Run the checks that flag a masked gradient (nsr_tune.evaluation.masking) after the cascade.
    check_masking: bool = False
    # Run every attack on every clean-correct beat instead of only on the beats the attacks
    # before it left correct, so that each attack's own robust accuracy is known. The cascade's
    # figures are the same per-beat worst case; the cost is the sum of the attacks run alone.
    each_attack: bool = False
    # Refine each broken beat's smallest breaking eps between grid points by this many
    # bisection steps (with the attack that broke it), for the median adversarial eps.
    bisect_steps: int = 3
    # The noise stress test (real and synthetic noise, not adversarial) at these levels: the RMS
    # of the added noise in microvolts, and the signal-to-noise ratio in dB.
    noise_stress: bool = False
    noise_uv: tuple[float, ...] = (50.0, 100.0, 200.0, 500.0)
    noise_snr_db: tuple[float, ...] = (24.0, 12.0, 6.0, 0.0)

    def __post_init__(self) -> None:
        self._check_eps()
        _choice(self.norm, "norm", NORMS)
        _positive_int(self.steps, "steps")
        if self.step_size is not None:
            _finite_number(self.step_size, "step_size", low=0.0, low_open=True)
        _positive_int(self.restarts, "restarts")
        _choice(self.attack_loss, "attack_loss", ATTACK_LOSSES)
        _positive_int(self.per_class_cap, "per_class_cap", allow_none=True)
        _positive_int(self.batch_size, "eval batch_size")
        if self.balanced_classes is not None:
            classes = _sequence(self.balanced_classes, "balanced_classes", "class names")
            _check(len(classes) > 0, "balanced_classes", "must name at least one class")
            _check(all(isinstance(c, str) for c in classes), "balanced_classes", "must be class names")
            object.__setattr__(self, "balanced_classes", classes)
        self._check_attacks()
        for name in ("apgd_steps", "square_queries", "sap_steps", "transfer_steps"):
            _positive_int(getattr(self, name), name)
        for name in ("check_masking", "each_attack", "noise_stress"):
            _check(isinstance(getattr(self, name), bool), name, "must be true or false")
        _whole_number(self.bisect_steps, "bisect_steps")
        object.__setattr__(self, "noise_uv", _levels(self.noise_uv, "noise_uv", "levels in microvolts"))
        object.__setattr__(
            self,
            "noise_snr_db",
            _levels(self.noise_snr_db, "noise_snr_db", "signal-to-noise ratios in dB", positive=False),
        )

    def _check_eps(self) -> None:
        _check(
            isinstance(self.eps, (list, tuple)) and len(self.eps) > 0,
            "eps",
            "must be a non-empty list of noise levels",
        )
        eps = _levels(self.eps, "eps", "noise levels")
        _check(len(set(eps)) == len(eps), "eps", f"has repeated values: {list(eps)}")
        object.__setattr__(self, "eps", tuple(sorted(eps)))

    def _check_attacks(self) -> None:
        attacks = _sequence(self.attacks, "attacks", "attack names")
        _check(len(attacks) > 0, "attacks", "must name at least one attack")
        for a in attacks:
            _choice(a, "attacks", ATTACKS)
        _check(len(set(attacks)) == len(attacks), "attacks", f"names an attack twice: {list(attacks)}")
        _check(
            "square" not in attacks or self.norm == "linf",
            "attacks",
            "square runs under the L-inf norm only; drop it for norm l2",
        )
        object.__setattr__(self, "attacks", attacks)


def check_multilabel_eval(config: EvalConfig, name: str = "evaluation") -> None:
    """A multi-label model is attacked with PGD on the BCE loss; the other attacks, the masking
    checks and the noise stress test are defined for one label per sample."""
    _check(
        config.attacks == ("pgd",),
        f"{name}.attacks",
        f"multi-label models run the pgd attack only (on the BCE loss), got {list(config.attacks)}",
    )
    for flag in ("check_masking", "each_attack", "noise_stress"):
        _check(not getattr(config, flag), f"{name}.{flag}", "is not available for multi-label models")


def plain(value: Any) -> Any:
    """Dataclasses, mappings and tuples as plain data (str, numbers, lists, dicts)."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def build(kind: type, value: Any) -> Any:
    """`kind(**value)` from plain data (the dataclass types its own fields); None stays None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{kind.__name__}: expected a mapping, got {value!r}")
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ConfigError(f"{kind.__name__}: unknown key(s) {', '.join(unknown)}")
    return kind(**value)


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
    # The plugins the trial runs (kind -> nsr_tune.plugins.Plugin.provenance(): name, package,
    # version, source hash), filled in by nsr_tune.trial.check_trial. A config that names them
    # refuses other code under the same names: a resumed study, a checkpoint, a Ray worker.
    plugins: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(isinstance(self.seed, int), "seed", f"must be an integer, got {self.seed!r}")
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
        _check(isinstance(self.plugins, Mapping), "plugins", f"must be a mapping, got {self.plugins!r}")
        object.__setattr__(
            self, "plugins", MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.plugins.items()})
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, numbers, lists, dicts): safe for JSON, torch weights_only files, MLflow."""
        return plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialConfig:
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"TrialConfig: unknown key(s) {', '.join(unknown)}")
        return cls(
            data=build(DataConfig, data.get("data", {})),
            model=build(ModelConfig, data.get("model", {})),
            objective=build(ObjectiveConfig, data.get("objective", {})),
            optim=build(OptimConfig, data.get("optim", {})),
            val_eval=build(EvalConfig, data.get("val_eval")),
            test_eval=build(EvalConfig, data.get("test_eval")),
            seed=data.get("seed", 0),
            rung_epochs=data.get("rung_epochs", ()),
            rung_eval=build(EvalConfig, data.get("rung_eval")),
            plugins=data.get("plugins", {}),
        )
