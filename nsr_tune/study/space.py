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

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nsr_tune.config import (
    OBJECTIVE_NAMES,
    DataConfig,
    EvalConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
    TrialConfig,
)
from nsr_tune.data import input_shape
from nsr_tune.errors import ConfigError, SpaceError
from nsr_tune.metrics import Direction, Objective
from nsr_tune.protocol import FinalConfig
from nsr_tune.study._sections import (
    parse_data,
    parse_evaluation,
    parse_final,
    parse_losses,
    parse_models,
    parse_objectives,
    parse_optim,
    parse_resources,
    parse_scheduler,
)
from nsr_tune.study._yaml import Domain, Reader, Value
from nsr_tune.study.moasha import RungSettings
from nsr_tune.study.shipped import resolve_space_path
from nsr_tune.trial import check_trial

__all__ = ["Space", "load_space", "parse_space"]

SAMPLERS = ("tpe", "nsga2", "random")


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
    objectives: tuple[Objective, ...]
    sampler: str
    sampler_seed: int
    num_samples: int
    max_concurrent: int
    start_with: tuple[Mapping[str, Any], ...]
    resources: Mapping[str, float]
    seed: int = 0
    max_failures: int = 2
    # The finalists' second evaluation on the test split (evaluation.final).
    final: FinalConfig = field(default_factory=FinalConfig)
    # search.scheduler: MO-ASHA's rungs and the cheap protocol of the rung scores; None without
    # early stopping.
    scheduler: RungSettings | None = None
    rung_eval: EvalConfig | None = None
    record_curves: bool = False  # rung scores at every epoch (search.scheduler.record_curves)

    @property
    def metrics(self) -> list[str]:
        return [m for m, _ in self.objectives]

    @property
    def directions(self) -> tuple[Direction, ...]:
        return tuple(o.direction for o in self.objectives)

    @property
    def modes(self) -> list[str]:
        """The directions as Ray Tune's searchers take them: "max" or "min"."""
        return [o.direction.value for o in self.objectives]

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
        epochs = optim.get("epochs", OptimConfig().epochs)
        if self.record_curves:
            rungs: tuple[int, ...] = tuple(range(1, epochs + 1))
        elif self.scheduler is not None:
            # Rungs before the last epoch only: the last one has the full evaluation anyway.
            rungs = tuple(e for e in self.scheduler.epochs if e < epochs)
        else:
            rungs = ()
        config = check_trial(
            TrialConfig(
                data=DataConfig(**self.data),
                model=ModelConfig(name=family, knobs=knobs, weight_norm=weight_norm),
                objective=ObjectiveConfig(name=loss, **fields)
                if loss in OBJECTIVE_NAMES
                else ObjectiveConfig(name=loss, params=fields),
                optim=OptimConfig(**optim),
                val_eval=self.search_eval,
                test_eval=self.test_eval,
                seed=self.seed,
                rung_epochs=rungs,
                rung_eval=self.rung_eval if rungs else None,
            )
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


_TOP_KEYS = (
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
)
_SEARCH_KEYS = (
    "objectives",
    "sampler",
    "seed",
    "num_samples",
    "max_concurrent",
    "start_with",
    "max_failures",
    "scheduler",
)


def parse_space(text: str, *, where: str = "<space>") -> Space:
    """Parse and validate a search space from YAML text; one helper per top-level section."""
    r = Reader(where)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpaceError(f"{where}: not valid YAML: {e}") from e
    top = r.mapping(doc, "", _TOP_KEYS)
    if not top:
        raise SpaceError(f"{where}: the file is empty")
    name = top.get("name", Path(where).stem)
    if not isinstance(name, str) or not name.strip():
        raise r.fail("name", f"expected a non-empty string, got {name!r}")
    description = top.get("description", "")
    if not isinstance(description, str):
        raise r.fail("description", "expected a string")
    data = parse_data(r, top.get("data"))
    dataset = data.get("dataset", "mitbih")
    models, weight_norm = parse_models(r, top.get("model"), dataset, input_shape(DataConfig(**data)).length)
    evals = parse_evaluation(r, top.get("evaluation"), dataset)
    search = r.mapping(top.get("search"), "search", _SEARCH_KEYS)
    sampler = search.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise r.fail("search.sampler", f"must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    start_with = search.get("start_with", [])
    if not isinstance(start_with, list) or not all(isinstance(p, Mapping) for p in start_with):
        raise r.fail("search.start_with", "expected a list of parameter mappings")
    space = Space(
        name=name,
        description=description,
        source=text,
        path=where,
        data=data,
        models=models,
        weight_norm=weight_norm,
        objectives_space=parse_losses(r, top.get("objective")),
        optim=parse_optim(r, top.get("optim")),
        search_eval=evals["search"],
        test_eval=evals["test"],
        objectives=parse_objectives(r, search.get("objectives"), evals["search"], dataset),
        sampler=sampler,
        sampler_seed=r.number(search.get("seed", 0), "search.seed", integer=True),
        num_samples=r.number(search.get("num_samples", 16), "search.num_samples", integer=True, low=1),
        max_concurrent=r.number(
            search.get("max_concurrent", 2), "search.max_concurrent", integer=True, low=1
        ),
        start_with=tuple(dict(p) for p in start_with),
        resources=parse_resources(r, top.get("resources")),
        seed=r.number(top.get("seed", 0), "seed", integer=True),
        max_failures=r.number(search.get("max_failures", 2), "search.max_failures", integer=True, low=0),
    )
    multi_label = bool(data.get("multi_label", False))
    final = parse_final(r, top.get("evaluation"), space.objectives, dataset, multi_label)
    scheduler, rung_eval, record_curves = parse_scheduler(
        r, search.get("scheduler"), space.optim, space.search_eval, space.objectives
    )
    space = dataclasses.replace(
        space, final=final, scheduler=scheduler, rung_eval=rung_eval, record_curves=record_curves
    )
    _check_start_with(r, space)
    return space


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


def _check_start_with(r: Reader, space: Space) -> None:
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


def load_space(space: str | Path) -> Space:
    path = resolve_space_path(space)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise SpaceError(f"{path}: cannot be read: {e}") from e
    return parse_space(text, where=str(path))
