"""A study's Pareto front in MLflow: found from its parent run, published as tags and files."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nsr_tune.errors import ConfigError
from nsr_tune.metrics import Objective
from nsr_tune.plots import write_front_files
from nsr_tune.results.flags import parse_flags_text
from nsr_tune.results.front import StudyFront, TrialOutcome, analyse
from nsr_tune.tracking._tags import TAG_MASKING, TAG_OBJECTIVES, TAG_PATH, TAG_ROLE, TAG_STATE

__all__ = ["FrontRuns"]


class FrontRuns:
    """Reads a study's front from its runs and writes it back to them (a mixin of StudyTracker)."""

    # Provided by StudyTracker.
    client: Any
    experiment: str
    tracking_uri: str
    parent_run_id: str | None

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], *, step: int) -> None: ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None: ...

    def latest_parent(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            raise ConfigError(
                f"--experiment: no MLflow experiment named {self.experiment!r} at {self.tracking_uri}"
            )
        found = self.client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{TAG_ROLE}` = 'study'",
            order_by=["attributes.start_time DESC"],
        )
        if not found:
            raise ConfigError(f"--experiment: {self.experiment!r} holds no nsr-tune study")
        return found[0].info.run_id

    def study_path(self, parent_run_id: str | None = None) -> str:
        """The Tune experiment path of a study (its parent run, or the experiment's latest)."""
        parent = self.client.get_run(parent_run_id or self.latest_parent())
        path = parent.data.tags.get(TAG_PATH)
        if not path:
            raise ConfigError(f"--run: {parent.info.run_id} is not the parent run of an nsr-tune study")
        return path

    def front(self, parent_run_id: str | None = None) -> StudyFront:
        """The Pareto analysis of a study's complete trials, on their final objective values."""
        parent_id = parent_run_id or self.parent_run_id or self.latest_parent()
        parent = self.client.get_run(parent_id)
        objectives = [Objective.of(m, d) for m, d in json.loads(parent.data.tags[TAG_OBJECTIVES])]
        children = self.client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
            max_results=10000,
        )
        outcomes = [
            TrialOutcome(
                run.info.run_id,
                run.info.run_name or run.info.run_id,
                run.data.tags.get(TAG_STATE),
                run.data.metrics,
                flags=parse_flags_text(run.data.tags.get(TAG_MASKING)),
            )
            for run in children
        ]
        return analyse(outcomes, objectives, parent_run_id=parent_id)

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
            files = write_front_files(front, where, html=False)  # report.html holds the interactive front
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
