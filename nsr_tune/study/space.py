"""Search spaces: YAML -> a validated `Space` -> an Optuna define-by-run function.

Tune's plain `param_space` cannot say "the ResNet's width only exists when the model is a
ResNet" or "beta only exists for the NSR and Jacobian losses"; an Optuna define-by-run function
can, and `OptunaSearch` accepts one. A YAML value in a searchable place is either fixed (a plain
value) or a domain:

    {choice: [a, b, c]}
    {float: [low, high], log: true}            # log and step are optional
    {float: [low, high], log: true, include_zero: true}   # 0 is reachable too (a baseline)
    {int: [low, high], log: false, step: 2}

The whole file is checked before any trial starts; a `SpaceError` names the file, the key and
what is wrong.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nsr_tune.config import (
    BALANCE,
    OPTIMIZERS,
    DataConfig,
    EvalConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
    TrialConfig,
)
from nsr_tune.errors import ConfigError, NsrTuneError

__all__ = ["SPACES_DIR", "Domain", "Space", "SpaceError", "load_space", "parse_space", "resolve_space_path"]

SPACES_DIR = Path(__file__).resolve().parent.parent / "search_spaces"

SAMPLERS = ("tpe", "nsga2", "random")
# Objective fields that a space may set per loss, and which losses have a weight at all.
OBJECTIVE_FIELDS = ("beta", "nsr_eps", "at_eps", "at_steps")
WEIGHTED = ("nsr", "nsr_ce", "jacobian")
OPTIM_FIELDS = ("optimizer", "lr", "weight_decay", "batch_size", "epochs", "balance", "grad_clip")
DATA_FIELDS = ("split", "max_train_beats", "seed", "val_records")
EVAL_FIELDS = (
    "eps",
    "norm",
    "steps",
    "step_size",
    "restarts",
    "attack_loss",
    "per_class_cap",
    "seed",
    "batch_size",
)
DEFAULT_OBJECTIVES = (("val_balanced_acc", "max"), ("val_robust_balanced_acc_eps_0.05", "max"))


class SpaceError(NsrTuneError):
    """A search-space file that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Domain:
    """One searched value: a categorical choice, or a float/int range."""

    kind: str  # "choice" | "float" | "int"
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    include_zero: bool = False

    def suggest(self, trial: Any, name: str) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.choices))
        if self.include_zero and trial.suggest_categorical(f"{name}.is_zero", [False, True]):
            return 0.0
        if self.kind == "int":
            return trial.suggest_int(
                name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def values_for_check(self) -> list[Any]:
        """Representative values, to check a domain against the config's own rules."""
        if self.kind == "choice":
            return list(self.choices)
        values = [self.low, self.high]
        return (
            [int(v) for v in values] if self.kind == "int" else values + ([0.0] if self.include_zero else [])
        )


Value = Any  # a fixed value or a Domain


@dataclass(frozen=True)
class Space:
    name: str
    description: str
    source: str  # the YAML text, logged with the study
    path: str
    data: Mapping[str, Any]
    models: Mapping[str, Mapping[str, Value]]  # family -> knob -> value
    weight_norm: Value
    objectives_space: Mapping[str, Mapping[str, Value]]  # loss name -> field -> value
    optim: Mapping[str, Value]
    search_eval: EvalConfig
    test_eval: EvalConfig
    objectives: tuple[tuple[str, str], ...]  # (metric, "max" | "min")
    sampler: str
    sampler_seed: int
    num_samples: int
    max_concurrent: int
    start_with: tuple[Mapping[str, Any], ...]
    resources: Mapping[str, float]
    seed: int = 0
    max_failures: int = 2

    @property
    def metrics(self) -> list[str]:
        return [m for m, _ in self.objectives]

    @property
    def modes(self) -> list[str]:
        return [d for _, d in self.objectives]

    def define_by_run(self, trial: Any) -> dict[str, Any]:
        """Optuna define-by-run: suggest the conditional knobs, return the full trial config.

        The returned dict becomes part of the Tune config, so the trainable sees only `config`.
        """
        params: dict[str, Any] = {}

        def pick(name: str, value: Value) -> Any:
            params[name] = value.suggest(trial, name) if isinstance(value, Domain) else value
            return params[name]

        family = pick(
            "model", Domain("choice", tuple(self.models)) if len(self.models) > 1 else next(iter(self.models))
        )
        knobs = {k: pick(f"model.{family}.{k}", v) for k, v in self.models[family].items()}
        weight_norm = pick("model.weight_norm", self.weight_norm)
        losses = tuple(self.objectives_space)
        loss = pick("objective", Domain("choice", losses) if len(losses) > 1 else losses[0])
        fields = {k: pick(f"objective.{loss}.{k}", v) for k, v in self.objectives_space[loss].items()}
        optim = {k: pick(f"optim.{k}", v) for k, v in self.optim.items()}
        config = TrialConfig(
            data=DataConfig(**self.data),
            model=ModelConfig(name=family, knobs=knobs, weight_norm=weight_norm),
            objective=ObjectiveConfig(name=loss, **fields),
            optim=OptimConfig(**optim),
            val_eval=self.search_eval,
            test_eval=self.test_eval,
            seed=self.seed,
        )
        return {"trial_config": config.to_dict()}

    def sampler_instance(self) -> Any:
        import optuna

        if self.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=self.sampler_seed)
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=self.sampler_seed)
        # multivariate + group: TPE models the conditional knobs of each model family and loss
        # jointly rather than as independent marginals. Both are flagged experimental by Optuna.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=self.sampler_seed, multivariate=True, group=True)


