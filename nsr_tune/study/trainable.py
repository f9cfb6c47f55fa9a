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
from nsr_tune.data import SplitData
from nsr_tune.evaluation import balanced_classes_for
from nsr_tune.trial import run_trial

__all__ = ["CHECKPOINT_FILE", "chance_objectives", "train_trial"]

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


def chance_objectives(config: TrialConfig, metrics: list[str]) -> dict[str, float]:
    """Chance-level values for a trial whose numbers cannot be trusted (it diverged).

    A broken net that predicts N for every beat scores a high plain accuracy and looks "robust"
    (nothing flips); the searcher must instead see what guessing gives: 1/k balanced accuracy
    and 1/5 plain accuracy (every accuracy-like objective we offer is maximised).
    """
    k = (
        len(config.val_eval.balanced_classes or balanced_classes_for(config.data.split))
        if config.val_eval
        else 5
    )
    return {m: (1.0 / k if "balanced" in m else 1.0 / 5) for m in metrics}


def train_trial(config: dict[str, Any], data: SplitData, objectives: list[str]) -> None:
    """Tune entry point. `data` and `objectives` are bound with `tune.with_parameters`."""
    trial_config = TrialConfig.from_dict(config["trial_config"])
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            resume = load_checkpoint(Path(d) / CHECKPOINT_FILE)
        log.info("trial resumes after epoch %d", resume["epoch"])

    node_id = ray.get_runtime_context().get_node_id()
    for result in run_trial(trial_config, data, resume=resume):
        metrics: dict[str, Any] = {
            **result.metrics,
            "final": result.final,
            "diverged": result.diverged,
            "node_id": node_id,  # which node ran this epoch, for the tracker's `ray_node_id` tag
        }
        if result.diverged:
            metrics.update(chance_objectives(trial_config, objectives))
            tune.report(metrics)
            return
        if result.final:
            if result.val is not None:
                metrics.update(result.val.flat_metrics("val_"))
                metrics["val_eps_uv"] = {f"{e:g}": v for e, v in result.val.eps_uv.items()}
            if result.test is not None:
                metrics.update(result.test.flat_metrics("test_"))
                metrics["test_eps_uv"] = {f"{e:g}": v for e, v in result.test.eps_uv.items()}
            missing = [m for m in objectives if m not in metrics]
            if missing:
                raise RuntimeError(f"the final result lacks the objective(s) {missing}")
        with tempfile.TemporaryDirectory() as d:
            save_state(Path(d) / CHECKPOINT_FILE, result.checkpoint)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
