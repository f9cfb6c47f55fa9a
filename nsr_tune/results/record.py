"""A study as plain, typed data: what it was started with, and what every trial reported.

The runner writes the description beside Tune's files (`nsr_tune_study.json`); Tune writes each
trial's config and reports. `nsr_tune.study.results` reads both back into a `StudyRecord`, from
which the front, MLflow's runs and a resumed study are all rebuilt. No Ray, no MLflow, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nsr_tune.errors import ConfigError
from nsr_tune.metrics import Objective

__all__ = [
    "STATE_COMPLETE",
    "STATE_DIVERGED",
    "STATE_FAILED",
    "STATE_STOPPED",
    "StudyDescription",
    "StudyRecord",
    "TrialRecord",
]

STATE_COMPLETE, STATE_DIVERGED, STATE_FAILED = "complete", "diverged", "failed"
# Stopped at a rung by the early-stopping scheduler: never on the front (its scores are partial).
STATE_STOPPED = "stopped_early"


@dataclass(frozen=True)
class StudyDescription:
    """What a study was started with: MLflow's parent run and a resume are built from it alone.

    `settings` holds what the command line chose (space path, data directory and its
    fingerprint, sample count, seed, resources, MLflow URI, ...); the search space itself is
    kept as its YAML text in `texts["search_space.yaml"]`, so a file edited since cannot change
    a resumed study.
    """

    name: str
    experiment: str
    objectives: tuple[Objective, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    texts: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def space_source(self) -> str:
        return self.texts["search_space.yaml"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "experiment": self.experiment,
            "objectives": [list(o) for o in self.objectives],
            "params": dict(self.params),
            "tags": dict(self.tags),
            "texts": dict(self.texts),
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "nsr_tune_study.json") -> StudyDescription:
        missing = [k for k in ("name", "experiment", "objectives") if k not in data]
        if missing:
            raise ConfigError(f"{where}: not an nsr-tune study description (no {', '.join(missing)})")
        settings = dict(data.get("settings") or {})
        params, tags = dict(data.get("params") or {}), dict(data.get("tags") or {})
        # Studies started before `settings` existed kept the same facts among params and tags.
        settings.setdefault("space_path", tags.get("nsr_tune.space_path"))
        settings.setdefault("data_dir", params.get("data_dir"))
        settings.setdefault("data_fingerprint", tags.get("data_fingerprint"))
        settings.setdefault("num_samples", params.get("num_samples"))
        return cls(
            name=str(data["name"]),
            experiment=str(data["experiment"]),
            objectives=tuple(Objective.of(m, d) for m, d in data["objectives"]),
            params=params,
            tags=tags,
            texts=dict(data.get("texts") or {}),
            settings=settings,
        )


@dataclass(frozen=True)
class TrialRecord:
    trial_id: str
    config: Mapping[str, Any]  # the trial config (TrialConfig.to_dict())
    results: tuple[Mapping[str, Any], ...]  # every report, in order
    error: str | None = None  # the last line of Tune's error.txt, if the trial failed

    @property
    def last(self) -> Mapping[str, Any]:
        return self.results[-1] if self.results else {}

    @property
    def state(self) -> str | None:
        """complete, diverged, stopped_early, failed, or None while it may still run."""
        if self.last.get("diverged"):
            return STATE_DIVERGED
        if self.last.get("final"):
            return STATE_COMPLETE
        if self.error:
            return STATE_FAILED
        # Tune marks the report on which a scheduler stopped the trial `done`.
        return STATE_STOPPED if self.last.get("done") else None

    @property
    def stopped_at(self) -> int | None:
        """The rung epoch at which the scheduler stopped the trial (None if it was not stopped)."""
        return int(self.last.get("epoch", 0)) if self.state == STATE_STOPPED else None


@dataclass(frozen=True)
class StudyRecord:
    experiment_path: str
    description: StudyDescription
    trials: tuple[TrialRecord, ...]