# ---------------------------------------------------------------------------- parsing


class _Reader:
    """Walks the YAML with the key path in hand, so every error can name where it is."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, message: str) -> SpaceError:
        return SpaceError(f"{self.where}: {key}: {message}")

    def mapping(self, node: Any, key: str, allowed: Sequence[str] | None = None) -> dict[str, Any]:
        if node is None:
            return {}
        if not isinstance(node, Mapping):
            raise self.fail(key, f"expected a mapping, got {type(node).__name__} {node!r}")
        for k in node:
            if not isinstance(k, str):
                raise self.fail(key, f"keys must be strings, got {k!r}")
        if allowed is not None:
            unknown = sorted(set(node) - set(allowed))
            if unknown:
                raise self.fail(
                    f"{key}.{unknown[0]}" if key else unknown[0],
                    f"unknown key; expected one of {', '.join(allowed)}",
                )
        return dict(node)

    def number(self, node: Any, key: str, *, integer: bool = False, low: float | None = None) -> Any:
        ok = isinstance(node, int) if integer else isinstance(node, (int, float))
        if not ok or isinstance(node, bool) or (isinstance(node, float) and not math.isfinite(node)):
            raise self.fail(key, f"expected {'an integer' if integer else 'a number'}, got {node!r}")
        if low is not None and node < low:
            raise self.fail(key, f"must be >= {low}, got {node!r}")
        return node

    def value(self, node: Any, key: str, *, kind: type | tuple[type, ...]) -> Value:
        """A fixed value of `kind`, or a domain over such values."""
        if isinstance(node, Mapping):
            return self.domain(node, key, kind=kind)
        self._check_kind(node, key, kind)
        return node

    def _check_kind(self, node: Any, key: str, kind: type | tuple[type, ...]) -> None:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if bool not in kinds and isinstance(node, bool):
            raise self.fail(key, f"expected {_kind_name(kinds)}, got {node!r}")
        if float in kinds and isinstance(node, int) and not isinstance(node, bool):
            return
        if not isinstance(node, kinds):
            raise self.fail(key, f"expected {_kind_name(kinds)}, got {type(node).__name__} {node!r}")

    def domain(self, node: Mapping[str, Any], key: str, *, kind: type | tuple[type, ...]) -> Domain:
        node = self.mapping(node, key, ("choice", "float", "int", "log", "step", "include_zero"))
        kinds = [k for k in ("choice", "float", "int") if k in node]
        if len(kinds) != 1:
            raise self.fail(key, "a search domain needs exactly one of choice, float, int")
        which = kinds[0]
        if which == "choice":
            choices = node["choice"]
            if not isinstance(choices, list):
                raise self.fail(key, f"choice: expected a list, got {choices!r}")
            if not choices:
                raise self.fail(key, "choice: empty list of choices")
            for c in choices:
                self._check_kind(c, key, kind)
            extra = set(node) - {"choice"}
            if extra:
                raise self.fail(key, f"{sorted(extra)[0]}: only for float and int ranges")
            return Domain("choice", tuple(choices))
        kinds_t = kind if isinstance(kind, tuple) else (kind,)
        if which == "float" and float not in kinds_t:
            raise self.fail(key, f"a float range is not allowed here (expected {_kind_name(kinds_t)})")
        if which == "int" and int not in kinds_t:
            raise self.fail(key, f"an int range is not allowed here (expected {_kind_name(kinds_t)})")
        bounds = node[which]
        if not (isinstance(bounds, list) and len(bounds) == 2):
            raise self.fail(key, f"{which}: expected [low, high], got {bounds!r}")
        low = self.number(bounds[0], f"{key}.{which}[0]", integer=which == "int")
        high = self.number(bounds[1], f"{key}.{which}[1]", integer=which == "int")
        if low > high:
            raise self.fail(key, f"low {low} > high {high}")
        log = node.get("log", False)
        if not isinstance(log, bool):
            raise self.fail(f"{key}.log", f"expected true or false, got {log!r}")
        if log and low <= 0:
            raise self.fail(key, f"a log range needs low > 0, got {low}")
        step = node.get("step")
        if step is not None:
            step = self.number(step, f"{key}.step", integer=which == "int", low=0)
            if log:
                raise self.fail(key, "step and log cannot be combined")
        include_zero = node.get("include_zero", False)
        if not isinstance(include_zero, bool):
            raise self.fail(f"{key}.include_zero", f"expected true or false, got {include_zero!r}")
        return Domain(which, low=low, high=high, log=log, step=step, include_zero=include_zero)


def _kind_name(kinds: Sequence[type]) -> str:
    return " or ".join(
        {bool: "true/false", int: "an integer", float: "a number", str: "a string"}[k] for k in kinds
    )


def _check_with_config(reader: _Reader, key: str, value: Value, build: Any) -> None:
    """Run the config class's own checks on every representative value of a (possibly searched) field."""
    for v in value.values_for_check() if isinstance(value, Domain) else [value]:
        try:
            build(v)
        except ConfigError as e:
            raise reader.fail(key, str(e)) from e


