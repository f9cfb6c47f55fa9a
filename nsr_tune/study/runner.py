"""Run a study: Ray start-up, data into the object store, Tuner fit or restore, the Pareto front.

This is the only module that calls `ray.init` and builds Tuners. The order matters: every
argument and the search space are checked, and the storage path too, before Ray starts or a
single file is written.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune

from nsr_tune.data import SplitData
from nsr_tune.plots import report_html
from nsr_tune.results.finalists import FinalFront
from nsr_tune.results.front import StudyFront, front_from_record
from nsr_tune.results.record import StudyDescription, StudyRecord
from nsr_tune.results.report import build_report
from nsr_tune.study.callback import MlflowStudyCallback
from nsr_tune.study.finalize import finalize_study, kept_finals
from nsr_tune.study.moasha import Rungs
from nsr_tune.study.options import StudyOptions
from nsr_tune.study.results import (
    checkpoint_reader,
    read_description,
    read_study,
    study_dir,
    write_study_file,
)
from nsr_tune.study.scheduler import MOASHAScheduler, StudySearch, TimeBudget
from nsr_tune.study.space import Space
from nsr_tune.study.startup import (
    check_study_plugins,
    checked_storage,
    describe_study,
    init_ray,
    load_study_data,
    optuna_storage,
    refuse_an_existing_study,
)
from nsr_tune.study.trainable import CHECKPOINT_FILE, train_trial
from nsr_tune.tracking import StudyTracker, front_view_url, outage_errors

__all__ = ["StudyOutcome", "run_study", "summary_lines"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyOutcome:
    experiment_path: str
    parent_run_id: str
    experiment_id: str  # MLflow's; "" when MLflow could not be reached
    front: StudyFront
    n_trials: int
    n_errors: int
    seconds: float
    final: FinalFront | None = None  # the finalists' front under the final protocol


def _restore_tuner(
    path: str, trainable: Any, options: StudyOptions, callbacks: list[tune.Callback]
) -> tune.Tuner:
    tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    # Tuner.restore keeps the TuneConfig and RunConfig pickled when the study started, and Ray
    # has no public way to change them; both are read when fit() starts. The callback is this
    # run's (its tracker may point at a tracking server that has moved), and the concurrency
    # limit may have been given anew.
    internal = tuner._local_tuner
    internal._run_config.callbacks = callbacks
    tune_config = internal._tune_config
    if isinstance(tune_config.scheduler, MOASHAScheduler):
        tune_config.scheduler.experiment_path = path  # its rung record, where the study is now
    if tune_config.max_concurrent_trials != options.effective_max_concurrent:
        log.info(
            "resume: at most %d trials at once (was %s)",
            options.effective_max_concurrent,
            tune_config.max_concurrent_trials,
        )
        tune_config.max_concurrent_trials = options.effective_max_concurrent
    return tuner


def _start_tracking(
    tracker: StudyTracker, description: StudyDescription, experiment_path: str, options: StudyOptions
) -> MlflowStudyCallback:
    """MLflow's parent run, and the callback that mirrors trials into it (offline when the tracking
    server cannot be reached: the study runs anyway and is written to MLflow later)."""
    callback = MlflowStudyCallback(tracker)
    try:
        tracker.start_study(
            experiment_path=experiment_path,
            run_name=description.name,
            objectives=description.objectives,
            params=description.params,
            tags=description.tags,
            texts=description.texts,
        )
    except outage_errors() as e:
        callback.offline = True
        log.warning(
            "MLflow at %s cannot be reached (%s). The study runs anyway; its results go to MLflow when "
            "it ends, or later with `nsr-tune sync-mlflow %s --mlflow-uri %s`.",
            options.mlflow_uri,
            str(e).splitlines()[0][:200],
            experiment_path,
            options.mlflow_uri,
        )
    return callback


def _trainable(options: StudyOptions, space: Space, splits: SplitData, *, started_here: bool) -> Any:
    """The trainable with the beats in Ray's object store and the trial's resources."""
    resources = options.resources()
    if resources["gpu"] > 0 and started_here and not ray.cluster_resources().get("GPU"):
        # A laptop or CI run of a GPU space: the local Ray has no GPU, so the trials would wait
        # forever. A joined cluster keeps the request: its GPU workers may still be starting.
        log.warning(
            "the space asks for %g GPU per trial, but this local Ray has none: trials run on CPU",
            resources["gpu"],
        )
        resources["gpu"] = 0.0
    # The beats go into Ray's object store once; every trial, on any node, reads them from there.
    return tune.with_resources(
        tune.with_parameters(train_trial, data=splits, objectives=space.metrics), resources
    )


def _new_tuner(
    trainable: Any,
    options: StudyOptions,
    space: Space,
    *,
    storage: str,
    experiment_path: str,
    callbacks: list,
) -> tune.Tuner:
    searcher = StudySearch(
        space=space.define_by_run,
        metric=space.metrics,
        mode=space.modes,
        sampler=space.sampler_instance(),
        points_to_evaluate=[dict(p) for p in space.start_with] or None,
        study_name=options.name,
        storage=optuna_storage(experiment_path),
    )
    if options.time_budget is not None:
        callbacks.append(TimeBudget(searcher, options.time_budget))
    scheduler = None
    if space.scheduler is not None:
        # Early stopping on the `rung_*` scores of every objective (nsr_tune.study.moasha).
        scheduler = MOASHAScheduler(
            rungs=Rungs(settings=space.scheduler, modes=space.directions),
            objectives=space.metrics,
            experiment_path=experiment_path,
        )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=options.effective_num_samples,
            max_concurrent_trials=options.effective_max_concurrent,
            trial_name_creator=lambda t: f"trial_{t.trial_id}",
            trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=options.name,
            storage_path=storage,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=space.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            verbose=1,
        ),
    )


def _tuner(
    trainable: Any,
    options: StudyOptions,
    space: Space,
    *,
    storage: str,
    experiment_path: str,
    callbacks: list,
) -> tune.Tuner:
    """A new Tuner, or the study's own restored (with this run's callbacks and time budget)."""
    # The objectives exist only in a trial's last report, by design: a partly trained model's
    # scores must never reach the searcher or the Pareto front. Tune's strict check would
    # demand them in every report; train_trial checks the final one itself.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # Save Tune's experiment state at most a second after a change (its default waits longer),
    # so that a trial that finished just before the driver died is not trained again on resume.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # Ctrl-C ends the driver at once, as KeyboardInterrupt, and the command says how to resume.
    # Tune's own handler would stop the trials and return, and the study would go on to evaluate
    # its finalists as if it had finished. Its saved state is resumable either way.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    if options.resume is None:
        return _new_tuner(
            trainable, options, space, storage=storage, experiment_path=experiment_path, callbacks=callbacks
        )
    tuner = _restore_tuner(options.resume, trainable, options, callbacks)
    searcher = tuner._local_tuner._tune_config.search_alg
    if options.time_budget is not None and isinstance(searcher, StudySearch):
        callbacks.append(TimeBudget(searcher, options.time_budget))
    return tuner


def _publish(
    tracker: StudyTracker, experiment_path: str, splits: SplitData, options: StudyOptions
) -> tuple[str, StudyFront, str, FinalFront | None]:
    """The finalists evaluated again, then everything written to MLflow: (parent run, front,
    experiment id, final front); the run and experiment are "" when MLflow stays out of reach."""
    record = read_study(experiment_path)
    # The second stage: the finalists evaluated again on the test split under the space's
    # `evaluation.final` protocol. Their results are kept beside the study first, so an MLflow
    # outage below loses none of them.
    final = None
    if front_from_record(record).result.ids:
        final = finalize_study(experiment_path, test_beats=splits.test).front
    else:
        log.warning("no trial completed: there are no finalists to evaluate again")
    # Whatever MLflow missed while the study ran (an outage, a blip) is written now, from
    # Tune's results; after a study without trouble this writes nothing new.
    try:
        parent = tracker.sync(record, checkpoint_of=checkpoint_reader(experiment_path, CHECKPOINT_FILE))
        front = tracker.front(parent)
        tracker.publish_front(front)
        if final is not None:
            final = finalize_study(experiment_path, tracker=tracker, test_beats=splits.test).front
        _log_report(tracker, parent, read_study(experiment_path))
        tracker.end_study()
        return parent, front, tracker.experiment_id(), final
    except outage_errors() as e:
        log.warning(
            "MLflow at %s is still unreachable (%s); nothing measured is lost: every result is in %s. "
            "Write it to MLflow later with `nsr-tune sync-mlflow %s --mlflow-uri %s`.",
            options.mlflow_uri,
            str(e).splitlines()[0][:200],
            experiment_path,
            experiment_path,
            options.mlflow_uri,
        )
        return "", front_from_record(record), "", final


def run_study(options: StudyOptions) -> StudyOutcome:
    """Run (or, with `options.resume`, continue) a study; the front is drawn when it ends."""
    started = time.perf_counter()
    space = options.seeded_space
    # Plugins and data first: a plugin whose code changed under a resumed study, a bad data
    # directory, or other records under a resumed study's path, fail before Ray starts or
    # anything is written.
    plugins = check_study_plugins(options)
    loaded = load_study_data(options, dict(space.data))
    refuse_an_existing_study(options)
    started_here = init_ray(
        options.ray_address, local_cpus=options.local_cpus, plugin_paths=options.plugin_paths
    )
    storage = checked_storage(options, started_here=started_here)
    experiment_path = options.resume or study_dir(storage, options.name)
    if options.resume is None:
        description = describe_study(options, space=space, report=loaded, storage=storage, plugins=plugins)
        # Beside Tune's own files: what MLflow's parent run and a resume need, so that both
        # can be rebuilt from the experiment directory alone (sync-mlflow, --resume PATH).
        write_study_file(experiment_path, description)
    else:
        description = read_description(experiment_path)
    tracker = StudyTracker(
        tracking_uri=options.mlflow_uri, experiment=space.name, artifact_location=options.artifact_location
    )
    callbacks: list[tune.Callback] = [_start_tracking(tracker, description, experiment_path, options)]
    trainable = _trainable(options, space, loaded.splits, started_here=started_here)
    tuner = _tuner(
        trainable, options, space, storage=storage, experiment_path=experiment_path, callbacks=callbacks
    )
    results = tuner.fit()
    parent, front, experiment_id, final = _publish(tracker, experiment_path, loaded.splits, options)
    return StudyOutcome(
        experiment_path=experiment_path,
        parent_run_id=parent,
        experiment_id=experiment_id,
        front=front,
        n_trials=len(results),
        n_errors=len(results.errors),
        seconds=time.perf_counter() - started,
        final=final,
    )


def _log_report(tracker: StudyTracker, parent: str, record: StudyRecord) -> None:
    """The study's report (nsr-tune report) as report.html of its parent run."""
    with tempfile.TemporaryDirectory() as d:
        path = report_html(build_report(record, kept_finals(record)), Path(d) / "report.html")
        tracker.log_file(parent, path)


