"""The Ray Tune function trainable: one trial of `nsr_tune.trial.run_trial` under Tune.

It sees only its `config` (the full trial config that the search space's define-by-run function
built) and the beats, which arrive through Ray's object store (`tune.with_parameters`), so a
worker node needs no copy of the data. Every epoch is reported with a checkpoint; a restarted
trial continues after its last checkpointed epoch.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import tune

from nsr_tune.checkpoints import load_checkpoint, save_state
from nsr_tune.config import TrialConfig
from nsr_tune.data import SplitData, input_shape, nstdb_if_present
from nsr_tune.evaluation.scores import balanced_classes_for
from nsr_tune.results.flags import flag_metrics
from nsr_tune.results.front import chance_objectives
from nsr_tune.trial import check_trial, run_trial

__all__ = ["CHECKPOINT_FILE", "train_trial"]

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


def train_trial(config: dict[str, Any], data: SplitData, objectives: list[str]) -> None:
    """Tune entry point. `data` and `objectives` are bound with `tune.with_parameters`."""
    trial_config = check_trial(TrialConfig.from_dict(config["trial_config"]))
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            resume = load_checkpoint(Path(d) / CHECKPOINT_FILE)
        log.info("trial resumes after epoch %d", resume["epoch"])

    node_id = ray.get_runtime_context().get_node_id()
    # What the trial holds, for the CPU- and GPU-hours that the tracker logs when it ends.
    held = ray.get_runtime_context().get_assigned_resources()
    stress = any(e is not None and e.noise_stress for e in (trial_config.val_eval, trial_config.test_eval))
    # The noise records are read on the worker, from its $NSR_TUNE_NSTDB or user cache.
    nstdb = nstdb_if_present() if stress else None
    for result in run_trial(trial_config, data, resume=resume, nstdb=nstdb):
        metrics: dict[str, Any] = {
            **result.metrics,
            "final": result.final,
            "diverged": result.diverged,
            "node_id": node_id,  # which node ran this epoch, for the tracker's `ray_node_id` tag
            "cpus": float(held.get("CPU", 0.0)),
            "gpus": float(held.get("GPU", 0.0)),
        }
        if result.diverged:
            ve = trial_config.val_eval
            n = input_shape(trial_config.data).classes
            every = data.val.classes
            k = len(ve.balanced_classes or balanced_classes_for(trial_config.data.split, every)) if ve else n
            metrics.update(chance_objectives(objectives, n_balanced_classes=k, n_classes=n))
            tune.report(metrics)
            return
        if result.final:
            for part, evaluated in (("val", result.val), ("test", result.test)):
                if evaluated is not None:
                    metrics.update(evaluated.flat_metrics(part))
                    metrics[f"{part}_curves"] = evaluated.curves()
                    # Kept beside the objectives: a robust accuracy that a masking check doubts
                    # must stay visible in MLflow and on the front, not only in a worker's log.
                    metrics.update(flag_metrics(part, evaluated.flags))
                    # What the protocol asked for but could not run (e.g. transfer without a
                    # surrogate), so that a missing attack is never mistaken for a failed one.
                    if evaluated.skipped:
                        metrics[f"{part}_skipped"] = dict(evaluated.skipped)
            missing = [m for m in objectives if m not in metrics]
            if missing:
                raise RuntimeError(f"the final result lacks the objective(s) {missing}")
        with tempfile.TemporaryDirectory() as d:
            save_state(Path(d) / CHECKPOINT_FILE, result.checkpoint)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
