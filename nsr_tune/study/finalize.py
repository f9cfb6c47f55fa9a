"""A study's second stage on Ray: each finalist evaluated again as a Ray task, then tracked.

The finalists are read from the study's own files (Tune's results), their models from their
newest checkpoints, and each evaluation runs as a Ray task with the trial resources, so on a
cluster they run in parallel on the GPU workers. Each task writes its finalist's result beside
the study (`final/<settings>/<trial>.json`) before it returns: a finalize that is killed loses
no finished evaluation, and running it again evaluates only what is missing and logs to MLflow
only what MLflow does not hold (`StudyTracker.record_final` / `publish_final`).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from tqdm.auto import tqdm

from nsr_tune.checkpoints import load_model_file
from nsr_tune.config import DataConfig
from nsr_tune.data import BeatSet, RecordSet, check_data, load_dataset, nstdb_if_present
from nsr_tune.errors import ConfigError
from nsr_tune.evaluation.finalist import evaluate_finalist
from nsr_tune.metrics import objectives_eps
from nsr_tune.protocol import FinalConfig
from nsr_tune.protocol import protocol as named_protocol
from nsr_tune.results.finalists import (
    FinalFront,
    FinalResult,
    choose_finalists,
    choose_surrogate,
    final_front,
)
from nsr_tune.results.front import front_from_record
from nsr_tune.results.record import StudyRecord
from nsr_tune.study.results import (
    checkpoint_reader,
    latest_checkpoint,
    latest_final_settings,
    read_bytes,
    read_finals,
    read_study,
    write_final,
)
from nsr_tune.study.space import Space, parse_space
from nsr_tune.study.trainable import CHECKPOINT_FILE
from nsr_tune.tracking import StudyTracker
from nsr_tune.trial import pick_device

__all__ = ["FinalizeOutcome", "finalize_study", "kept_finals", "study_final_config"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinalizeOutcome:
    front: FinalFront
    config: FinalConfig
    evaluated: tuple[str, ...]  # finalists (trial ids) evaluated by this run
    reused: tuple[str, ...]  # finalists whose results were kept from an earlier run
    logged: tuple[str, ...]  # finalists whose results this run wrote to MLflow
    published: bool  # whether this run (re)published the final front to the parent run
    parent_run_id: str
    seconds: float


def study_final_config(
    record: StudyRecord,
    *,
    protocol: str | None = None,
    eps: Sequence[float] | None = None,
    per_class_cap: int | str | None = "keep",
    top_ranks: int | None = None,
    bootstrap: int | None = None,
) -> FinalConfig:
    """The study's own `evaluation.final` (from its saved space), with what is given replaced.

    `protocol` starts the evaluation from another named protocol (keeping the space's eps and
    beat cap); `per_class_cap` "keep" keeps the space's cap, None evaluates every test beat.
    """
    space = _space(record)
    final = space.final
    evaluation = final.evaluation
    if protocol is not None:
        evaluation = named_protocol(protocol, eps=evaluation.eps, per_class_cap=evaluation.per_class_cap)
    changes: dict[str, Any] = {}
    if eps:
        changes["eps"] = eps
    if per_class_cap != "keep":
        changes["per_class_cap"] = per_class_cap
    evaluation = dataclasses.replace(evaluation, **changes)
    needed = objectives_eps(space.objectives)
    missing = [e for e in needed if e not in evaluation.eps]
    if missing:
        raise ConfigError(
            f"--eps: must include {', '.join(map(str, missing))}, the noise level(s) of the study's "
            "objectives"
        )
    stage = {"top_ranks": top_ranks, "bootstrap": bootstrap}
    return dataclasses.replace(
        final, evaluation=evaluation, **{k: v for k, v in stage.items() if v is not None}
    )


def kept_finals(record: StudyRecord) -> dict[str, FinalResult]:
    """The finalists' results kept beside the study: those of its own final settings, or else
    of the settings a later `finalize` used most recently (nothing when there are none)."""
    own = _space(record).final.fingerprint()
    found = read_finals(record.experiment_path, own)
    if not found:
        latest = latest_final_settings(record.experiment_path)
        found = read_finals(record.experiment_path, latest) if latest else {}
    return {t: FinalResult.from_dict(d) for t, d in found.items()}


def _space(record: StudyRecord) -> Space:
    return parse_space(record.description.space_source, where=f"{record.experiment_path} (saved space)")


def _test_beats(record: StudyRecord, space: Space, data_dir: str | None) -> tuple[BeatSet | RecordSet, str]:
    """The study's test split, from the records it was started on (checked by fingerprint)."""
    settings = record.description.settings
    config = check_data(DataConfig(**dict(space.data)))
    report = load_dataset(config, data_dir or settings.get("data_dir"))
    directory = report.data_dir
    saved = settings.get("data_fingerprint")
    if saved and saved != report.fingerprint:
        raise ConfigError(
            f"--data-dir: the records in {directory} are not the ones the study ran on: data fingerprint "
            f"{report.fingerprint[:16]} now, {saved[:16]} then. Point --data-dir at the study's records."
        )
    return report.splits.test, config.split


