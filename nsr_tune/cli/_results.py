"""`nsr-tune report`, `pareto` and `sync-mlflow`: a study's results, read from its directory or
from MLflow, and written to MLflow after an outage."""

from __future__ import annotations

import argparse

from nsr_tune.cli._checks import check_out_dir, check_out_file
from nsr_tune.cli._common import add_mlflow_uri, examples, tracking_uri
from nsr_tune.errors import ConfigError


def _cmd_pareto(args: argparse.Namespace) -> int:
    from nsr_tune.plots import write_final_files, write_front_files
    from nsr_tune.results.finalists import final_front, final_table
    from nsr_tune.results.front import front_table
    from nsr_tune.tracking import StudyTracker, check_store

    out = check_out_dir(args.out)
    uri = tracking_uri(args)
    check_store(uri, must_exist=True)
    tracker = StudyTracker(tracking_uri=uri, experiment=args.experiment)
    front = tracker.front(args.run)
    print(f"study run {front.parent_run_id} in experiment {args.experiment!r}")
    print(front_table(front))
    files = write_front_files(front, out)
    finals = tracker.final_results(front)
    if finals:
        final = final_front(front, finals)
        print("\nFinalists under the final protocol (test split; intervals resample records):")
        print(final_table(final))
        files.update({f"final_{k}": p for k, p in write_final_files(final, out).items()})
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def _cmd_sync_mlflow(args: argparse.Namespace) -> int:
    from nsr_tune.results.finalists import final_table
    from nsr_tune.results.front import front_from_record, front_table
    from nsr_tune.study.finalize import finalize_study
    from nsr_tune.study.results import checkpoint_reader, read_study
    from nsr_tune.study.trainable import CHECKPOINT_FILE
    from nsr_tune.tracking import StudyTracker, check_store

    record = read_study(args.experiment_path)
    uri = tracking_uri(args, fallback=record.description.settings.get("mlflow_uri"))
    check_store(uri, must_exist=False)
    tracker = StudyTracker(
        tracking_uri=uri, experiment=record.description.experiment, artifact_location=args.artifact_location
    )
    parent = tracker.sync(record, checkpoint_of=checkpoint_reader(record.experiment_path, CHECKPOINT_FILE))
    front = tracker.front(parent)
    tracker.publish_front(front)
    # The finalists' results kept beside the study (nothing is evaluated here).
    final = None
    if front_from_record(record).result.ids:
        final = finalize_study(record.experiment_path, tracker=tracker, evaluate=False)
    tracker.end_study()
    print(f"{len(record.trials)} trials of {args.experiment_path} are in MLflow (parent run {parent}, {uri})")
    print(front_table(front))
    if final is not None and final.front.finals:
        print(final_table(final.front))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from nsr_tune import plots
    from nsr_tune.results.report import build_report
    from nsr_tune.study.finalize import kept_finals
    from nsr_tune.study.results import read_study
    from nsr_tune.tracking import StudyTracker, check_store

    path = args.experiment_path
    if path is None and args.experiment is None:
        raise ConfigError(
            "EXPERIMENT_PATH: name the study by its path (STORAGE/NAME) or by --experiment NAME"
        )
    if path is not None and args.experiment is not None:
        raise ConfigError("--experiment: name the study by its path or by --experiment, not both")
    out = check_out_file(args.out)
    if path is None:
        uri = tracking_uri(args)
        check_store(uri, must_exist=True)
        path = StudyTracker(tracking_uri=uri, experiment=args.experiment).study_path(args.run)
    record = read_study(path)
    report = build_report(record, kept_finals(record))
    written = plots.report_html(report, out)
    n_final = len(report.final.finals) if report.final else 0
    print(f"wrote {written}: {len(record.trials)} trials, {n_final} finalists")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser(
        "report",
        help="write a study's report (fronts, finalists, attacks, flags, cost) as one HTML file",
        epilog=examples(
            "nsr-tune report runs/tune/NAME --out report.html", "nsr-tune report --experiment dry_run"
        ),
    )
    rep.add_argument(
        "experiment_path",
        metavar="EXPERIMENT_PATH",
        nargs="?",
        help="the study's Tune experiment path (STORAGE/NAME)",
    )
    rep.add_argument(
        "--experiment",
        help="or: the MLflow experiment of the study, whose latest study is reported (default: none)",
    )
    rep.add_argument("--run", help="with --experiment: the study's parent run id (default: the latest)")
    add_mlflow_uri(rep, "with --experiment: the MLflow store")
    rep.add_argument("--out", default="report.html", help="the HTML file to write")
    rep.set_defaults(func=_cmd_report)

    pareto = sub.add_parser(
        "pareto",
        help="print a study's Pareto front from MLflow and write its figures",
        epilog=examples("nsr-tune pareto --experiment dry_run --out pareto"),
    )
    add_mlflow_uri(pareto, "the MLflow store the study is in")
    pareto.add_argument("--experiment", required=True, help="the MLflow experiment (the search space's name)")
    pareto.add_argument("--run", help="the study's parent run id (default: the latest study)")
    pareto.add_argument(
        "--out", default="pareto", help="directory for pareto.csv, pareto.png and report files"
    )
    pareto.set_defaults(func=_cmd_pareto)

    sync = sub.add_parser(
        "sync-mlflow",
        help="write a study's results from its Tune directory to MLflow (after an outage)",
        epilog=examples("nsr-tune sync-mlflow runs/tune/NAME"),
    )
    sync.add_argument(
        "experiment_path", metavar="EXPERIMENT_PATH", help="the study's Tune experiment path (STORAGE/NAME)"
    )
    add_mlflow_uri(sync, "the MLflow store to write to", study=True)
    sync.add_argument(
        "--artifact-location",
        help="where MLflow stores artifacts of a new experiment (default: the store's own)",
    )
    sync.set_defaults(func=_cmd_sync_mlflow)
