"""A Ray Tune callback, run on the driver, that mirrors trials into MLflow.

Tune calls it in the driver process for every trial event, so only the driver talks to the
tracking server. Ray's own MLflow integrations create no parent run and duplicate runs when a
trial is restored; this one finds a trial's run again by its trial id (see StudyTracker).
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any

from ray import tune

from nsr_tune.tracking import STATE_COMPLETE, STATE_DIVERGED, STATE_FAILED, StudyTracker

__all__ = ["MlflowStudyCallback", "run_name", "trial_params"]

log = logging.getLogger(__name__)

# Tune's own bookkeeping keys: not worth a metric each in MLflow.
_TUNE_KEYS = {
    "timestamp",
    "training_iteration",
    "time_this_iter_s",
    "time_total_s",
    "pid",
    "time_since_restore",
    "iterations_since_restore",
    "checkpoint_dir_name",
    "done",
    "final",
    "diverged",
    "epoch",
}


def run_name(trial_config: dict[str, Any], trial_id: str) -> str:
    """What the trial is, at a glance: model, objective, beta (e.g. `cnn nsr β=0.3 · 3f2a_00001`)."""
    model = trial_config["model"]["name"]
    objective = trial_config["objective"]["name"]
    beta = trial_config["objective"]["beta"]
    weighted = objective in ("nsr", "nsr_ce", "jacobian")
    return f"{model} {objective}" + (f" β={beta:.3g}" if weighted else "") + f" · {trial_id}"


def trial_params(trial_config: dict[str, Any]) -> dict[str, Any]:
    """The trial config flattened to MLflow params such as `model.name`, `objective.beta`."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = node

    walk("", trial_config)
    return out


class MlflowStudyCallback(tune.Callback):
    def __init__(self, tracker: StudyTracker) -> None:
        self.tracker = tracker

    def _run(self, trial: Any) -> str:
        cfg = trial.config["trial_config"]
        return self.tracker.trial_run(
            trial.trial_id, run_name=run_name(cfg, trial.trial_id), params=trial_params(cfg)
        )

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run(trial)

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self._run(trial)
        metrics = {k: v for k, v in result.items() if k not in _TUNE_KEYS}
        self.tracker.log_metrics(run_id, metrics, step=int(result.get("epoch", 0)))
        if isinstance(result.get("node_id"), str):
            self.tracker.set_tags(run_id, {"ray_node_id": result["node_id"]})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self._run(trial)
        last = trial.last_result or {}
        if last.get("diverged"):
            self.tracker.set_tags(run_id, {"diverged": "true"})
            self.tracker.end_trial(run_id, state=STATE_DIVERGED)
            return
        if last.get("final"):
            self._log_curves(run_id, last)
        self.tracker.end_trial(run_id, state=STATE_COMPLETE if last.get("final") else STATE_FAILED)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self._run(trial)
        reason = str(getattr(trial, "error_message", None) or "the trial raised an error")
        self.tracker.set_tags(
            run_id, {"failure": reason.strip().splitlines()[-1][:500] if reason.strip() else reason}
        )
        self.tracker.end_trial(run_id, state=STATE_FAILED, status="FAILED")

    def _log_curves(self, run_id: str, result: dict) -> None:
        from nsr_tune import plots

        for part in ("val", "test"):
            eps_uv = result.get(f"{part}_eps_uv")
            if not isinstance(eps_uv, dict) or not eps_uv:
                continue
            keys = sorted(eps_uv, key=float)
            eps = [0.0, *(float(k) for k in keys)]
            curves = {
                "robust accuracy": [
                    result[f"{part}_clean_acc"],
                    *(result[f"{part}_robust_acc_eps_{k}"] for k in keys),
                ],
                "robust balanced accuracy": [
                    result[f"{part}_balanced_acc"],
                    *(result[f"{part}_robust_balanced_acc_eps_{k}"] for k in keys),
                ],
                "white noise accuracy": [
                    result[f"{part}_clean_acc"],
                    *(result[f"{part}_noise_acc_eps_{k}"] for k in keys),
                ],
            }
            uv = [0.0, *(eps_uv[k] for k in keys)]
            with tempfile.TemporaryDirectory() as d:
                path = plots.robustness_curve_png(
                    eps,
                    curves,
                    Path(d) / f"robustness_{part}.png",
                    eps_uv=None if any(math.isnan(v) for v in uv) else uv,
                    title=f"{'validation' if part == 'val' else 'test'} robustness (PGD, L-inf)",
                )
                self.tracker.log_file(run_id, path)
