"""What a study needs before its Tuner: Ray, a storage path every node can use, the data, and
the description kept beside Tune's files. Each is checked before anything is written."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import ray

from nsr_tune.config import DataConfig, ObjectiveConfig
from nsr_tune.data import Loaded, dataset_spec, load_dataset, user_cache_root
from nsr_tune.errors import ConfigError
from nsr_tune.models import model_spec
from nsr_tune.objectives import check_objective
from nsr_tune.plugins import plugin_modules
from nsr_tune.results.record import StudyDescription
from nsr_tune.study.options import StudyOptions
from nsr_tune.study.results import is_uri, read_description, study_dir, study_path
from nsr_tune.study.space import Space
from nsr_tune.trial import check_same_plugins

__all__ = [
    "OPTUNA_JOURNAL",
    "check_storage",
    "check_study_plugins",
    "checked_storage",
    "describe_study",
    "init_ray",
    "load_study_data",
    "optuna_storage",
    "refuse_an_existing_study",
    "space_plugins",
]

log = logging.getLogger(__name__)

# The searcher's Optuna study, as an Optuna journal beside Tune's files: optuna-dashboard opens it.
OPTUNA_JOURNAL = "optuna_journal.log"


def check_storage(storage: str, *, n_nodes: int, shared: bool) -> str:
    """The storage path to hand Tune; a local path must be writable and, on several nodes, shared."""
    if is_uri(storage):
        return storage
    path = Path(study_path(storage))
    if n_nodes > 1 and not shared:
        raise ConfigError(
            f"--storage: {path} is a local path, but the cluster has {n_nodes} nodes: trials on other nodes "
            "could not write their checkpoints there, and a restored trial could not find them. Use cloud "
            "storage (s3://bucket/path, gs://...) or an NFS path mounted on every node, and pass "
            "--shared-storage to confirm that the path is the same on all nodes."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".nsr-tune-write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"--storage: {path} cannot be written: {e}") from e
    return str(path)


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("nsr-tune", "torch", "ray", "optuna", "mlflow", "numpy", "wfdb"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def init_ray(
    ray_address: str | None, *, local_cpus: int | None = None, plugin_paths: Sequence[str] = ()
) -> bool:
    """Join the running cluster when there is one; start a local Ray otherwise. The modules in
    `plugin_paths` (--plugin-path) reach every worker through Ray's runtime_env `py_modules`.

    Returns True when this process started a local Ray of its own.
    """
    modules = [m for d in plugin_paths for m in plugin_modules(d)]
    if ray.is_initialized():
        if modules:
            log.warning(
                "Ray was started in this process before the study: the --plugin-path modules %s are "
                "not shipped to its workers (start Ray with runtime_env={'py_modules': [...]} instead)",
                ", ".join(modules),
            )
        return False
    env = {"runtime_env": {"py_modules": modules}} if modules else {}
    if modules:
        log.info("shipping plugin modules to the Ray workers: %s", ", ".join(modules))
    address = ray_address or os.environ.get("RAY_ADDRESS")
    if address == "local":
        ray.init(address="local", num_cpus=local_cpus, include_dashboard=False, **env)
        return True
    if address:
        ray.init(address=address, **env)
        return False
    try:
        ray.init(address="auto", **env)
        log.info("joined the running Ray cluster")
        return False
    except ConnectionError:
        log.info("no running Ray cluster found: starting a local one")
        ray.init(num_cpus=local_cpus, include_dashboard=False, **env)
        return True


def space_plugins(space: Space) -> dict[str, dict[str, str]]:
    """The provenance of every plugin the space names, by `kind:name` (nsr_tune.plugins.Plugin)."""
    found: dict[str, dict[str, str]] = {}
    dataset = dataset_spec(DataConfig(**space.data).dataset)
    if dataset.plugin is not None:
        found[f"dataset:{dataset.name}"] = dataset.plugin.provenance()
    for family in space.models:
        spec = model_spec(family)
        if spec.plugin is not None:
            found[f"model:{family}"] = spec.plugin.provenance()
    for loss in space.objectives_space:
        objective = check_objective(ObjectiveConfig(name=loss))
        if objective is not None:
            found[f"objective:{loss}"] = objective.plugin.provenance()
    return found


def check_study_plugins(options: StudyOptions) -> dict[str, dict[str, str]]:
    """The space's plugins; on resume, refused unless they are the code the study started with."""
    found = space_plugins(options.space)
    if options.resume is not None:
        saved = read_description(options.resume).settings.get("plugins", {})
        try:
            check_same_plugins(saved, found, since=f"the study at {options.resume} started")
        except ConfigError as e:
            raise type(e)(f"--resume: {e}") from e
    for key, p in found.items():
        log.info(
            "plugin %s: %s %s (%s), source sha256 %s",
            key,
            p["target"],
            p["version"],
            p["distribution"] or "not installed",
            p["sha256"][:12],
        )
    return found