def _load_model(path: str) -> Any:
    """A trial's model from its checkpoint file (local, NFS or cloud storage)."""
    with tempfile.TemporaryDirectory() as d:
        local = Path(d) / CHECKPOINT_FILE
        local.write_bytes(read_bytes(path))
        return load_model_file(local)[1]


def _evaluate_task(
    experiment_path: str,
    trial_id: str,
    model_path: str,
    surrogate_id: str,
    surrogate_path: str | None,
    beats: BeatSet | RecordSet,
    split: str,
    final: Mapping[str, Any],
) -> dict[str, Any]:
    """One finalist, in a Ray task: evaluate, keep the result beside the study, return it."""
    config = FinalConfig.from_dict(final)
    # The noise records are read on the worker, from its $NSR_TUNE_NSTDB or user cache.
    nstdb = nstdb_if_present() if config.evaluation.noise_stress else None
    result = evaluate_finalist(
        _load_model(model_path),
        beats,
        trial_id=trial_id,
        config=config,
        split=split,
        surrogate=_load_model(surrogate_path) if surrogate_path else None,
        surrogate_id=surrogate_id,
        nstdb=nstdb,
        device=pick_device(),
    )
    result = dataclasses.replace(result, node_id=ray.get_runtime_context().get_node_id())
    write_final(experiment_path, result.settings, trial_id, result.to_dict())
    return result.to_dict()


