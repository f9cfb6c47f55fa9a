"""The `nsr-tune` command: data, train, evaluate.

Entry point side effects live here: logging set-up, reading data, writing files. Errors a user
can cause come out as one line on stderr and exit status 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nsr_tune.errors import ConfigError, NsrTuneError

__all__ = ["main"]

log = logging.getLogger("nsr_tune")


# ---------------------------------------------------------------------------- helpers


def _eps_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0.01,0.05; got {text!r}"
        ) from e
    if not values:
        raise argparse.ArgumentTypeError("expected at least one noise level")
    return values


def _knob(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as width=64, got {text!r}")
    try:
        return key.strip(), int(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{key}: expected an integer, got {value!r}") from e


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, allow_nan=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_splits(
    args: argparse.Namespace, *, split: str, seed: int, val_records: Sequence[int] | None = None
):
    from nsr_tune.data import DEFAULT_VAL_RECORDS, load_mitbih, make_splits, resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    beats, report = load_mitbih(data_dir, progress=not args.quiet)
    for note in report.notes:
        log.info("%s", note)
    splits = make_splits(beats, split=split, seed=seed, val_records=val_records or DEFAULT_VAL_RECORDS)
    return splits, report


def _fmt(v: float) -> str:
    return "  -  " if v != v else f"{v:.3f}"  # NaN -> dash


def _print_result(result: Any, *, title: str) -> None:
    from nsr_tune.data import AAMI_CLASSES

    print(f"\n{title}: {result.n} beats, {result.attack}")
    print(f"  clean accuracy     {_fmt(result.clean_acc)}")
    print(
        f"  balanced accuracy  {_fmt(result.balanced_acc)}"
        f"  (mean recall over {', '.join(result.balanced_classes)})"
    )
    print(f"  robust AUC         {_fmt(result.robust_auc)}  (balanced: {_fmt(result.robust_balanced_auc)})")
    print(f"  {'eps':>7} {'uV':>7} {'robust':>7} {'rob.bal':>7} {'noise':>7}")
    for e in result.eps:
        uv = result.eps_uv[e]
        uv_text = "-" if uv != uv else f"{uv:.0f}"
        print(
            f"  {e:>7g} {uv_text:>7} {_fmt(result.robust_acc[e]):>7} "
            f"{_fmt(result.robust_balanced_acc[e]):>7} {_fmt(result.noise_acc[e]):>7}"
        )
    print(f"  {'class':>7} {'sens.':>7} {'prec.':>7} {'beats':>7}")
    for c in AAMI_CLASSES:
        m = result.per_class[c]
        print(f"  {c:>7} {_fmt(m.sensitivity):>7} {_fmt(m.precision):>7} {m.support:>7}")


def _metrics_json(result: Any, history: Sequence[Any] = ()) -> dict[str, Any]:
    out = result.to_dict()
    if history:
        out["history"] = [dict(h) for h in history]
    return out


# ---------------------------------------------------------------------------- data


def _cmd_data_summary(args: argparse.Namespace) -> int:
    from nsr_tune.data import load_mitbih, resolve_data_dir, summarize

    data_dir = resolve_data_dir(args.data_dir)
    beats, report = load_mitbih(data_dir, progress=not args.quiet and not args.json)
    summary = summarize(beats, report, seed=args.seed)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    classes = summary["classes"]
    print(f"{summary['n_records']} records read from {summary['data_dir']}")
    for note in summary["notes"]:
        print(f"  note: {note}")
    print(f"  dropped: {json.dumps(summary['dropped'])}")
    if summary["unknown_symbols"]:
        print(f"  unknown annotation symbols (dropped): {json.dumps(summary['unknown_symbols'])}")
    header = f"{'':<14}" + "".join(f"{c:>8}" for c in classes) + f"{'total':>9}"
    print("\n" + header)

    def row(name: str, counts: dict[str, int]) -> None:
        print(f"{name:<14}" + "".join(f"{counts[c]:>8}" for c in classes) + f"{sum(counts.values()):>9}")

    row("all", summary["all"])
    for split, parts in summary["splits"].items():
        if "error" in parts:
            print(f"{split:<14}cannot be made on these records: {parts['error']}")
            continue
        for part in ("train", "val", "test"):
            row(f"{split}/{part}", parts[part])
    return 0


def _cmd_data_download(args: argparse.Namespace) -> int:
    from nsr_tune.data import default_data_dir, download_mitdb

    path = download_mitdb(Path(args.dest) if args.dest else default_data_dir())
    print(f"MIT-BIH Arrhythmia Database ready in {path} (every file matches PhysioNet's SHA-256)")
    return 0


# ---------------------------------------------------------------------------- train / evaluate


def _eval_config(args: argparse.Namespace):
    from nsr_tune.config import EvalConfig

    return EvalConfig(
        eps=args.eps,
        norm=args.norm,
        steps=args.pgd_steps,
        restarts=args.restarts,
        attack_loss=args.attack_loss,
        per_class_cap=args.eval_beats,
        seed=args.eval_seed,
        balanced_classes=None,
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from nsr_tune.checkpoints import load_checkpoint, save_model_file, save_state
    from nsr_tune.config import DataConfig, ModelConfig, ObjectiveConfig, OptimConfig, TrialConfig
    from nsr_tune.trial import run_trial

    # Build (and so check) the whole config before reading data or creating OUT.
    config = TrialConfig(
        data=DataConfig(split=args.split, seed=args.seed, max_train_beats=args.max_train_beats),
        model=ModelConfig(name=args.model, knobs=dict(args.knob or []), weight_norm=args.weight_norm),
        objective=ObjectiveConfig(name=args.objective, beta=args.beta),
        optim=OptimConfig(
            optimizer=args.optimizer,
            lr=args.lr,
            batch_size=args.batch_size,
            epochs=args.epochs,
            balance=args.balance,
        ),
        val_eval=None,
        test_eval=_eval_config(args),
        seed=args.seed,
    )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    resume = load_checkpoint(args.resume) if args.resume else None
    splits, report = _load_splits(args, split=args.split, seed=args.seed)
    log.info(
        "%s split: train %d, val %d, test %d beats (data %s)",
        args.split,
        len(splits.train),
        len(splits.val),
        len(splits.test),
        report.fingerprint[:12],
    )
    final = None
    for result in run_trial(config, splits, resume=resume, device=args.device, progress=not args.quiet):
        m = result.metrics
        if result.diverged:
            log.error("epoch %d: training diverged (non-finite loss or weights); stopping", result.epoch)
            return 1
        log.info(
            "epoch %d/%d  loss %.4f  train acc %.3f  val acc %.3f  val balanced %.3f  (%.1fs)",
            result.epoch,
            result.epochs,
            m["train_loss"],
            m["train_acc"],
            m["epoch_val_acc"],
            m["epoch_val_balanced_acc"],
            m["epoch_seconds"],
        )
        save_state(out / "checkpoint.pt", result.checkpoint)
        final = result
    if final is None:
        log.info("nothing to train: the checkpoint had already finished %d epochs", config.optim.epochs)
        return 0
    save_model_file(out / "model.pt", config=config, model=final.checkpoint["model_state"])
    metrics = _metrics_json(final.test, final.history)
    metrics["config"] = config.to_dict()
    metrics["data_fingerprint"] = report.fingerprint
    _write_json(out / "metrics.json", metrics)
    _print_result(final.test, title=f"test ({args.split})")
    print(f"\nwrote {out / 'metrics.json'} and {out / 'model.pt'}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from nsr_tune.checkpoints import load_model_file
    from nsr_tune.evaluation import evaluate
    from nsr_tune.trial import pick_device

    config, model = load_model_file(args.model_file)
    split = args.split or config.data.split
    eval_config = _eval_config(args)
    out = Path(args.out) if args.out else None
    splits, _ = _load_splits(args, split=split, seed=config.data.seed, val_records=config.data.val_records)
    result = evaluate(
        model,
        splits.test,
        config=eval_config,
        split=split,
        device=pick_device(args.device),
        progress=not args.quiet,
    )
    _print_result(result, title=f"test ({split}) of {args.model_file}")
    if out is not None:
        _write_json(out, _metrics_json(result))
        print(f"\nwrote {out}")
    return 0


# ---------------------------------------------------------------------------- study


def _cmd_tune(args: argparse.Namespace) -> int:
    from nsr_tune.study.runner import StudyOptions, run_study, summary_lines
    from nsr_tune.study.space import load_space
    from nsr_tune.tracking import default_tracking_uri, front_table

    space = load_space(args.space or ("dry_run" if args.dry_run else "mitbih_wide"))
    name = args.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    mlflow_uri = args.mlflow_uri or default_tracking_uri()
    options = StudyOptions(
        space=space,
        name=name,
        storage=args.storage or str(Path("runs") / "tune"),
        mlflow_uri=mlflow_uri,
        data_dir=args.data_dir or ("bundled" if args.dry_run else None),
        artifact_location=args.artifact_location,
        num_samples=args.num_samples,
        max_concurrent=args.max_concurrent,
        resume=args.resume,
        seed=args.seed,
        shared_storage=args.shared_storage,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        ray_address=args.address,
        local_cpus=args.local_cpus,
    )
    outcome = run_study(options)
    print("\nPareto front (validation objectives; test values beside, never seen by the search):")
    print(front_table(outcome.front))
    print()
    for line in summary_lines(outcome, mlflow_uri=mlflow_uri, experiment=space.name):
        print(line)
    return 0


def _cmd_pareto(args: argparse.Namespace) -> int:
    from nsr_tune.tracking import StudyTracker, front_table, write_front_files

    tracker = StudyTracker(tracking_uri=args.mlflow_uri, experiment=args.experiment)
    front = tracker.front(args.run)
    print(f"study run {front.parent_run_id} in experiment {args.experiment!r}")
    print(front_table(front))
    files = write_front_files(front, Path(args.out))
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def _cmd_sync_mlflow(args: argparse.Namespace) -> int:
    from nsr_tune.study.results import read_study
    from nsr_tune.tracking import StudyTracker, front_table

    record = read_study(args.experiment_path)
    tracker = StudyTracker(
        tracking_uri=args.mlflow_uri,
        experiment=record.description["experiment"],
        artifact_location=args.artifact_location,
    )
    parent = tracker.sync(record)
    front = tracker.front(parent)
    tracker.publish_front(front)
    tracker.end_study()
    print(f"{len(record.trials)} trials of {args.experiment_path} are in MLflow (parent run {parent})")
    print(front_table(front))
    return 0


def add_tune_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `nsr-tune tune` and of tune.py (one set, so the two cannot drift apart)."""
    p.add_argument(
        "--space",
        help="a search-space YAML file, or the name of a shipped one (mitbih_wide, "
        "mitbih_paper, dry_run); default mitbih_wide, or dry_run with --dry-run",
    )
    p.add_argument("--name", help="study name (default: SPACE-YYYYmmdd-HHMMSS)")
    p.add_argument(
        "--storage",
        help="where Tune keeps results and checkpoints: a local path (default runs/tune), "
        "s3://..., gs://..., or an NFS path with --shared-storage",
    )
    p.add_argument(
        "--shared-storage",
        action="store_true",
        help="declare that a local --storage path is the same on every node (NFS, or one machine)",
    )
    p.add_argument(
        "--mlflow-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db in this directory)"
    )
    p.add_argument(
        "--artifact-location", help="where MLflow stores artifacts of a new experiment (e.g. s3://...)"
    )
    p.add_argument("--num-samples", type=int, help="number of trials (default: from the space)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: from the space)")
    p.add_argument("--cpus-per-trial", type=float, help="default: from the space")
    p.add_argument(
        "--gpus-per-trial", type=float, help="GPU fraction per trial, e.g. 0.25 (default: from the space)"
    )
    p.add_argument("--resume", metavar="PATH", help="continue the study at this Tune experiment path")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="a small real study on the bundled records: local Ray, 4 trials, embedded MLflow store",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the trials' training")
    p.add_argument(
        "--data-dir", help="MIT-BIH directory, or 'bundled' (default: $NSR_TUNE_DATA, else the user cache)"
    )
    p.add_argument(
        "--address",
        help="Ray address to join (default: $RAY_ADDRESS, else a running cluster, else a new local Ray)",
    )
    p.add_argument("--local-cpus", type=int, help="CPUs for a local Ray started by this command")


