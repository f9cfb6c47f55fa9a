"""`nsr-tune tune` (and tune.py) and `finalize`: running a study, and its finalists' second evaluation."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from nsr_tune.cli._common import (
    EpsList,
    add_mlflow_uri,
    add_plugin_path,
    examples,
    log,
    on_interrupt,
    tracking_uri,
)
from nsr_tune.errors import ConfigError

# The options of `tune` as StudyOptions/resume know them (argparse dest names).
_TUNE_OPTIONS = (
    "space",
    "name",
    "storage",
    "shared_storage",
    "mlflow_uri",
    "artifact_location",
    "num_samples",
    "max_concurrent",
    "cpus_per_trial",
    "gpus_per_trial",
    "dry_run",
    "seed",
    "data_dir",
    "address",
    "local_cpus",
    "time_budget",
    "plugin_path",
)


def _study_options(args: argparse.Namespace):
    """The study the options describe: a new one, or (--resume) the one at that path as it was started."""
    from nsr_tune.study.options import StudyOptions, resume_options
    from nsr_tune.study.space import load_space

    if args.resume:
        # Everything else comes from the study itself; what is given again is checked there.
        given = {k: getattr(args, k) for k in _TUNE_OPTIONS if getattr(args, k) not in (None, False)}
        if args.mlflow_uri is None and os.environ.get("MLFLOW_TRACKING_URI"):
            given["mlflow_uri"] = os.environ["MLFLOW_TRACKING_URI"]
        options = resume_options(args.resume, given)
        log.info(
            "resuming study %r: space %s (as saved with the study), data %s, %d trials, MLflow %s",
            options.name,
            options.space.path,
            options.data_dir,
            options.effective_num_samples,
            options.mlflow_uri,
        )
        return options
    space = load_space(args.space or ("dry_run" if args.dry_run else "mitbih_wide"))
    return StudyOptions(
        space=space,
        name=args.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}",
        storage=args.storage or str(Path("runs") / "tune"),
        mlflow_uri=tracking_uri(args),
        data_dir=args.data_dir or ("bundled" if args.dry_run else None),
        artifact_location=args.artifact_location,
        num_samples=args.num_samples,
        max_concurrent=args.max_concurrent,
        seed=args.seed,
        shared_storage=args.shared_storage,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        ray_address=args.address,
        local_cpus=args.local_cpus,
        time_budget=args.time_budget,
        plugin_paths=tuple(args.plugin_path or ()),
    )


def _cmd_tune(args: argparse.Namespace) -> int:
    from nsr_tune.results.finalists import final_table
    from nsr_tune.results.front import front_table
    from nsr_tune.study.results import study_dir
    from nsr_tune.study.runner import run_study, summary_lines

    # No check of the tracking store here: a study runs through an MLflow outage and writes what
    # it measured once the server is back (nsr_tune.study.callback).
    options = _study_options(args)
    path = options.resume or study_dir(options.storage, options.name)
    on_interrupt(
        args,
        f"the study so far is kept at {path} (finished trials, checkpoints, MLflow runs); "
        f"continue with: nsr-tune tune --resume {path}",
    )
    outcome = run_study(options)
    print("\nPareto front (validation objectives; test values beside, never seen by the search):")
    print(front_table(outcome.front))
    if outcome.final is not None:
        print("\nFinalists under the final protocol (test split; intervals resample records):")
        print(final_table(outcome.final))
    print()
    for line in summary_lines(outcome, mlflow_uri=options.mlflow_uri, experiment=options.space.name):
        print(line)
    return 0


def _finalize_tracker(args: argparse.Namespace, record):
    """The tracker finalize writes to: --mlflow-uri, else $MLFLOW_TRACKING_URI, else the study's own
    store; None with --no-mlflow."""
    from nsr_tune.tracking import StudyTracker, check_store

    if args.no_mlflow:
        return None
    settings = record.description.settings
    uri = tracking_uri(args, fallback=settings.get("mlflow_uri"))
    try:
        check_store(uri, must_exist=False)
    except ConfigError as e:
        raise ConfigError(f"{e}; or evaluate without it: --no-mlflow") from None
    return StudyTracker(
        tracking_uri=uri,
        experiment=record.description.experiment,
        artifact_location=settings.get("artifact_location"),
    )


def _cmd_finalize(args: argparse.Namespace) -> int:
    from nsr_tune.results.finalists import final_table
    from nsr_tune.study.finalize import finalize_study, study_final_config
    from nsr_tune.study.results import read_study
    from nsr_tune.study.startup import init_ray

    record = read_study(args.experiment_path)
    cap = args.per_class_cap
    final = study_final_config(
        record,
        top_ranks=args.top_ranks,
        bootstrap=args.bootstrap,
        protocol=args.protocol,
        eps=args.eps,
        per_class_cap="keep" if cap is None else (None if cap == "all" else _whole(cap, "--per-class-cap")),
    )
    tracker = _finalize_tracker(args, record)
    on_interrupt(
        args,
        f"every finalist evaluated so far is kept beside the study in {args.experiment_path}/final; "
        "run the same command again to evaluate the rest",
    )
    started: list[bool] = []
    try:
        outcome = finalize_study(
            args.experiment_path,
            final=final,
            tracker=tracker,
            data_dir=args.data_dir,
            start_ray=lambda: started.append(
                init_ray(args.address, local_cpus=args.local_cpus, plugin_paths=args.plugin_path or ())
            ),
        )
        if tracker is not None:
            tracker.end_study()
    finally:
        if any(started):
            import ray

            ray.shutdown()
    print(final_table(outcome.front, level=outcome.config.ci))
    print(
        f"finalize ({outcome.config.fingerprint()}): {len(outcome.evaluated)} finalists evaluated now, "
        f"{len(outcome.reused)} kept from before; {len(outcome.logged)} written to MLflow"
        + (f" (parent run {outcome.parent_run_id})" if tracker is not None else " (MLflow left out)")
        + f"; {outcome.seconds:.0f} s"
    )
    return 0


def _whole(text: str, option: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{option}: expected a whole number >= 1 or 'all', got {text!r}")
    return value


def add_tune_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `nsr-tune tune` and of tune.py (one set, so the two cannot drift apart).

    No option has a default here: a study's defaults are applied when it starts, so that a
    resume can tell an option given again from one left out.
    """
    from nsr_tune.study.shipped import shipped_spaces

    p.add_argument(
        "--space",
        help=f"a search-space YAML file, or the name of a shipped one ({', '.join(shipped_spaces())}); "
        "default: mitbih_wide, or dry_run with --dry-run",
    )
    p.add_argument("--name", help="study name (default: SPACE-YYYYmmdd-HHMMSS)")
    p.add_argument(
        "--storage",
        help="where Tune keeps results and checkpoints: a local path (default: runs/tune), "
        "s3://..., gs://..., or an NFS path with --shared-storage",
    )
    p.add_argument(
        "--shared-storage",
        action="store_true",
        help="declare that a local --storage path is the same on every node (NFS, or one machine)",
    )
    add_mlflow_uri(p, "the MLflow store the study is tracked in")
    p.add_argument(
        "--artifact-location",
        help="where MLflow stores artifacts of a new experiment, e.g. s3://... (default: the store's own)",
    )
    p.add_argument("--num-samples", type=int, help="number of trials (default: the space's)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: the space's)")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs each trial holds (default: the space's)")
    p.add_argument(
        "--gpus-per-trial", type=float, help="GPU fraction per trial, e.g. 0.25 (default: the space's)"
    )
    p.add_argument(
        "--resume",
        metavar="PATH",
        help="continue the study at this Tune experiment path, exactly as it was started (its saved "
        "space, data, name, samples, seed); only --address, --max-concurrent, --cpus-per-trial, "
        "--gpus-per-trial, --mlflow-uri, --local-cpus, --shared-storage, --time-budget and --plugin-path may "
        "be given anew "
        "(default: a new study)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="a small real study on the bundled records: local Ray, 4 trials, embedded MLflow store",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="seed of the searcher and of every trial (default: the space's seed and search.seed)",
    )
    p.add_argument(
        "--data-dir",
        help="the space's dataset directory: MIT-BIH, or 'bundled' (default: $NSR_TUNE_DATA, else the "
        "user cache); CPSC2018 (default: $NSR_TUNE_CPSC2018)",
    )
    p.add_argument(
        "--address",
        help="Ray address to join (default: $RAY_ADDRESS, else a running cluster, else a new local Ray)",
    )
    p.add_argument(
        "--local-cpus", type=int, help="CPUs for a local Ray started by this command (default: all)"
    )
    add_plugin_path(p)
    p.add_argument(
        "--time-budget",
        type=parse_duration,
        metavar="DURATION",
        help="wall time of this run, e.g. 2h, 90m, 3600s or 3600: after it no new trial starts, the "
        "running ones finish, and the front is drawn from the trials that finished (default: none)",
    )


def parse_duration(text: str) -> float:
    """Seconds from '2h', '90m', '45s', '1.5h' or a plain number of seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    t = text.strip().lower()
    scale = units.get(t[-1:], None)
    number = t[:-1] if scale is not None else t
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a duration such as 2h, 90m or 3600s, got {text!r}")
    return seconds


def _add_finalize(sub: argparse._SubParsersAction) -> None:
    from nsr_tune.protocol import PROTOCOLS

    fin = sub.add_parser(
        "finalize",
        help="evaluate a study's finalists again on the test split under its final protocol "
        "(safe to run twice: only what is missing is evaluated or logged)",
        epilog=examples(
            "nsr-tune finalize runs/tune/NAME",
            "nsr-tune finalize runs/tune/NAME --protocol standard --eps 0.01,0.05 --no-mlflow",
        ),
    )
    fin.add_argument(
        "experiment_path", metavar="EXPERIMENT_PATH", help="the study's Tune experiment path (STORAGE/NAME)"
    )
    add_mlflow_uri(fin, "the MLflow store to write to", study=True)
    fin.add_argument("--no-mlflow", action="store_true", help="keep the results beside the study only")
    fin.add_argument(
        "--top-ranks", type=int, help="finalists: validation ranks below this (default: the space's)"
    )
    fin.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        help="start from this protocol (default: the space's evaluation.final)",
    )
    fin.add_argument(
        "--eps", action=EpsList, help="noise levels, with commas or spaces (default: the space's)"
    )
    fin.add_argument("--per-class-cap", help="test beats per class, or 'all' (default: the space's)")
    fin.add_argument(
        "--bootstrap", type=int, help="resamples of test records for the intervals (default: the space's)"
    )
    fin.add_argument("--data-dir", help="the study's records (default: where it read them)")
    add_plugin_path(fin)
    fin.add_argument(
        "--address",
        help="Ray address to join (default: $RAY_ADDRESS, else a running cluster, else a local Ray)",
    )
    fin.add_argument(
        "--local-cpus", type=int, help="CPUs for a local Ray started by this command (default: all)"
    )
    fin.set_defaults(func=_cmd_finalize)


def add_commands(sub: argparse._SubParsersAction) -> None:
    tune_p = sub.add_parser(
        "tune",
        help="run a multi-objective study on Ray Tune (same as tune.py)",
        epilog=examples(
            "nsr-tune tune --dry-run",
            "nsr-tune tune --space mitbih_paper --num-samples 32 --storage runs/tune --name paper",
            "nsr-tune tune --resume runs/tune/paper",
        ),
    )
    add_tune_arguments(tune_p)
    tune_p.set_defaults(func=_cmd_tune)
    _add_finalize(sub)