def parse_space(text: str, *, where: str = "<space>") -> Space:
    """Parse and validate a search space from YAML text."""
    r = _Reader(where)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpaceError(f"{where}: not valid YAML: {e}") from e
    top = r.mapping(
        doc,
        "",
        (
            "name",
            "description",
            "data",
            "model",
            "objective",
            "optim",
            "evaluation",
            "search",
            "resources",
            "seed",
        ),
    )
    if not top:
        raise SpaceError(f"{where}: the file is empty")
    name = top.get("name", Path(where).stem)
    if not isinstance(name, str) or not name.strip():
        raise r.fail("name", f"expected a non-empty string, got {name!r}")
    description = top.get("description", "")
    if not isinstance(description, str):
        raise r.fail("description", "expected a string")
    seed = r.number(top.get("seed", 0), "seed", integer=True)

    data = r.mapping(top.get("data"), "data", DATA_FIELDS)
    if isinstance(data.get("val_records"), list):
        data["val_records"] = tuple(data["val_records"])
    try:
        DataConfig(**data)
    except (ConfigError, TypeError) as e:
        raise r.fail("data", str(e)) from e

    # model: families (each with its knobs) and the weight normalisation switch
    from nsr_tune.models import MODELS

    model = r.mapping(top.get("model"), "model", ("families", "weight_norm"))
    families = r.mapping(model.get("families"), "model.families")
    if not families:
        raise r.fail("model.families", "name at least one model family")
    models: dict[str, dict[str, Value]] = {}
    for family, knobs_node in families.items():
        if family not in MODELS:
            raise r.fail(f"model.families.{family}", f"unknown model; choose from {', '.join(MODELS)}")
        knobs = r.mapping(knobs_node, f"model.families.{family}", tuple(MODELS[family].knobs))
        models[family] = {}
        for knob, node in knobs.items():
            key = f"model.families.{family}.{knob}"
            value = r.value(node, key, kind=int)
            _check_with_config(r, key, value, lambda v, f=family, k=knob: ModelConfig(name=f, knobs={k: v}))
            models[family][knob] = value
    weight_norm = r.value(model.get("weight_norm", False), "model.weight_norm", kind=bool)

    # objective: the losses (each with its fields)
    from nsr_tune.objectives import OBJECTIVES

    objective = r.mapping(top.get("objective"), "objective", ("choices",))
    losses = r.mapping(objective.get("choices"), "objective.choices")
    if not losses:
        raise r.fail("objective.choices", "name at least one objective")
    objectives_space: dict[str, dict[str, Value]] = {}
    for loss, fields_node in losses.items():
        if loss not in OBJECTIVES:
            raise r.fail(
                f"objective.choices.{loss}", f"unknown objective; choose from {', '.join(OBJECTIVES)}"
            )
        allowed = OBJECTIVE_FIELDS if loss in WEIGHTED else tuple(f for f in OBJECTIVE_FIELDS if f != "beta")
        fields = r.mapping(fields_node, f"objective.choices.{loss}", allowed)
        objectives_space[loss] = {}
        for f, node in fields.items():
            key = f"objective.choices.{loss}.{f}"
            value = r.value(node, key, kind=int if f == "at_steps" else float)
            if f == "beta":
                for v in value.values_for_check() if isinstance(value, Domain) else [value]:
                    if v < 0:
                        raise r.fail(key, f"beta must be >= 0, got {v}")
            _check_with_config(r, key, value, lambda v, n=loss, f=f: ObjectiveConfig(name=n, **{f: v}))
            objectives_space[loss][f] = value

    optim_node = r.mapping(top.get("optim"), "optim", OPTIM_FIELDS)
    optim: dict[str, Value] = {}
    kinds: dict[str, Any] = {
        "optimizer": str,
        "lr": float,
        "weight_decay": float,
        "batch_size": int,
        "epochs": int,
        "balance": str,
        "grad_clip": float,
    }
    for f, node in optim_node.items():
        key = f"optim.{f}"
        if f == "grad_clip" and node is None:  # null turns gradient clipping off
            optim[f] = None
            continue
        value = r.value(node, key, kind=kinds[f])
        if f == "optimizer" and not isinstance(value, Domain) and value not in OPTIMIZERS:
            raise r.fail(key, f"must be one of {', '.join(OPTIMIZERS)}")
        if f == "balance" and not isinstance(value, Domain) and value not in BALANCE:
            raise r.fail(key, f"must be one of {', '.join(BALANCE)}")
        _check_with_config(r, key, value, lambda v, f=f: OptimConfig(**{f: v}))
        optim[f] = value

    evaluation = r.mapping(top.get("evaluation"), "evaluation", ("search", "test"))
    evals = {}
    for part, defaults in (
        ("search", {"eps": [0.01, 0.05, 0.1], "steps": 20, "per_class_cap": 150}),
        ("test", {"steps": 100, "per_class_cap": 300}),
    ):
        node = r.mapping(evaluation.get(part), f"evaluation.{part}", EVAL_FIELDS)
        merged = {**defaults, **node}
        eps = merged.get("eps")
        if eps is not None and (not isinstance(eps, list) or not eps):
            raise r.fail(f"evaluation.{part}.eps", "expected a non-empty list of noise levels")
        for k, v in merged.items():
            if isinstance(v, Mapping):
                raise r.fail(
                    f"evaluation.{part}.{k}", "evaluation settings are fixed for a study, not searched"
                )
        try:
            evals[part] = EvalConfig(**{k: tuple(v) if k == "eps" else v for k, v in merged.items()})
        except (ConfigError, TypeError) as e:
            raise r.fail(f"evaluation.{part}", str(e)) from e

    search = r.mapping(
        top.get("search"),
        "search",
        ("objectives", "sampler", "seed", "num_samples", "max_concurrent", "start_with", "max_failures"),
    )
    objectives = _objectives(r, search.get("objectives"), evals["search"])
    sampler = search.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise r.fail("search.sampler", f"must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    start_with = search.get("start_with", [])
    if not isinstance(start_with, list) or not all(isinstance(p, Mapping) for p in start_with):
        raise r.fail("search.start_with", "expected a list of parameter mappings")

    resources = r.mapping(top.get("resources"), "resources", ("cpu", "gpu"))
    cpu = r.number(resources.get("cpu", 1), "resources.cpu")
    gpu = r.number(resources.get("gpu", 0), "resources.gpu", low=0)
    if cpu <= 0:
        raise r.fail("resources.cpu", f"must be > 0, got {cpu}")

    space = Space(
        name=name,
        description=description,
        source=text,
        path=where,
        data=data,
        models=models,
        weight_norm=weight_norm,
        objectives_space=objectives_space,
        optim=optim,
        search_eval=evals["search"],
        test_eval=evals["test"],
        objectives=objectives,
        sampler=sampler,
        sampler_seed=r.number(search.get("seed", 0), "search.seed", integer=True),
        num_samples=r.number(search.get("num_samples", 16), "search.num_samples", integer=True, low=1),
        max_concurrent=r.number(
            search.get("max_concurrent", 2), "search.max_concurrent", integer=True, low=1
        ),
        start_with=tuple(dict(p) for p in start_with),
        resources={"cpu": float(cpu), "gpu": float(gpu)},
        seed=seed,
        max_failures=r.number(search.get("max_failures", 2), "search.max_failures", integer=True, low=0),
    )
    _check_start_with(r, space)
    return space


def _objectives(r: _Reader, node: Any, search_eval: EvalConfig) -> tuple[tuple[str, str], ...]:
    if node is None:
        pairs = list(DEFAULT_OBJECTIVES)
    else:
        if not isinstance(node, list) or not node:
            raise r.fail("search.objectives", "expected a non-empty list of {metric, mode}")
        pairs = []
        for i, item in enumerate(node):
            item = r.mapping(item, f"search.objectives[{i}]", ("metric", "mode"))
            pairs.append((item.get("metric"), item.get("mode", "max")))
    known = {"val_clean_acc", "val_balanced_acc", "val_robust_auc", "val_robust_balanced_auc"}
    for e in search_eval.eps:
        known |= {
            f"val_robust_acc_eps_{e:g}",
            f"val_robust_balanced_acc_eps_{e:g}",
            f"val_noise_acc_eps_{e:g}",
        }
    for i, (metric, mode) in enumerate(pairs):
        if metric not in known:
            raise r.fail(
                f"search.objectives[{i}].metric",
                f"unknown metric {metric!r}; with evaluation.search.eps = {list(search_eval.eps)} "
                f"choose from {', '.join(sorted(known))}",
            )
        if mode not in ("max", "min"):
            raise r.fail(f"search.objectives[{i}].mode", f"must be max or min, got {mode!r}")
    if len({m for m, _ in pairs}) != len(pairs):
        raise r.fail("search.objectives", "lists a metric twice")
    return tuple(pairs)


class _PointTrial:
    """Stands in for an Optuna trial with the values of one `start_with` point.

    Optuna's enqueue_trial accepts partial points (the rest is sampled), so a missing parameter
    takes the first choice or the low end here; a given one must lie in its domain.
    """

    def __init__(self, point: Mapping[str, Any]) -> None:
        self.point = dict(point)
        self.used: set[str] = set()

    def _get(self, name: str, default: Any) -> Any:
        self.used.add(name)
        return self.point.get(name, default)

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        value = self._get(name, choices[0])
        if value not in choices:
            raise ConfigError(f"{name}: {value!r} is not one of {choices}")
        return value

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        value = self._get(name, low)
        if not (isinstance(value, (int, float)) and low <= value <= high):
            raise ConfigError(f"{name}: {value!r} is outside [{low}, {high}]")
        return float(value)

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        value = self._get(name, low)
        if not (isinstance(value, int) and low <= value <= high):
            raise ConfigError(f"{name}: {value!r} is not an integer in [{low}, {high}]")
        return value


def _check_start_with(r: _Reader, space: Space) -> None:
    """Every enqueued point must be a valid trial of this space."""
    for i, point in enumerate(space.start_with):
        trial = _PointTrial(point)
        try:
            space.define_by_run(trial)
        except ConfigError as e:
            raise r.fail(f"search.start_with[{i}]", str(e)) from e
        unused = sorted(set(point) - trial.used)
        if unused:
            raise r.fail(f"search.start_with[{i}]", f"{unused[0]} is not a searched parameter of this trial")


def resolve_space_path(space: str | Path) -> Path:
    """A path to a YAML file, or the name of a space shipped with nsr-tune (e.g. `mitbih_wide`)."""
    path = Path(space)
    if path.is_file():
        return path
    shipped = SPACES_DIR / f"{path.stem}.yaml"
    if path.suffix in ("", ".yaml", ".yml") and shipped.is_file() and len(path.parts) <= 2:
        return shipped
    names = ", ".join(sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))
    raise SpaceError(f"--space: {space}: no such file, and not a shipped space ({names})")


def load_space(space: str | Path) -> Space:
    path = resolve_space_path(space)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise SpaceError(f"{path}: cannot be read: {e}") from e
    return parse_space(text, where=str(path))
