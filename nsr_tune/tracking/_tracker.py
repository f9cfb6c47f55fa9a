"""MLflow tracking of a study: one parent run, one nested child run per trial, the Pareto front.

Everything goes through `MlflowClient` from the driver only, so workers never talk to the
tracking server and a SQLite store has one writer. Runs are found again by tags rather than
remembered in memory: a resumed study finds its parent run by the Tune experiment path, and a
retried or restored trial finds its child run by its Tune trial id. That is how a restart
continues runs instead of duplicating them.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from nsr_tune.plots import robustness_curve_png, robustness_title
from nsr_tune.results.front import run_name, trial_params
from nsr_tune.results.record import STATE_COMPLETE, STATE_DIVERGED, STATE_FAILED, STATE_STOPPED, StudyRecord
from nsr_tune.tracking._finalists import FinalistRuns
from nsr_tune.tracking._front_runs import FrontRuns
from nsr_tune.tracking._models import ModelRuns
from nsr_tune.tracking._tags import (
    TAG_MODEL,
    TAG_OBJECTIVES,
    TAG_PATH,
    TAG_ROLE,
    TAG_STATE,
    TAG_TRIAL,
    masking_tags,
)

__all__ = ["StudyTracker", "front_view_url", "outage_errors"]

log = logging.getLogger(__name__)

# MLflow's log_batch takes at most 1000 metrics per call.
_BATCH = 1000


def front_view_url(ui_url: str, experiment_id: str, objectives: Sequence[str]) -> str:
    """The MLflow UI page that lists a study's Pareto-optimal trials, best first objective on top.

    ``ui_url`` is where the UI answers (an http(s) tracking server, or ``mlflow ui``'s default
    http://127.0.0.1:5000). The UI's routes are hash routes; sorting by a metric also lists the
    nested trial runs flat instead of collapsed under their study's parent run.
    """
    query = urlencode(
        {
            "searchFilter": "tags.pareto_optimal = 'true'",
            "orderByKey": f"metrics.`{objectives[0]}`" if objectives else "attributes.start_time",
            "orderByAsc": "false",
        },
        quote_via=quote,
    )
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def outage_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the tracking store cannot be reached right now", not a bug."""
    import requests
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    return (MlflowException, requests.RequestException, sqlalchemy.exc.OperationalError, OSError)


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
    "cpus",
    "gpus",
}


