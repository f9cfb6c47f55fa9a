"""A Ray Tune callback, run on the driver, that mirrors trials into MLflow.

Tune calls it in the driver process for every trial event, so only the driver talks to the
tracking server. Ray's own MLflow integrations create no parent run and duplicate runs when a
trial is restored; this one finds a trial's run again by its trial id (see StudyTracker).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ray import tune

from nsr_tune.tracking import StudyTracker, outage_errors

__all__ = ["MlflowStudyCallback"]

log = logging.getLogger(__name__)


class MlflowStudyCallback(tune.Callback):
    """Mirrors trial events into MLflow while the study runs, and never stops the study.

    If the tracking server cannot be reached, one warning says so and the callback stops
    trying; everything stays in Tune's experiment directory, and the runner (or
    `nsr-tune sync-mlflow`) writes it to MLflow once the server is back.
    """

    def __init__(self, tracker: StudyTracker) -> None:
        self.tracker = tracker
        self.offline = False

    def _guard(self, action: Callable[[], object]) -> None:
        if self.offline:
            return
        try:
            action()
        except outage_errors() as e:
            self.offline = True
            log.warning(
                "MLflow at %s cannot be reached (%s: %s). The study goes on; its results are kept "
                "with the Tune results and are written to MLflow when the study ends, or later with "
                "`nsr-tune sync-mlflow`.",
                self.tracker.tracking_uri,
                type(e).__name__,
                str(e).splitlines()[0][:200],
            )

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._guard(
            lambda: self.tracker.trial_run_for(trial.trial_id, trial.config["trial_config"], reopen=True)
        )

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._guard(lambda: self.tracker.record_result(trial.trial_id, trial.config["trial_config"], result))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        cfg, last = trial.config["trial_config"], trial.last_result or {}
        self._guard(lambda: self.tracker.record_end(trial.trial_id, cfg, last, error=None))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        reason = str(getattr(trial, "error_message", None) or "").strip()
        reason = reason.splitlines()[-1][:500] if reason else "the trial raised an error"
        cfg, last = trial.config["trial_config"], trial.last_result or {}
        self._guard(lambda: self.tracker.record_end(trial.trial_id, cfg, last, error=reason))
