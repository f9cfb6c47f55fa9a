"""Frozen configuration of one trial.

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
from nsr_tune.data._cpsc import CPSC_MAX_LEN
from nsr_tune.data._datasets import DATASETS
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
NORMS = ("linf", "l2")
ATTACK_LOSSES = ("worst", "ce", "margin")
# The attacks a protocol may chain (see nsr_tune.evaluation): PGD, APGD with the CE loss,
# APGD-T (targeted DLR), the Square attack (black box), SAP (smooth perturbations) and the
# transfer attack (PGD on a surrogate model, which the evaluation is given).
ATTACKS = ("pgd", "apgd_ce", "apgd_t", "square", "sap", "transfer")
# The noise stress test's kinds of noise: white Gaussian noise, the NSTDB's baseline wander and
# muscle artifact records, and powerline hum at 50 and 60 Hz.
NOISE_KINDS = ("white", "bw", "ma", "powerline_50hz", "powerline_60hz")
OPTIMIZERS = ("adam", "adamw", "adamax", "sgd")
# Learning-rate schedules, stepped once per epoch: constant, cosine annealing to 0 over the
# epochs, or a step decay (x0.1 at half and at three quarters of the epochs).
SCHEDULES = ("none", "cosine", "step")
BALANCE = ("balanced", "none")
# The paper's L-inf noise levels for MIT-BIH, in units of the [0, 1]-normalised beat; each
# dataset has its own (nsr_tune.data.DATASETS), which `protocol(name, dataset=...)` uses.
PAPER_EPS = DATASETS["mitbih"].eps
_ALL_CLASSES = tuple(dict.fromkeys(c for d in DATASETS.values() for c in d.classes))


@dataclass(frozen=True)
class DataConfig:
    """Which dataset a trial trains, validates and tests on, and how it is split.

    `dataset` names an entry of nsr_tune.data.DATASETS. MIT-BIH settings: `split` (inter or
    intra), `val_records`, `val_fraction` and `test_fraction`. CPSC2018 settings: `leads`
    (paper: I, II, V1-V6; all: 12), `max_len` (samples at 500 Hz), `sample_rate` (resample
    to this many Hz; None keeps 500), and the records per class held out for validation and
    test. A setting of the other dataset is refused, so a config never says more than it does.
    """

    dataset: str = "mitbih"
    split: str | None = None  # None: the dataset's default (inter; records for cpsc2018)
    seed: int = 0
    # A seeded, class-proportional subset of the training samples (None: all of them).
    max_train_beats: int | None = None
    val_records: tuple[int, ...] | None = None  # None: the data module's default for `inter`
    val_fraction: float = 0.1  # `intra` only
    test_fraction: float = 0.2  # `intra` only
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


_MITBIH_ONLY = ("val_records", "val_fraction", "test_fraction")
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


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol: which beats, which attack, which noise levels.

    Robust accuracy at eps counts a beat as correct only if it is clean-correct and survives
    the attack at every eps up to this one, so the curve never rises with eps.
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
    # Run the checks that flag a masked gradient (nsr_tune.masking) after the cascade.
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
        eps = tuple(float(e) for e in self.eps) if isinstance(self.eps, (list, tuple)) else self.eps
        _check(isinstance(eps, tuple) and len(eps) > 0, "eps", "must be a non-empty list of noise levels")
        for e in eps:
            _finite_number(e, "eps", low=0.0, low_open=True)
        _check(len(set(eps)) == len(eps), "eps", f"has repeated values: {list(eps)}")
        object.__setattr__(self, "eps", tuple(sorted(eps)))
        _choice(self.norm, "norm", NORMS)
        _positive_int(self.steps, "steps")
        if self.step_size is not None:
            _finite_number(self.step_size, "step_size", low=0.0, low_open=True)
        _positive_int(self.restarts, "restarts")
        _choice(self.attack_loss, "attack_loss", ATTACK_LOSSES)
        _positive_int(self.per_class_cap, "per_class_cap", allow_none=True)
        _positive_int(self.batch_size, "eval batch_size")
        if self.balanced_classes is not None:
            object.__setattr__(self, "balanced_classes", tuple(self.balanced_classes))
            for c in self.balanced_classes:
                _choice(c, "balanced_classes", _ALL_CLASSES)
            _check(len(self.balanced_classes) > 0, "balanced_classes", "must name at least one class")
        attacks = tuple(self.attacks) if isinstance(self.attacks, (list, tuple)) else self.attacks
        _check(isinstance(attacks, tuple) and len(attacks) > 0, "attacks", "must name at least one attack")
        for a in attacks:
            _choice(a, "attacks", ATTACKS)
        _check(len(set(attacks)) == len(attacks), "attacks", f"names an attack twice: {list(attacks)}")
        _check(
            "square" not in attacks or self.norm == "linf",
            "attacks",
            "square runs under the L-inf norm only; drop it for norm l2",
        )
        object.__setattr__(self, "attacks", attacks)
        for name in ("apgd_steps", "square_queries", "sap_steps", "transfer_steps"):
            _positive_int(getattr(self, name), name)
        for name in ("check_masking", "each_attack", "noise_stress"):
            _check(isinstance(getattr(self, name), bool), name, "must be true or false")
        _check(
            isinstance(self.bisect_steps, int)
            and not isinstance(self.bisect_steps, bool)
            and self.bisect_steps >= 0,
            "bisect_steps",
            f"must be a whole number >= 0, got {self.bisect_steps!r}",
        )
        uv = tuple(self.noise_uv) if isinstance(self.noise_uv, (list, tuple)) else self.noise_uv
        _check(isinstance(uv, tuple), "noise_uv", "must be a list of levels in microvolts")
        for v in uv:
            _finite_number(v, "noise_uv", low=0.0, low_open=True)
        object.__setattr__(self, "noise_uv", tuple(float(v) for v in uv))
        snr = tuple(self.noise_snr_db) if isinstance(self.noise_snr_db, (list, tuple)) else self.noise_snr_db
        _check(isinstance(snr, tuple), "noise_snr_db", "must be a list of signal-to-noise ratios in dB")
        for v in snr:
            _finite_number(v, "noise_snr_db")
        object.__setattr__(self, "noise_snr_db", tuple(float(v) for v in snr))


# The named evaluation protocols, shared by the CLI, the Python API and the search spaces.
# `quick` is what a study scores every trial with on validation beats; `standard` is the
# held-out report of a model (the paper's eps list, PGD-100, 300 beats per class); `strong`
# chains gradient-based, black-box, smooth and transfer attacks on the same beats, so that a
# masked gradient cannot pass for robustness, checks for signs of masking, and runs the noise
# stress test.
PROTOCOLS: Mapping[str, EvalConfig] = MappingProxyType(
    {
        "quick": EvalConfig(eps=(0.01, 0.05, 0.1), steps=20, per_class_cap=150, bisect_steps=0),
        "standard": EvalConfig(),
        "strong": EvalConfig(
            attacks=("apgd_ce", "apgd_t", "square", "sap", "transfer"), check_masking=True, noise_stress=True
        ),
    }
)


# What a study's finalists are evaluated with by default: the strong protocol, on more test beats
# than the search's quick attack saw (a class with fewer beats is taken whole).
FINAL_EVAL = dataclasses.replace(PROTOCOLS["strong"], per_class_cap=1000)


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


def protocol(name: str, dataset: str = "mitbih", **overrides: Any) -> EvalConfig:
    """The protocol called `name` for `dataset`, with some of its fields replaced (each checked
    as usual). Without an `eps` override it runs at the dataset's own grid."""
    _choice(name, "protocol", tuple(PROTOCOLS))
    _choice(dataset, "dataset", tuple(DATASETS))
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    unknown = sorted(set(overrides) - fields)
    _check(not unknown, "evaluation", f"unknown setting(s) {', '.join(unknown)}")
    if "eps" not in overrides:
        spec = DATASETS[dataset]
        overrides["eps"] = spec.quick_eps if name == "quick" else spec.eps
    return dataclasses.replace(PROTOCOLS[name], **overrides)


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

    def build_model(self) -> Any:
        """The untrained model this config describes, shaped for its dataset's leads and classes."""
        from nsr_tune.models import build_model

        return build_model(
            self.model.name, self.model.knobs, n_classes=self.data.n_classes, in_leads=self.data.n_leads
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
        )
