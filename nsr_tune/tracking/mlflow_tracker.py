"""MLflow tracking of a study: one parent run, one nested child run per trial, the Pareto front.

Everything goes through `MlflowClient` from the driver only, so workers never talk to the
tracking server and a SQLite store has one writer. Runs are found again by tags rather than
remembered in memory: a resumed study finds its parent run by the Tune experiment path, and a
retried or restored trial finds its child run by its Tune trial id. That is how a restart
continues runs instead of duplicating them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nsr_tune.pareto import ParetoResult, default_reference, pareto_analysis

__all__ = [
    "STATE_COMPLETE",
    "STATE_DIVERGED",
    "STATE_FAILED",
    "StudyFront",
    "StudyTracker",
    "default_tracking_uri",
    "front_table",
    "write_front_files",
]

log = logging.getLogger(__name__)

TAG_ROLE = "nsr_tune.role"
TAG_PATH = "nsr_tune.experiment_path"
TAG_TRIAL = "nsr_tune.trial_id"
TAG_STATE = "nsr_tune.state"
TAG_OBJECTIVES = "nsr_tune.objectives"
STATE_COMPLETE, STATE_DIVERGED, STATE_FAILED = "complete", "diverged", "failed"
# MLflow's log_batch takes at most 1000 metrics per call.
_BATCH = 1000


def default_tracking_uri() -> str:
    """An embedded SQLite store in the working directory (MLflow 3's own default)."""
    return f"sqlite:///{Path('mlflow.db').resolve()}"


@dataclass(frozen=True)
class StudyFront:
    """The Pareto analysis of a study's finished trials, with what a table needs beside it."""

    parent_run_id: str
    result: ParetoResult
    run_names: Mapping[str, str]  # run id -> run name
    test_values: Mapping[str, tuple[float, ...]]  # run id -> the test counterparts of the objectives
    excluded: Mapping[str, str]  # run id -> why it is not ranked (diverged, failed, ...)


class StudyTracker:
    """Parent and child runs of one study. Picklable: the client is rebuilt after unpickling."""

    def __init__(self, *, tracking_uri: str, experiment: str, artifact_location: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self.parent_run_id: str | None = None
        self.objectives: list[tuple[str, str]] = []
        self._client: Any = None
        self._runs: dict[str, str] = {}  # Tune trial id -> MLflow run id

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = None
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

    def trial_run(self, trial_id: str, *, run_name: str, params: Mapping[str, Any]) -> str:
        """The child run of a Tune trial, created on first sight and found again afterwards."""
        if trial_id in self._runs:
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

    # ------------------------------------------------------------------ the front

    def latest_parent(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            from nsr_tune.errors import ConfigError

            raise ConfigError(
                f"--experiment: no MLflow experiment named {self.experiment!r} at {self.tracking_uri}"
            )
        found = self.client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{TAG_ROLE}` = 'study'",
            order_by=["attributes.start_time DESC"],
        )
        if not found:
            from nsr_tune.errors import ConfigError

            raise ConfigError(f"--experiment: {self.experiment!r} holds no nsr-tune study")
        return found[0].info.run_id

    def front(self, parent_run_id: str | None = None) -> StudyFront:
        """The Pareto analysis of a study's complete trials, on their final objective values."""
        parent_id = parent_run_id or self.parent_run_id or self.latest_parent()
        parent = self.client.get_run(parent_id)
        objectives = [tuple(o) for o in json.loads(parent.data.tags[TAG_OBJECTIVES])]
        children = self.client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
            max_results=10000,
        )
        ids, values, names, tests, excluded = [], [], {}, {}, {}
        for run in children:
            rid = run.info.run_id
            names[rid] = run.info.run_name or rid
            state = run.data.tags.get(TAG_STATE)
            metrics = run.data.metrics
            if state != STATE_COMPLETE:
                excluded[rid] = state or "unfinished"
                continue
            if any(m not in metrics for m, _ in objectives):
                excluded[rid] = "missing objective"
                continue
            ids.append(rid)
            values.append([metrics[m] for m, _ in objectives])
            tests[rid] = tuple(metrics.get("test_" + m.removeprefix("val_"), math.nan) for m, _ in objectives)
        directions = ["maximize" if mode == "max" else "minimize" for _, mode in objectives]
        result = pareto_analysis(
            ids,
            np.asarray(values, dtype=float).reshape(len(ids), len(objectives)),
            names=[m for m, _ in objectives],
            directions=directions,
            reference=default_reference(directions),
        )
        return StudyFront(parent_id, result, names, tests, excluded)

    def publish_front(self, front: StudyFront, *, out_dir: Path | None = None) -> dict[str, Path]:
        """Tag every child, and give the parent pareto.csv, the figures and the hypervolume."""
        result = front.result
        for rid, rank in zip(result.ids, result.ranks, strict=True):
            self.set_tags(
                rid, {"pareto_optimal": str(bool(rank == 0)).lower(), "pareto_rank": str(int(rank))}
            )
        for rid in front.excluded:
            self.set_tags(rid, {"pareto_optimal": "false", "pareto_rank": "-1"})
        with tempfile.TemporaryDirectory() as tmp:
            where = out_dir or Path(tmp)
            files = write_front_files(front, where)
            for path in files.values():
                self.log_file(front.parent_run_id, path)
        if result.hypervolume is not None:
            self.log_metrics(front.parent_run_id, {"hypervolume": result.hypervolume}, step=0)
        self.set_tags(
            front.parent_run_id,
            {
                "pareto_front": json.dumps(
                    [front.run_names[i] for i in result.front_ids], ensure_ascii=False
                ),
                "hypervolume_reference": json.dumps(list(result.reference)),
            },
        )
        return files


def write_front_files(front: StudyFront, out_dir: Path) -> dict[str, Path]:
    """pareto.csv, pareto.png and pareto.html for a study's front."""
    from nsr_tune import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    result = front.result
    csv_path = out_dir / "pareto.csv"
    names = list(result.names)
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["run_id", "run_name", "pareto_rank", *names, *("test_" + n.removeprefix("val_") for n in names)]
        )
        order = sorted(range(len(result.ids)), key=lambda i: (result.ranks[i], -result.values[i][0]))
        for i in order:
            rid = result.ids[i]
            writer.writerow(
                [rid, front.run_names[rid], int(result.ranks[i]), *result.values[i], *front.test_values[rid]]
            )
    files = {"csv": csv_path}
    if len(names) == 2 and len(result.ids) > 0:
        labels = {rid: front.run_names[rid] for rid in result.ids}
        tests = {rid: front.test_values[rid] for rid in result.ids}
        title = "Pareto front on validation objectives (test values beside)"
        files["png"] = plots.pareto_figure_png(
            result, out_dir / "pareto.png", labels=labels, test_values=tests, title=title
        )
        hover = {
            rid: {
                "run": front.run_names[rid],
                **{f"test {n}": v for n, v in zip(names, tests[rid], strict=True)},
            }
            for rid in result.ids
        }
        files["html"] = plots.pareto_figure_html(
            result, out_dir / "pareto.html", labels=labels, test_values=tests, hover=hover, title=title
        )
    return files


def front_table(front: StudyFront) -> str:
    """The front as a plain-text table: validation objectives, their test values beside them."""
    result = front.result
    names = list(result.names)
    short = [n.removeprefix("val_") for n in names]
    header = ["run", *(f"val {s}" for s in short), *(f"test {s}" for s in short)]
    rows = []
    for row in result.front_rows():
        rid = row["id"]
        rows.append(
            [
                front.run_names[rid],
                *(f"{row[n]:.4f}" for n in names),
                *(f"{v:.4f}" for v in front.test_values[rid]),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    hv = "n/a" if result.hypervolume is None else f"{result.hypervolume:.4f}"
    lines.append(
        f"{int((result.ranks == 0).sum())} of {len(result.ids)} ranked trials on the front; hypervolume {hv} "
        f"(reference {list(result.reference)}); {len(front.excluded)} not ranked"
    )
    return "\n".join(lines)


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


def _now_ms() -> int:
    return int(time.time() * 1000)
