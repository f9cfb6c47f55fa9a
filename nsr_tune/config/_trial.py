"""A whole trial as one frozen object (TrialConfig), and the plain-data form (`plain`, `build`)
that checkpoints, model files, Ray Tune configs and MLflow params hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from nsr_tune._checks import check
from nsr_tune.config._eval import EvalConfig, check_multilabel_eval
from nsr_tune.config._train import DataConfig, ModelConfig, ObjectiveConfig, OptimConfig
from nsr_tune.errors import ConfigError

__all__ = ["TrialConfig", "build", "plain"]


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
        check(isinstance(self.seed, int), "seed", f"must be an integer, got {self.seed!r}")
        # Label sets need sigmoid outputs and BCE; one label per sample needs the others.
        check(
            self.data.multi_label == (self.objective.name == "bce"),
            "objective",
            "multi_label data train with `bce` (sigmoid outputs), and `bce` only on multi_label data; "
            f"got objective {self.objective.name!r} with multi_label={self.data.multi_label}",
        )
        for part, ev in (("val_eval", self.val_eval), ("test_eval", self.test_eval)):
            if self.data.multi_label and ev is not None:
                check_multilabel_eval(ev, part)
        rungs = self.rung_epochs
        check(
            isinstance(rungs, (list, tuple)) and all(isinstance(e, int) and e >= 1 for e in rungs),
            "rung_epochs",
            f"must be a list of epochs >= 1, got {rungs!r}",
        )
        object.__setattr__(self, "rung_epochs", tuple(sorted(set(rungs))))
        check(
            (self.rung_eval is None) == (not self.rung_epochs),
            "rung_eval",
            "is needed exactly when there are rung_epochs",
        )
        check(isinstance(self.plugins, Mapping), "plugins", f"must be a mapping, got {self.plugins!r}")
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
