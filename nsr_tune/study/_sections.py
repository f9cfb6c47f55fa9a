"""One parser per top-level section of a search-space file (data, model, objective, optim,
evaluation, resources, search objectives). Each returns plain values or `Domain`s and checks
them with the config classes' own rules, so a space fails before any trial starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from nsr_tune.config import (
    BALANCE,
    OBJECTIVE_FIELDS,
    OBJECTIVE_NAMES,
    OPTIMIZERS,
    WEIGHTED,
    DataConfig,
    EvalConfig,
    ObjectiveConfig,
    OptimConfig,
)
from nsr_tune.data import absolute_dataset, check_data, dataset_spec
from nsr_tune.errors import ConfigError
from nsr_tune.metrics import CURVE_KINDS, Objective, objective_names, objectives_eps, parse_metric
from nsr_tune.models import check_model_input, check_model_knobs, model_spec
from nsr_tune.objectives import check_objective
from nsr_tune.protocol import FINAL_EVAL, PROTOCOLS, FinalConfig, protocol
from nsr_tune.study._yaml import Domain, Reader, Value, check_with_config
from nsr_tune.study.moasha import RungSettings

OPTIM_FIELDS = (
    "optimizer",
    "lr",
    "weight_decay",
    "batch_size",
    "epochs",
    "balance",
    "grad_clip",
    "schedule",
)
DATA_FIELDS = (
    "dataset",
    "split",
    "max_train_beats",
    "seed",
    "val_records",
    "val_fraction",
    "test_fraction",
    "input",
    "leads",
    "max_len",
    "sample_rate",
    "val_per_class",
    "test_per_class",
    "multi_label",
    "lead",
)
EVAL_FIELDS = (
    "protocol",
    "eps",
    "norm",
    "steps",
    "step_size",
    "restarts",
    "attack_loss",
    "per_class_cap",
    "seed",
    "batch_size",
    "attacks",
    "apgd_steps",
    "square_queries",
    "sap_steps",
    "transfer_steps",
    "check_masking",
    "each_attack",
    "bisect_steps",
    "noise_stress",
    "noise_uv",
    "noise_snr_db",
)
# The protocol each evaluation section starts from; `protocol: NAME` in the section picks another.
DEFAULT_PROTOCOLS = {"search": "quick", "test": "standard"}
# evaluation.final: the finalists' second evaluation (FinalConfig), besides the EvalConfig fields.
FINAL_FIELDS = ("top_ranks", "bootstrap", "ci")


def parse_data(r: Reader, node: Any) -> dict[str, Any]:
    data = r.mapping(node, "data", DATA_FIELDS)
    if isinstance(data.get("dataset"), str):
        data["dataset"] = absolute_dataset(data["dataset"])
    try:
        check_data(DataConfig(**data))
    except (ConfigError, TypeError) as e:
        raise r.fail("data", str(e)) from e
    return data


def parse_models(
    r: Reader, node: Any, dataset: str, in_len: int | None = None
) -> tuple[dict[str, dict[str, Value]], Value]:
    """model: families (each with its knobs, each offered for `dataset` and able to take inputs of
    `in_len` samples) and the weight normalisation."""
    model = r.mapping(node, "model", ("families", "weight_norm"))
    families = r.mapping(model.get("families"), "model.families")
    if not families:
        raise r.fail("model.families", "name at least one model family")
    models: dict[str, dict[str, Value]] = {}
    for family, knobs_node in families.items():
        try:
            spec = model_spec(family)
        except ConfigError as e:
            raise r.fail(f"model.families.{family}", str(e).removeprefix("model: ")) from e
        offered = dataset_spec(dataset).models
        if family not in offered and spec.plugin is None:
            raise r.fail(
                f"model.families.{family}", f"not offered for {dataset}; choose from {', '.join(offered)}"
            )
        knobs = r.mapping(knobs_node, f"model.families.{family}", tuple(spec.knobs))
        models[family] = {}
        for knob, knob_node in knobs.items():
            key = f"model.families.{family}.{knob}"
            value = r.value(knob_node, key, kind=spec.knobs[knob][0])
            check_with_config(
                r,
                key,
                value,
                lambda v, f=family, k=knob: (
                    check_model_knobs(f, {k: v}),
                    check_model_input(f, {k: v}, in_len),
                ),
            )
            models[family][knob] = value
    return models, r.value(model.get("weight_norm", False), "model.weight_norm", kind=bool)


def parse_losses(r: Reader, node: Any) -> dict[str, dict[str, Value]]:
    """objective: the losses (each with its fields)."""
    objective = r.mapping(node, "objective", ("choices",))
    losses = r.mapping(objective.get("choices"), "objective.choices")
    if not losses:
        raise r.fail("objective.choices", "name at least one objective")
    out: dict[str, dict[str, Value]] = {}
    for loss, fields_node in losses.items():
        if loss not in OBJECTIVE_NAMES:
            out[loss] = _plugin_loss(r, loss, fields_node)
            continue
        allowed = OBJECTIVE_FIELDS if loss in WEIGHTED else tuple(f for f in OBJECTIVE_FIELDS if f != "beta")
        fields = r.mapping(fields_node, f"objective.choices.{loss}", allowed)
        out[loss] = {}
        for f, field_node in fields.items():
            key = f"objective.choices.{loss}.{f}"
            value = r.value(field_node, key, kind=int if f == "at_steps" else float)
            check_with_config(r, key, value, lambda v, n=loss, f=f: ObjectiveConfig(name=n, **{f: v}))
            out[loss][f] = value
    return out


def _plugin_loss(r: Reader, loss: str, node: Any) -> dict[str, Value]:
    """A plugin objective's own settings, typed by its config's defaults and checked by it."""
    key = f"objective.choices.{loss}"
    try:
        plugin = check_objective(ObjectiveConfig(name=loss))
    except ConfigError as e:
        raise r.fail(key, str(e).removeprefix("objective: ")) from e
    if plugin is None:  # a programming error: OBJECTIVE_NAMES and the registry agree
        raise RuntimeError(f"{loss} is a built-in objective")
    fields = plugin.fields
    out: dict[str, Value] = {}
    for f, field_node in r.mapping(node, key, tuple(fields)).items():
        value = r.value(field_node, f"{key}.{f}", kind=fields[f][0])
        check_with_config(r, f"{key}.{f}", value, lambda v, f=f: plugin.config({f: v}))
        out[f] = value
    return out


_OPTIM_KINDS: Mapping[str, Any] = {
    "optimizer": str,
    "lr": float,
    "weight_decay": float,
    "batch_size": int,
    "epochs": int,
    "balance": str,
    "grad_clip": float,
    "schedule": str,
}


def parse_optim(r: Reader, node: Any) -> dict[str, Value]:
    optim_node = r.mapping(node, "optim", OPTIM_FIELDS)
    optim: dict[str, Value] = {}
    for f, field_node in optim_node.items():
        key = f"optim.{f}"
        if f == "grad_clip" and field_node is None:  # null turns gradient clipping off
            optim[f] = None
            continue
        value = r.value(field_node, key, kind=_OPTIM_KINDS[f])
        if f == "optimizer" and not isinstance(value, Domain) and value not in OPTIMIZERS:
            raise r.fail(key, f"must be one of {', '.join(OPTIMIZERS)}")
        if f == "balance" and not isinstance(value, Domain) and value not in BALANCE:
            raise r.fail(key, f"must be one of {', '.join(BALANCE)}")
        check_with_config(r, key, value, lambda v, f=f: OptimConfig(**{f: v}))
        optim[f] = value
    return optim


def parse_evaluation(r: Reader, node: Any, dataset: str) -> dict[str, EvalConfig]:
    """evaluation.search / evaluation.test: a named protocol (see PROTOCOLS) at `dataset`'s eps
    grid, then overrides."""
    evaluation = r.mapping(node, "evaluation", (*DEFAULT_PROTOCOLS, "final"))
    evals = {}
    for part, default in DEFAULT_PROTOCOLS.items():
        section = r.mapping(evaluation.get(part), f"evaluation.{part}", EVAL_FIELDS)
        name = section.pop("protocol", default)
        if name not in PROTOCOLS:
            raise r.fail(
                f"evaluation.{part}.protocol", f"must be one of {', '.join(PROTOCOLS)}, got {name!r}"
            )
        eps = section.get("eps")
        if eps is not None and (not isinstance(eps, list) or not eps):
            raise r.fail(f"evaluation.{part}.eps", "expected a non-empty list of noise levels")
        for k, v in section.items():
            if isinstance(v, Mapping):
                raise r.fail(
                    f"evaluation.{part}.{k}", "evaluation settings are fixed for a study, not searched"
                )
        try:
            evals[part] = protocol(name, dataset, **section)
        except (ConfigError, TypeError) as e:
            raise r.fail(f"evaluation.{part}", str(e)) from e
    return evals


def parse_final(
    r: Reader, node: Any, objectives: tuple[Objective, ...], dataset: str, multi_label: bool = False
) -> FinalConfig:
    """evaluation.final: who the finalists are, and the protocol they are evaluated with again.

    It starts from FINAL_EVAL (the strong protocol on up to 1000 test beats per class); without
    an `eps` list of its own, the noise levels of the search objectives are added to its grid,
    so that every objective has a final counterpart.
    """
    evaluation = r.mapping(node, "evaluation", (*DEFAULT_PROTOCOLS, "final"))
    section = r.mapping(evaluation.get("final"), "evaluation.final", (*EVAL_FIELDS, *FINAL_FIELDS))
    for k, v in section.items():
        if isinstance(v, Mapping):
            raise r.fail(f"evaluation.final.{k}", "evaluation settings are fixed for a study, not searched")
    stage = {k: section.pop(k) for k in FINAL_FIELDS if k in section}
    name = section.pop("protocol", None)
    if name is not None and name not in PROTOCOLS:
        raise r.fail("evaluation.final.protocol", f"must be one of {', '.join(PROTOCOLS)}, got {name!r}")
    needed = objectives_eps(objectives)
    eps = section.get("eps")
    if eps is not None and (not isinstance(eps, list) or not eps):
        raise r.fail("evaluation.final.eps", "expected a non-empty list of noise levels")
    try:
        # FINAL_EVAL is the strong protocol with a larger cap; at the dataset's own eps grid.
        # A multi-label model runs PGD only, so its finalists start from `standard` instead.
        start = "standard" if multi_label else "strong"
        final_eval = protocol(start, dataset, per_class_cap=FINAL_EVAL.per_class_cap)
        if eps is None:
            cap = FINAL_EVAL.per_class_cap
            base = final_eval if name is None else protocol(name, dataset, per_class_cap=cap)
            section["eps"] = sorted({*base.eps, *needed})
        evaluation_config = (
            dataclasses.replace(final_eval, **section) if name is None else protocol(name, dataset, **section)
        )
        final = FinalConfig(evaluation=evaluation_config, **stage)
    except (ConfigError, TypeError) as e:
        raise r.fail("evaluation.final", str(e)) from e
    missing = [e for e in needed if e not in final.evaluation.eps]
    if missing:
        raise r.fail(
            "evaluation.final.eps",
            f"must include {', '.join(map(str, missing))}, the noise level(s) of the search objectives",
        )
    return final


def parse_resources(r: Reader, node: Any) -> dict[str, float]:
    resources = r.mapping(node, "resources", ("cpu", "gpu"))
    cpu = r.number(resources.get("cpu", 1), "resources.cpu")
    gpu = r.number(resources.get("gpu", 0), "resources.gpu", low=0)
    if cpu <= 0:
        raise r.fail("resources.cpu", f"must be > 0, got {cpu}")
    return {"cpu": float(cpu), "gpu": float(gpu)}


def parse_objectives(r: Reader, node: Any, search_eval: EvalConfig, dataset: str) -> tuple[Objective, ...]:
    if node is None:
        pairs = list(dataset_spec(dataset).objectives)
    else:
        if not isinstance(node, list) or not node:
            raise r.fail("search.objectives", "expected a non-empty list of {metric, mode}")
        pairs = []
        for i, item in enumerate(node):
            item = r.mapping(item, f"search.objectives[{i}]", ("metric", "mode"))
            pairs.append((item.get("metric"), item.get("mode", "max")))
    known = set(objective_names(search_eval.eps, part="val"))
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
    return tuple(Objective.of(m, d) for m, d in pairs)


# search.scheduler: the early-stopping scheduler (nsr_tune.study.moasha) and its rung protocol.
SCHEDULER_FIELDS = (
    "name",
    "grace_epochs",
    "reduction_factor",
    "max_epochs",
    "rung_beats",
    "rung_steps",
    "record_curves",
)
SCHEDULERS = ("none", "moasha")
# Rung evaluation defaults: a fixed class-balanced subset of this many validation beats per class,
# attacked by PGD with this many steps at most (the search protocol's own steps if fewer).
RUNG_BEATS, RUNG_STEPS = 50, 10


def parse_scheduler(
    r: Reader,
    node: Any,
    optim: Mapping[str, Value],
    search_eval: EvalConfig,
    objectives: tuple[Objective, ...],
) -> tuple[RungSettings | None, EvalConfig | None, bool]:
    """search.scheduler -> (RungSettings or None for `name: none`, the rung EvalConfig or None,
    record_curves).

    `record_curves: true` scores every epoch with the rung protocol, stopping or not: the
    per-epoch curves that benchmarks/moasha_replay.py replays. The rung protocol is the search
    protocol cut down: PGD alone, at the objectives' noise levels (all of the search grid when
    an objective summarises the whole curve), on `rung_beats` validation beats per class, with
    no bisection, masking checks or noise stress test.
    """
    if node is None:
        return None, None, False
    section = r.mapping(node, "search.scheduler", SCHEDULER_FIELDS)
    name = section.get("name", "none")
    if name not in SCHEDULERS:
        raise r.fail("search.scheduler.name", f"must be one of {', '.join(SCHEDULERS)}, got {name!r}")
    record = r.value(section.get("record_curves", False), "search.scheduler.record_curves", kind=bool)
    if isinstance(record, Domain):
        raise r.fail("search.scheduler.record_curves", "is fixed for a study, not searched")
    epochs = optim.get("epochs", OptimConfig().epochs)
    if name == "none":
        extra = sorted(set(section) - {"name", "record_curves", "rung_beats", "rung_steps"})
        if extra:
            raise r.fail(f"search.scheduler.{extra[0]}", "is a setting of moasha; name: none takes none")
        rung_eval = _rung_eval(r, section, search_eval, objectives) if record else None
        return None, rung_eval, bool(record)
    if "max_epochs" not in section and isinstance(epochs, Domain):
        raise r.fail("search.scheduler.max_epochs", "is needed when optim.epochs is searched")
    settings_kw = {k: section[k] for k in ("grace_epochs", "reduction_factor", "max_epochs") if k in section}
    settings_kw.setdefault("max_epochs", epochs)
    try:
        settings = RungSettings(**settings_kw)
    except ConfigError as e:
        raise r.fail("search.scheduler", str(e)) from e
    if not isinstance(epochs, Domain) and epochs != settings.max_epochs:
        raise r.fail(
            "search.scheduler.max_epochs",
            f"is {settings.max_epochs}, but every trial trains optim.epochs = {epochs}; "
            "leave it out or make them equal",
        )
    return settings, _rung_eval(r, section, search_eval, objectives), bool(record)


def _rung_eval(
    r: Reader, section: Mapping[str, Any], search_eval: EvalConfig, objectives: tuple[Objective, ...]
) -> EvalConfig:
    beats = r.number(
        section.get("rung_beats", RUNG_BEATS), "search.scheduler.rung_beats", integer=True, low=1
    )
    steps = r.number(
        section.get("rung_steps", RUNG_STEPS), "search.scheduler.rung_steps", integer=True, low=1
    )
    parsed = [parse_metric(o.metric) for o in objectives]
    whole_curve = any(m.eps is None and m.kind.startswith("robust") for m in parsed)
    needed = tuple(sorted({m.eps for m in parsed if m.eps is not None and m.kind in CURVE_KINDS}))
    eps = search_eval.eps if whole_curve or not needed else needed
    rung_eval = dataclasses.replace(
        search_eval,
        eps=eps,
        attacks=("pgd",),
        steps=min(search_eval.steps, steps),
        per_class_cap=beats,
        bisect_steps=0,
        check_masking=False,
        each_attack=False,
        noise_stress=False,
    )
    return rung_eval
