"""One trial: train a model on real beats, then evaluate it. Plain torch: no Ray, no MLflow.

- `check_trial` and `new_model` (_registries.py): where a TrialConfig meets the registries of
  datasets, models, objectives and plugins;
- `run_trial` (_run.py): an iterator of per-epoch results (EpochResult), with checkpoints that
  resume it, which a CLI, a test or a Ray Tune trainable drives.
"""

from __future__ import annotations

from nsr_tune.trial._registries import check_same_plugins, check_trial, new_model
from nsr_tune.trial._run import CHECKPOINT_FORMAT, EpochResult, pick_device, run_trial, subsample_train

__all__ = [
    "CHECKPOINT_FORMAT",
    "EpochResult",
    "check_same_plugins",
    "check_trial",
    "new_model",
    "pick_device",
    "run_trial",
    "subsample_train",
]