def finalize_study(
    experiment_path: str,
    *,
    final: FinalConfig | None = None,
    tracker: StudyTracker | None = None,
    data_dir: str | None = None,
    test_beats: BeatSet | RecordSet | None = None,
    evaluate: bool = True,
    start_ray: Callable[[], object] | None = None,
) -> FinalizeOutcome:
    """Evaluate the study's finalists that lack a result for these settings, then track them.

    Ray must be running, or `start_ray` given: the entry point's way to start or join it, called
    only when something is left to evaluate. `test_beats` saves reading the
    records again when the caller holds the study's test split; otherwise they are read from
    `data_dir` (default: the study's own) and checked against the study's fingerprint.
    `evaluate=False` evaluates nothing and tracks only the results already kept (sync-mlflow).
    `tracker` None keeps MLflow out of it (the results stay beside the study); with one, the
    study's parent run is left RUNNING for the caller to end.
    """
    started = time.perf_counter()
    record = read_study(experiment_path)
    experiment_path = record.experiment_path  # a relative path made absolute, as the study records it
    space = _space(record)
    final = final or space.final
    settings = final.fingerprint()
    validation = front_from_record(record)
    finalists = choose_finalists(validation, top_ranks=final.top_ranks)
    if not finalists:
        raise ConfigError(f"{experiment_path}: the study has no complete trial to finalize")
    kept = {k: v for k, v in read_finals(experiment_path, settings).items() if k in finalists}
    todo = [t for t in finalists if t not in kept]
    log.info(
        "finalize %s: %d finalists (validation ranks < %d), %d evaluated before, %d to evaluate (%s)",
        experiment_path,
        len(finalists),
        final.top_ranks,
        len(kept),
        len(todo),
        settings,
    )
    new: dict[str, dict[str, Any]] = {}
    if todo and evaluate:
        if start_ray is not None:
            start_ray()
        new = _run_tasks(record, space, final, todo, data_dir=data_dir, test_beats=test_beats)
    finals = {t: FinalResult.from_dict(d) for t, d in {**kept, **new}.items()}
    front = final_front(validation, finals)

    logged: list[str] = []
    published, parent = False, ""
    if tracker is not None:
        parent = tracker.sync(record, checkpoint_of=checkpoint_reader(experiment_path, CHECKPOINT_FILE))
        configs = {t.trial_id: t.config for t in record.trials}
        run_ids = {t: tracker.trial_run_for(t, configs[t]) for t in finals}
        logged = [t for t in finalists if tracker.record_final(run_ids[t], finals[t])]
        published = tracker.publish_final(front, run_ids, settings=settings, parent_run_id=parent)
    return FinalizeOutcome(
        front=front,
        config=final,
        evaluated=tuple(new),
        reused=tuple(kept),
        logged=tuple(logged),
        published=published,
        parent_run_id=parent,
        seconds=time.perf_counter() - started,
    )


def _run_tasks(
    record: StudyRecord,
    space: Space,
    final: FinalConfig,
    todo: list[str],
    *,
    data_dir: str | None,
    test_beats: BeatSet | RecordSet | None,
) -> dict[str, dict[str, Any]]:
    """The missing evaluations, as Ray tasks with the trial resources; trial id -> result."""
    if test_beats is None:
        test_beats, split = _test_beats(record, space, data_dir)
    else:
        split = check_data(DataConfig(**dict(space.data))).split
    settings = record.description.settings
    cpu = float(settings.get("cpus_per_trial") or space.resources["cpu"])
    gpu = float(settings.get("gpus_per_trial") if settings.get("gpus_per_trial") is not None else 0.0)
    if gpu > 0 and not ray.cluster_resources().get("GPU"):
        log.warning("the study's trials asked for %g GPU, but this Ray has none: finalists run on CPU", gpu)
        gpu = 0.0
    path = record.experiment_path

    def model_path(trial_id: str) -> str:
        found = latest_checkpoint(path, trial_id, CHECKPOINT_FILE)
        if found is None:
            raise ConfigError(f"{path}: trial {trial_id} has no checkpoint to evaluate")
        return found

    beats_ref = ray.put(test_beats)
    task = ray.remote(_evaluate_task).options(num_cpus=cpu, num_gpus=gpu, max_retries=2)
    pending = {}
    for trial_id in todo:
        surrogate = choose_surrogate(record.trials, exclude=trial_id)
        if "transfer" in final.evaluation.attacks and surrogate is None:
            log.warning("finalist %s: the study has no other complete CE trial to transfer from", trial_id)
        ref = task.remote(
            path,
            trial_id,
            model_path(trial_id),
            surrogate or "",
            model_path(surrogate) if surrogate else None,
            beats_ref,
            split,
            final.to_dict(),
        )
        pending[ref] = trial_id
    out: dict[str, dict[str, Any]] = {}
    clock = time.perf_counter()
    with tqdm(total=len(todo), desc="finalists evaluated", unit="trial", disable=None) as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            trial_id = pending.pop(done[0])
            out[trial_id] = ray.get(done[0])
            bar.update(1)
            seconds = time.perf_counter() - clock
            log.info("finalist %s evaluated (%d of %d, %.0f s)", trial_id, len(out), len(todo), seconds)
    return out
