"""What a study is started with, and how `--resume PATH` gets the same again. No Ray here.

A new study records its settings beside Tune's files (`nsr_tune_study.json`, see
nsr_tune.results.record). A resume rebuilds its options from there alone: the saved space text (not the
file, which may have changed since), data directory, name, sample count, seed, resources and
MLflow URI. Options given again on resume are either allowed to change (where the cluster,
the concurrency or the tracking server moved) or must equal the saved value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nsr_tune.data import resolve_data_dir
from nsr_tune.errors import ConfigError
from nsr_tune.results.record import StudyDescription
from nsr_tune.study.results import is_uri, read_description, study_path
from nsr_tune.study.space import Space, load_space, parse_space

__all__ = ["CHANGEABLE_ON_RESUME", "StudyOptions", "resume_options"]

log = logging.getLogger(__name__)

# Options (as the command line names them) that a resumed study may take anew: they say where
# and how fast it runs, not what it computes.
CHANGEABLE_ON_RESUME = (
    "address",
    "max_concurrent",
    "cpus_per_trial",
    "gpus_per_trial",
    "mlflow_uri",
    "local_cpus",
    "shared_storage",
    "time_budget",
    "plugin_path",
)


@dataclass(frozen=True)
class StudyOptions:
    space: Space
    name: str
    storage: str  # local path or URI (s3://, gs://, ...)
    mlflow_uri: str
    data_dir: str | None = None
    artifact_location: str | None = None
    num_samples: int | None = None
    max_concurrent: int | None = None
    resume: str | None = None
    seed: int | None = None  # seeds the searcher and every trial (None: the space's own seeds)
    shared_storage: bool = False
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    ray_address: str | None = None
    local_cpus: int | None = None  # CPUs of a local Ray started here (None: all)
    # Seconds of this run after which no new trial starts (running ones finish); None: no limit.
    time_budget: float | None = None
    # Directories of plugin modules (--plugin-path), shipped to every Ray worker.
    plugin_paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.num_samples is not None and self.num_samples < 1:
            raise ConfigError(f"--num-samples: must be >= 1, got {self.num_samples}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ConfigError(f"--max-concurrent: must be >= 1, got {self.max_concurrent}")
        if self.cpus_per_trial is not None and self.cpus_per_trial <= 0:
            raise ConfigError(f"--cpus-per-trial: must be > 0, got {self.cpus_per_trial}")
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise ConfigError(f"--gpus-per-trial: must be >= 0, got {self.gpus_per_trial}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError(f"--time-budget: must be a positive duration, got {self.time_budget}")
        if self.local_cpus is not None and self.local_cpus < 1:
            raise ConfigError(f"--local-cpus: must be >= 1, got {self.local_cpus}")
        if not self.name or "/" in self.name:
            raise ConfigError(f"--name: must be a non-empty name without '/', got {self.name!r}")

    @property
    def seeded_space(self) -> Space:
        """The space with `seed` applied to its searcher and its trials."""
        if self.seed is None:
            return self.space
        return replace(self.space, seed=self.seed, sampler_seed=self.seed)

    @property
    def effective_num_samples(self) -> int:
        return self.num_samples or self.space.num_samples

    @property
    def effective_max_concurrent(self) -> int:
        return self.max_concurrent or self.space.max_concurrent

    def resources(self) -> dict[str, float]:
        return {
            "cpu": float(self.cpus_per_trial or self.space.resources["cpu"]),
            "gpu": float(
                self.gpus_per_trial if self.gpus_per_trial is not None else self.space.resources["gpu"]
            ),
        }

    def settings(
        self,
        *,
        data_dir: str,
        data_fingerprint: str,
        storage: str,
        plugins: Mapping[str, Mapping[str, str]] | None = None,
    ) -> dict[str, Any]:
        """What a resume needs besides the space's text (saved with it as `settings`); `plugins`:
        the provenance of each plugin the space names, by `kind:name`."""
        resources = self.resources()
        return {
            "plugins": {k: dict(v) for k, v in (plugins or {}).items()},
            "space_path": self.space.path,
            "data_dir": data_dir,
            "data_fingerprint": data_fingerprint,
            "storage": storage,
            "num_samples": self.effective_num_samples,
            "seed": self.seed,
            "mlflow_uri": self.mlflow_uri,
            "artifact_location": self.artifact_location,
            "max_concurrent": self.effective_max_concurrent,
            "cpus_per_trial": resources["cpu"],
            "gpus_per_trial": resources["gpu"],
            "shared_storage": self.shared_storage,
        }


def _same_path(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    if is_uri(a) or is_uri(b):
        return a.rstrip("/") == b.rstrip("/")
    return study_path(a) == study_path(b)


def _refusal(resume_path: str, option: str, saved_value: Any, given_value: Any, why: str = "") -> ConfigError:
    return ConfigError(
        f"--{option.replace('_', '-')}: the study at {resume_path} was started with {saved_value!r}, "
        f"given {given_value!r}{why}; leave it out to continue the study as it was started"
    )


def _refuse_changes(resume_path: str, description: StudyDescription, given: Mapping[str, Any]) -> None:
    """Refuse, naming the option, any given option that says what the study computes and differs
    from how it was started: the space (its text), the data, the name, the storage, the samples,
    the seed and the artifact location."""
    saved = description.settings
    if "space" in given:
        other = load_space(given["space"])
        if other.source != description.space_source:
            why = " (its text differs from the saved one)"
            raise _refusal(resume_path, "space", saved.get("space_path"), other.path, why)
    if "data_dir" in given:
        resolved = str(resolve_data_dir(given["data_dir"]))
        if not _same_path(resolved, saved.get("data_dir")):
            raise _refusal(resume_path, "data_dir", saved.get("data_dir"), resolved)
    if "name" in given and given["name"] != description.name:
        raise _refusal(resume_path, "name", description.name, given["name"])
    parent = resume_path.rstrip("/").rsplit("/", 1)[0]
    if "storage" in given and not _same_path(given["storage"], parent):
        raise _refusal(resume_path, "storage", parent, given["storage"])
    for option in ("num_samples", "seed", "artifact_location"):
        if option in given and given[option] != saved.get(option):
            raise _refusal(resume_path, option, saved.get(option), given[option])


def _log_changes(changed: Mapping[str, Any], saved: Mapping[str, Any]) -> None:
    for option, value in changed.items():
        before = saved.get(option)
        if before is not None and value != before:
            log.info(
                "resume: --%s %s (the study was started with %s)%s",
                option.replace("_", "-"),
                value,
                before,
                # Tune keeps the resources of trials it created before; new ones get these.
                "; trials that had started keep theirs" if option.endswith("_per_trial") else "",
            )


def resume_options(path: str, given: Mapping[str, Any]) -> StudyOptions:
    """The options of the study at `path`, as it was started, with the allowed changes in `given`.

    `given` maps option names (as on the command line, with underscores: `max_concurrent`) to
    the values a user gave again; options not given are left out. A given option that may not
    change and differs from the saved value is refused with a ConfigError naming the option,
    the saved value and the given one. Nothing is written.
    """
    resume_path = study_path(path)
    if not is_uri(resume_path) and not (Path(resume_path) / "tuner.pkl").is_file():
        raise ConfigError(f"--resume: {path} holds no Tune study (no tuner.pkl there)")
    description = read_description(resume_path)
    saved = description.settings
    space = parse_space(description.space_source, where=str(saved.get("space_path") or "<saved space>"))
    given = dict(given)
    if given.pop("dry_run", False):
        given.setdefault("space", "dry_run")
        given.setdefault("data_dir", "bundled")
    _refuse_changes(resume_path, description, given)
    changed = {k: v for k, v in given.items() if k in CHANGEABLE_ON_RESUME}
    _log_changes(changed, saved)
    mlflow_uri = changed.get("mlflow_uri") or saved.get("mlflow_uri")
    if not mlflow_uri:
        raise ConfigError(
            f"--mlflow-uri: the study at {resume_path} did not record its MLflow URI; give it again"
        )
    return StudyOptions(
        space=space,
        name=description.name,
        storage=resume_path.rstrip("/").rsplit("/", 1)[0],
        mlflow_uri=mlflow_uri,
        data_dir=saved.get("data_dir"),
        artifact_location=saved.get("artifact_location"),
        num_samples=saved.get("num_samples"),
        max_concurrent=changed.get("max_concurrent", saved.get("max_concurrent")),
        resume=resume_path,
        seed=saved.get("seed"),
        shared_storage=bool(changed.get("shared_storage", saved.get("shared_storage", False))),
        cpus_per_trial=changed.get("cpus_per_trial", saved.get("cpus_per_trial")),
        gpus_per_trial=changed.get("gpus_per_trial", saved.get("gpus_per_trial")),
        ray_address=changed.get("address"),
        local_cpus=changed.get("local_cpus"),
        time_budget=changed.get("time_budget"),
        plugin_paths=tuple(changed.get("plugin_path") or ()),
    )