def summary_lines(outcome: StudyOutcome, *, mlflow_uri: str, experiment: str) -> list[str]:
    """What to print at the end of a study: where things are and how to look at them."""
    store = mlflow_uri
    lines = [
        f"{outcome.n_trials} trials ({outcome.n_errors} errored) in {outcome.seconds:.0f} s",
        f"Tune results: {outcome.experiment_path}   (continue with --resume {outcome.experiment_path})",
        f"MLflow: experiment {experiment!r}, parent run {outcome.parent_run_id}, store {store}",
    ]
    if not outcome.experiment_id:
        return lines
    served = store.startswith(("http://", "https://"))
    url = front_view_url(
        store if served else "http://127.0.0.1:5000", outcome.experiment_id, outcome.front.result.names
    )
    lines.append("See the front in the MLflow UI:")
    if not served:
        lines.append(f"  mlflow ui --backend-store-uri {store}")
    lines += [
        f"  {url}",
        '  lists the Pareto-optimal trials; under "Columns" tick '
        + ", ".join(outcome.front.result.names)
        + " and the tag pareto_optimal.",
        "  The study's parent run holds report.html (the interactive front, hover for details, the",
        "  finalists, attacks, flags and cost), pareto.png, pareto.csv and final_front.png under Artifacts.",
    ]
    return lines
