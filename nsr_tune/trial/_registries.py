"""Where a TrialConfig meets the registries: `check_trial` holds it to the datasets, models,
objectives and plugins that exist, and `new_model` builds the model it describes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from torch import nn

from nsr_tune._checks import check
from nsr_tune.config import EvalConfig, TrialConfig
from nsr_tune.data import check_data, dataset_spec, input_shape
from nsr_tune.errors import PluginError
from nsr_tune.models import build_model, check_model_input, check_model_knobs, model_spec
from nsr_tune.objectives import check_objective

__all__ = ["check_same_plugins", "check_trial", "new_model"]


def check_trial(config: TrialConfig) -> TrialConfig:
    """`config` held to the registries: its dataset and data settings, a model offered for that
    dataset with knobs it has and inputs it can take, an objective that exists, and evaluation
    classes the data have. Returned with the data's defaults filled in (`check_data`); raises a
    ConfigError that names the field otherwise."""
    data = check_data(config.data)
    dataset = dataset_spec(data.dataset)
    model = config.model
    check_model_knobs(model.name, dict(model.knobs))
    spec = model_spec(model.name)
    check(
        model.name in dataset.models or spec.plugin is not None,
        "model",
        f"{model.name!r} is not offered for {data.dataset}; choose one of {', '.join(dataset.models)}",
    )
    check_model_input(model.name, model.knobs, input_shape(data).length)
    objective = check_objective(config.objective)
    for part in ("val_eval", "test_eval", "rung_eval"):
        ev: EvalConfig | None = getattr(config, part)
        unknown = (
            [c for c in (ev.balanced_classes or ()) if c not in dataset.classes] if ev is not None else []
        )
        check(not unknown, f"{part}.balanced_classes", f"{unknown} are not classes of {data.dataset}")
    found = {
        kind: plugin.provenance()
        for kind, plugin in (
            ("dataset", dataset.plugin),
            ("model", spec.plugin),
            ("objective", objective.plugin if objective is not None else None),
        )
        if plugin is not None
    }
    if config.plugins:
        check_same_plugins(config.plugins, found, since="this trial's config was made")
    if data == config.data and found == config.plugins:
        return config
    return dataclasses.replace(config, data=data, plugins=found)


def check_same_plugins(
    saved: Mapping[str, Mapping[str, str]], found: Mapping[str, Mapping[str, str]], *, since: str
) -> None:
    """Refuse other plugin code than `saved` names: a study or a checkpoint is reproducible only
    with the code it ran. PluginError names each changed plugin and both source hashes (plugins
    from one package share its hash, so an edit anywhere in it names all of them)."""
    changed = []
    for key in sorted(set(saved) | set(found)):
        then, now = saved.get(key, {}), found.get(key, {})
        if then.get("sha256") == now.get("sha256") and then.get("name") == now.get("name"):
            continue
        kind, name = key.partition(":")[0], then.get("name") or now.get("name")
        changed.append(
            f"{kind} {name!r} ({now.get('target') or then.get('target')}) source sha256 "
            f"{then.get('sha256', 'none')[:12]} then, {now.get('sha256', 'none')[:12]} now"
        )
    if changed:
        raise PluginError(
            f"plugin code changed since {since}: {'; '.join(changed)}; restore the code it ran, or start anew"
        )


def new_model(config: TrialConfig) -> nn.Module:
    """The untrained model `config` describes, shaped for its dataset's leads, length and classes."""
    config = check_trial(config)
    shape = input_shape(config.data)
    return build_model(
        config.model.name,
        config.model.knobs,
        n_classes=shape.classes,
        in_leads=shape.leads,
        in_len=shape.length,
    )