# ---------------------------------------------------------------------------- parser


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        help="MIT-BIH directory; 'bundled' for the records shipped with nsr-tune "
        "(default: $NSR_TUNE_DATA, else the user cache directory)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _add_eval(p: argparse.ArgumentParser) -> None:
    from nsr_tune.config import PAPER_EPS

    g = p.add_argument_group("evaluation")
    g.add_argument(
        "--eps", type=_eps_list, default=PAPER_EPS, help="noise levels (default: the paper's L-inf list)"
    )
    g.add_argument("--norm", choices=("linf", "l2"), default="linf")
    g.add_argument("--pgd-steps", type=int, default=100)
    g.add_argument("--restarts", type=int, default=1)
    g.add_argument("--attack-loss", choices=("worst", "ce", "margin"), default="worst")
    g.add_argument("--eval-beats", type=int, default=300, help="at most this many test beats per class")
    g.add_argument("--eval-seed", type=int, default=0, help="seed of the evaluation subset and random starts")
    g.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda where present)")


def build_parser() -> argparse.ArgumentParser:
    from nsr_tune.models import MODELS
    from nsr_tune.objectives import OBJECTIVES

    parser = argparse.ArgumentParser(
        prog="nsr-tune", description="Adversarial robustness studies of ECG beat classifiers."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="get and inspect MIT-BIH data").add_subparsers(
        dest="data_command", required=True
    )
    summary = data.add_parser("summary", help="records read and beats per class, overall and per split")
    _add_data_dir(summary)
    summary.add_argument("--json", action="store_true", help="machine-readable output")
    summary.add_argument("--seed", type=int, default=0, help="seed of the intra split")
    summary.set_defaults(func=_cmd_data_summary)
    download = data.add_parser("download", help="fetch the MIT-BIH Arrhythmia Database from PhysioNet")
    download.add_argument("--dest", help="target directory (default: the user cache directory)")
    download.set_defaults(func=_cmd_data_download)

    train = sub.add_parser("train", help="train one model, then evaluate it under attack")
    _add_data_dir(train)
    train.add_argument("--model", choices=sorted(MODELS), default="cnn")
    train.add_argument(
        "--knob", type=_knob, action="append", metavar="KEY=INT", help="model knob, repeatable"
    )
    train.add_argument("--weight-norm", action="store_true", help="the paper's per-unit weight normalisation")
    train.add_argument("--objective", choices=sorted(OBJECTIVES), default="ce")
    train.add_argument(
        "--beta", type=float, default=0.0, help="weight of the regulariser (nsr, nsr_ce, jacobian)"
    )
    train.add_argument("--split", choices=("inter", "intra"), default="inter")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument(
        "--max-train-beats", type=int, help="seeded class-proportional subset of the training beats"
    )
    train.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default="adam")
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument(
        "--balance", choices=("balanced", "none"), default="balanced", help="class-balanced sampling"
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, help="directory for metrics.json, model.pt and checkpoint.pt")
    train.add_argument("--resume", help="continue from a checkpoint.pt of the same config")
    _add_eval(train)
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="re-evaluate a saved model.pt on the test split")
    ev.add_argument("model_file", help="a model.pt written by `nsr-tune train`")
    _add_data_dir(ev)
    ev.add_argument("--split", choices=("inter", "intra"), help="default: the split the model was trained on")
    ev.add_argument("--out", help="write the metrics to this JSON file")
    _add_eval(ev)
    ev.set_defaults(func=_cmd_evaluate)

    tune_p = sub.add_parser("tune", help="run a multi-objective study on Ray Tune (same as tune.py)")
    add_tune_arguments(tune_p)
    tune_p.set_defaults(func=_cmd_tune)

    pareto = sub.add_parser("pareto", help="print a study's Pareto front from MLflow and write its figures")
    pareto.add_argument(
        "--mlflow-uri", required=True, help="e.g. sqlite:///mlflow.db or http://127.0.0.1:5000"
    )
    pareto.add_argument("--experiment", required=True, help="the MLflow experiment (the search space's name)")
    pareto.add_argument("--run", help="the study's parent run id (default: the latest study)")
    pareto.add_argument("--out", default="pareto", help="directory for pareto.csv, pareto.png, pareto.html")
    pareto.set_defaults(func=_cmd_pareto)

    sync = sub.add_parser(
        "sync-mlflow", help="write a study's results from its Tune directory to MLflow (after an outage)"
    )
    sync.add_argument("experiment_path", help="the Tune experiment path of the study (STORAGE/NAME)")
    sync.add_argument("--mlflow-uri", required=True, help="e.g. sqlite:///mlflow.db or http://127.0.0.1:5000")
    sync.add_argument("--artifact-location", help="where MLflow stores artifacts of a new experiment")
    sync.set_defaults(func=_cmd_sync_mlflow)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # A tracking server that is down should cost seconds, not MLflow's default of minutes of
    # retries per call: the study keeps its results and writes them when the server is back.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    try:
        return int(args.func(args))
    except NsrTuneError as e:
        print(f"nsr-tune: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