def load_study_data(options: StudyOptions, space_data: dict[str, Any]) -> Loaded:
    """Read and split the space's dataset; on resume, refuse data that differ from the study's own."""
    report = load_dataset(DataConfig(**space_data), options.data_dir)
    data_dir, splits = report.data_dir, report.splits
    if options.resume is not None:
        saved = read_description(options.resume).settings.get("data_fingerprint")
        if saved and saved != report.fingerprint:
            raise ConfigError(
                f"--resume: the records in {data_dir} are not the ones the study started on: data "
                f"fingerprint {report.fingerprint[:16]} now, {saved[:16]} when it started. Restore the "
                "original records, or start a new study on these."
            )
    log.info("data: %s (%s): %s", data_dir, report.fingerprint[:12], json.dumps(splits.describe()))
    return report


def describe_study(
    options: StudyOptions,
    *,
    space: Space,
    report: Loaded,
    storage: str,
    plugins: dict[str, dict[str, str]] | None = None,
) -> StudyDescription:
    """What MLflow's parent run shows, and everything a resume needs (see nsr_tune.study.options)."""
    data_dir, splits = report.data_dir, report.splits
    plugins = plugins or {}
    # Which code each plugin was: its package, version and source hash, in the parent run.
    plugin_params = {
        f"plugin.{key}.{k}": v for key, p in plugins.items() for k, v in p.items() if k != "name"
    }
    return StudyDescription(
        name=options.name,
        experiment=space.name,
        objectives=tuple(space.objectives),
        params={
            "space": space.name,
            "sampler": space.sampler,
            "sampler_seed": space.sampler_seed,
            "seed": space.seed,
            "num_samples": options.effective_num_samples,
            "dataset": DataConfig(**space.data).dataset,
            "split": splits.split,
            "train_beats": len(splits.train),
            "val_beats": len(splits.val),
            "test_beats": len(splits.test),
            "objectives": json.dumps(space.objectives),
            "data_dir": str(data_dir),
            **plugin_params,
        },
        tags={
            "git_commit": _git_commit(),
            "data_fingerprint": report.fingerprint,
            "library_versions": json.dumps(_versions()),
            "nsr_tune.space_path": space.path,
        },
        texts={
            "search_space.yaml": space.source,
            "data_splits.json": json.dumps(splits.describe(), indent=2),
        },
        settings=options.settings(
            data_dir=str(data_dir), data_fingerprint=report.fingerprint, storage=storage, plugins=plugins
        ),
    )


def refuse_an_existing_study(options: StudyOptions) -> None:
    """A study of the same name is refused before Ray starts, so nothing is written."""
    if options.resume is not None or is_uri(options.storage):
        return
    existing = Path(study_dir(options.storage, options.name))
    if (existing / "tuner.pkl").exists():
        raise ConfigError(
            f"--name: a study already exists at {existing}; "
            f"continue it with --resume {existing} or pick another --name"
        )


def checked_storage(options: StudyOptions, *, started_here: bool) -> str:
    """The storage path, checked against the cluster Ray runs on (Ray is shut down if it fails)."""
    n_nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    try:
        return check_storage(options.storage, n_nodes=n_nodes, shared=options.shared_storage)
    except ConfigError:
        if started_here:
            ray.shutdown()
        raise


def optuna_storage(experiment_path: str) -> Any:
    """The Optuna storage of a study's searcher: a journal file in the study's directory, which a
    resumed driver shares (the searcher's pickled state points at it) and optuna-dashboard reads.

    A study on cloud storage keeps its journal on the driver, in the user cache: Optuna's journal
    is a local (or NFS) file.
    """
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if is_uri(experiment_path):
        folder = user_cache_root() / "nsr-tune" / "optuna" / experiment_path.rstrip("/").rsplit("/", 1)[-1]
        log.info("the study's Optuna journal is kept on this driver, in %s", folder)
    else:
        folder = Path(experiment_path)
    folder.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(folder / OPTUNA_JOURNAL)))
