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

What a trial trains (data, model, objective, optimiser) is in _train.py, how it is evaluated
(EvalConfig) in _eval.py, and the whole trial with its plain-data form in _trial.py.
"""

from __future__ import annotations

from nsr_tune.config._eval import (
    ATTACK_LOSSES,
    ATTACKS,
    NOISE_KINDS,
    NORMS,
    PAPER_EPS,
    EvalConfig,
    check_multilabel_eval,
)
from nsr_tune.config._train import (
    BALANCE,
    CPSC_MAX_LEN,
    NSR_OBJECTIVES,
    OBJECTIVE_FIELDS,
    OBJECTIVE_NAMES,
    OPTIMIZERS,
    SCHEDULES,
    WEIGHTED,
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
)
from nsr_tune.config._trial import TrialConfig, build, plain

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
    "build",
    "check_multilabel_eval",
    "plain",
]