class StudyTracker(FinalistRuns, ModelRuns, FrontRuns):
    """Parent and child runs of one study. Picklable: the client is rebuilt after unpickling.

    What it writes of a study's finalists (FinalistRuns), of its trials' models (ModelRuns) and
    of its Pareto front (FrontRuns) lives in their own modules.
    """

    def __init__(self, *, tracking_uri: str, experiment: str, artifact_location: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self.parent_run_id: str | None = None
        self.objectives: list[tuple[str, str]] = []
        self._client: Any = None
        self._runs: dict[str, str] = {}  # Tune trial id -> MLflow run id
        self._steps: dict[str, set[int]] = {}  # MLflow run id -> epochs already logged

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = None
        state["_steps"] = {}  # re-read from MLflow after a restart, never trusted from a pickle
        return state

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    # ------------------------------------------------------------------ study

    def experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        return self.client.create_experiment(self.experiment, artifact_location=self.artifact_location)

    def start_study(
        self,
        *,
        experiment_path: str,
        run_name: str,
        objectives: Sequence[tuple[str, str]],
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        texts: Mapping[str, str],
    ) -> str:
        """Create the parent run, or reopen the one of this Tune experiment (a resumed study)."""
        self.objectives = [tuple(o) for o in objectives]  # type: ignore[misc]
        exp_id = self.experiment_id()
        found = self.client.search_runs(
            [exp_id],
            filter_string=f"tags.`{TAG_PATH}` = '{_quote(experiment_path)}' and tags.`{TAG_ROLE}` = 'study'",
        )
        if found:
            self.parent_run_id = found[0].info.run_id
            self.client.update_run(self.parent_run_id, status="RUNNING")
            log.info("MLflow: continuing parent run %s of %s", self.parent_run_id, experiment_path)
            return self.parent_run_id
        run = self.client.create_run(
            exp_id,
            run_name=run_name,
            tags={
                TAG_ROLE: "study",
                TAG_PATH: experiment_path,
                TAG_OBJECTIVES: json.dumps(self.objectives),
                **tags,
            },
        )
        self.parent_run_id = run.info.run_id
        self._log_params(self.parent_run_id, params)
        for name, text in texts.items():
            self.client.log_text(self.parent_run_id, text, name)
        return self.parent_run_id

    def end_study(self, status: str = "FINISHED") -> None:
        if self.parent_run_id is not None:
            self.client.set_terminated(self.parent_run_id, status=status)

    # ------------------------------------------------------------------ trials

    def trial_run(
        self, trial_id: str, *, run_name: str, params: Mapping[str, Any], reopen: bool = False
    ) -> str:
        """The child run of a Tune trial, created on first sight and found again afterwards.

        `reopen` marks a found run RUNNING again: for a trial that (re)starts, not for one whose
        past results are being written.
        """
        if trial_id in self._runs:
            if reopen:
                self.client.update_run(self._runs[trial_id], status="RUNNING")
            return self._runs[trial_id]
        if self.parent_run_id is None:
            raise RuntimeError("start_study must come before trial_run")
        exp_id = self.experiment_id()
        found = self.client.search_runs(
            [exp_id],
            filter_string=(
                f"tags.`mlflow.parentRunId` = '{self.parent_run_id}' and tags.`{TAG_TRIAL}` = '{trial_id}'"
            ),
        )
        if found:
            run_id = found[0].info.run_id
            if reopen:
                self.client.update_run(run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                exp_id,
                run_name=run_name,
                tags={"mlflow.parentRunId": self.parent_run_id, TAG_TRIAL: trial_id, TAG_ROLE: "trial"},
            )
            run_id = run.info.run_id
            self._log_params(run_id, params)
        self._runs[trial_id] = run_id
        return run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], *, step: int) -> None:
        """One batched call per report; non-numeric values are skipped."""
        from mlflow.entities import Metric

        now = _now_ms()
        items = [
            Metric(k, float(v), now, step)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(run_id, metrics=items[i : i + _BATCH])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def end_trial(self, run_id: str, *, state: str, status: str = "FINISHED") -> None:
        self.set_tags(run_id, {TAG_STATE: state})
        self.client.set_terminated(run_id, status=status)

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def trial_run_for(self, trial_id: str, trial_config: Mapping[str, Any], *, reopen: bool = False) -> str:
        return self.trial_run(
            trial_id,
            run_name=run_name(trial_config, trial_id),
            params=trial_params(trial_config),
            reopen=reopen,
        )

    def record_result(
        self, trial_id: str, trial_config: Mapping[str, Any], result: Mapping[str, Any]
    ) -> None:
        """One Tune report: its metrics at step = epoch, in one batched call.

        An epoch already logged is skipped: a trial restored after a driver restart can report
        again an epoch whose report reached the driver before the restart but not Tune's
        saved state, and the run's history must not show it twice.
        """
        run_id = self.trial_run_for(trial_id, trial_config)
        epoch = int(result.get("epoch", 0))
        if run_id not in self._steps:
            self._steps[run_id] = {m.step for m in self.client.get_metric_history(run_id, "epoch_seconds")}
        if epoch in self._steps[run_id]:
            return
        metrics = {k: v for k, v in result.items() if k not in _TUNE_KEYS}
        self.log_metrics(run_id, metrics, step=epoch)
        self._steps[run_id].add(epoch)
        if isinstance(result.get("node_id"), str):
            self.set_tags(run_id, {"ray_node_id": result["node_id"]})

    def record_end(
        self, trial_id: str, trial_config: Mapping[str, Any], last: Mapping[str, Any], *, error: str | None
    ) -> None:
        """A trial's end: complete (with robustness figures), diverged, stopped early by the
        scheduler (at which rung), or failed with a reason. The compute it took is logged as
        `cpu_hours` and `gpu_hours`: Tune's wall time times the CPUs and GPUs it held."""
        run_id = self.trial_run_for(trial_id, trial_config)
        seconds = last.get("time_total_s")
        if isinstance(seconds, (int, float)):
            held = {"cpu_hours": last.get("cpus"), "gpu_hours": last.get("gpus")}
            self.log_metrics(
                run_id,
                {
                    k: float(seconds) * float(n) / 3600.0
                    for k, n in held.items()
                    if isinstance(n, (int, float))
                },
                step=int(last.get("epoch", 0)),
            )
        if last.get("diverged"):
            self.set_tags(run_id, {"diverged": "true"})
            self.end_trial(run_id, state=STATE_DIVERGED)
        elif last.get("final"):
            self.log_curves(run_id, last)
            self.set_tags(run_id, masking_tags(last))
            self.end_trial(run_id, state=STATE_COMPLETE)
        elif error is None and last.get("done"):
            self.set_tags(run_id, {"stopped_at_epoch": str(int(last.get("epoch", 0)))})
            self.end_trial(run_id, state=STATE_STOPPED)
        else:
            self.set_tags(run_id, {"failure": error or "the trial stopped before its last epoch"})
            self.end_trial(run_id, state=STATE_FAILED, status="FAILED")

    def log_curves(self, run_id: str, result: Mapping[str, Any]) -> None:
        """Robustness-curve figures (validation and test) from a trial's final report."""
        for part in ("val", "test"):
            c = result.get(f"{part}_curves")
            if not isinstance(c, Mapping) or not c.get("eps"):
                continue
            curves = {
                "robust accuracy": [c["clean_acc"], *c["robust_acc"]],
                "robust balanced accuracy": [c["balanced_acc"], *c["robust_balanced_acc"]],
                "white noise accuracy": [c["clean_acc"], *c["noise_acc"]],
            }
            uv = [0.0, *c["eps_uv"]]
            with tempfile.TemporaryDirectory() as d:
                path = robustness_curve_png(
                    [0.0, *c["eps"]],
                    curves,
                    Path(d) / f"robustness_{part}.png",
                    eps_uv=None if any(math.isnan(v) for v in uv) else uv,
                    title=robustness_title(part, c["norm"]),
                )
                self.log_file(run_id, path)

    def sync(self, record: StudyRecord, *, checkpoint_of: Callable[[str], bytes | None] | None = None) -> str:
        """Write to MLflow whatever of a study it does not hold yet.

        Idempotent: a report already logged (by its epoch) is not logged again, a finished run
        is not finished again, so running it after a normal study changes nothing.
        `checkpoint_of(trial_id)` gives a trial's newest checkpoint (None without one): each
        complete trial whose run has no model yet gets it as MODEL_ARTIFACT.
        """
        d = record.description
        parent = self.start_study(
            experiment_path=record.experiment_path,
            run_name=d.name,
            objectives=d.objectives,
            params=d.params,
            tags=d.tags,
            texts=d.texts,
        )
        for trial in record.trials:
            run_id = self.trial_run_for(trial.trial_id, trial.config)
            for result in trial.results:
                self.record_result(trial.trial_id, trial.config, result)
            run = self.client.get_run(run_id)
            if TAG_STATE not in run.data.tags and trial.state is not None:
                self.record_end(trial.trial_id, trial.config, trial.last, error=trial.error)
            if checkpoint_of is not None and trial.state == STATE_COMPLETE and TAG_MODEL not in run.data.tags:
                checkpoint = checkpoint_of(trial.trial_id)
                if checkpoint is not None:
                    self.log_model(run_id, checkpoint)
        return parent


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


def _now_ms() -> int:
    return int(time.time() * 1000)
