"""MO-ASHA as a Ray Tune scheduler, the searcher that knows stopped trials, and the time budget.

Ray Tune's schedulers (ASHA, HyperBand, PBT) rank trials by one metric. `MOASHAScheduler` ranks
them by all the study's objectives, with the rule in nsr_tune.study.moasha. It reads only the
`rung_*` metrics that a trial reports at its rung epochs (a cheap protocol on a small fixed
validation subset), never the final objectives, so nothing partly trained reaches the searcher
or the front. Its rung record is written beside the study after every decision, and read back
when a study is resumed.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from nsr_tune.metrics import on_part
from nsr_tune.study.moasha import Rungs
from nsr_tune.study.results import read_rungs, write_rungs

__all__ = ["MOASHAScheduler", "StudySearch", "TimeBudget"]

log = logging.getLogger(__name__)


class MOASHAScheduler(FIFOScheduler):
    """Stops a trial at a rung when MO-ASHA ranks it outside the top 1/reduction_factor.

    ``objectives`` are the study's objective metrics (e.g. `val_balanced_acc`); the scheduler
    reads their `rung_` counterparts. ``experiment_path``: where the rung record is kept.
    """

    def __init__(self, *, rungs: Rungs, objectives: Sequence[str], experiment_path: str) -> None:
        super().__init__()
        if len(objectives) != len(rungs.modes):
            raise ValueError(f"{len(objectives)} objectives for {len(rungs.modes)} modes")
        self.rungs = rungs
        self.rung_metrics = [on_part(m, "rung") for m in objectives]
        self.experiment_path = experiment_path
        self._loaded = False

    def _load(self) -> None:
        # On resume, the record the driver left; read on the first report (after Tune has
        # restored its own state), not when the scheduler object was unpickled.
        if not self._loaded:
            saved = read_rungs(self.experiment_path)
            if saved is not None:
                self.rungs = Rungs.from_dict(saved)
                log.info("MO-ASHA: rung record restored (%d trials stopped so far)", len(self.rungs.stopped))
            self._loaded = True

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._load()
        epoch = result.get("epoch")
        if epoch is None or result.get("final") or any(m not in result for m in self.rung_metrics):
            return TrialScheduler.CONTINUE
        decision = self.rungs.decide(trial.trial_id, int(epoch), [result[m] for m in self.rung_metrics])
        if decision is None:
            return TrialScheduler.CONTINUE
        write_rungs(self.experiment_path, self.rungs.to_dict())
        log.info(
            "MO-ASHA rung %d: trial %s is %d of %d there: %s",
            decision.epoch,
            trial.trial_id,
            decision.place + 1,
            decision.recorded,
            "stopped" if decision.stop else "goes on",
        )
        return TrialScheduler.STOP if decision.stop else TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return (
            f"Using MO-ASHA: rungs at epochs {list(self.rungs.settings.epochs)}, "
            f"{len(self.rungs.stopped)} trials stopped."
        )


class StudySearch(OptunaSearch):
    """OptunaSearch that tells Optuna a trial stopped without its final objectives as PRUNED.

    (Ray's own passes a list of None values for a multi-objective study, which Optuna refuses,
    leaving the trial RUNNING in the Optuna study.) `stop_suggesting` is set by `TimeBudget`.
    The Optuna study is named after its objectives' metrics, so that optuna-dashboard shows
    them by name.
    """

    stop_suggesting = False

    def _setup_study(self, mode: str | list) -> None:
        super()._setup_study(mode)
        names = self.metric if isinstance(self.metric, list) else [self.metric]
        if self._ot_study.metric_names is None and all(isinstance(n, str) for n in names):
            with warnings.catch_warnings():  # set_metric_names is flagged experimental by Optuna
                warnings.simplefilter("ignore")
                self._ot_study.set_metric_names(list(names))

    def restore(self, checkpoint_path: str) -> None:
        """The searcher as Tune saved it with the study; then the trials a stopped driver lost."""
        super().restore(checkpoint_path)
        lost = self.fail_orphans()
        if lost:
            log.info("resume: %d Optuna trial(s) that the stopped driver had started are marked failed", lost)

    def fail_orphans(self) -> int:
        """Mark FAIL the Optuna trials still RUNNING that no Tune trial of this searcher holds: those
        a stopped driver had asked for after Tune last saved the searcher, and lost. Without this
        they would stay RUNNING in the journal, and in optuna-dashboard, for ever."""
        from optuna.trial import TrialState

        if getattr(self, "_ot_study", None) is None:
            return 0
        held = {t.number for t in self._ot_trials.values()}
        running = self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        lost = [t for t in running if t.number not in held]
        for t in lost:
            self._ot_study.tell(t.number, state=TrialState.FAIL)
        return len(lost)

    def suggest(self, trial_id: str) -> dict | None:
        if self.stop_suggesting:
            return Searcher.FINISHED
        return super().suggest(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        if error or not result or any(result.get(m) is None for m in metrics):
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            from optuna.trial import TrialState

            state = TrialState.FAIL if error else TrialState.PRUNED
            self._ot_study.tell(self._ot_trials[trial_id], None, state=state)
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


class TimeBudget(tune.Callback):
    """After `seconds` of this run's wall time no new trial starts; running ones finish."""

    def __init__(self, searcher: StudySearch, seconds: float) -> None:
        self.searcher = searcher
        self.seconds = seconds
        self.started = time.monotonic()
        self.told = False

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        over = time.monotonic() - self.started > self.seconds
        # Assigned every step: a resumed searcher may carry the flag from the run before.
        self.searcher.stop_suggesting = over
        if over and not self.told:
            self.told = True
            log.info(
                "time budget of %.0f s reached: no new trials; the %d running ones finish",
                self.seconds,
                sum(1 for t in trials if t.status == "RUNNING"),
            )
