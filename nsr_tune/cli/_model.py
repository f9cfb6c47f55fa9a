"""`nsr-tune train` (one model, then its evaluation) and `nsr-tune evaluate` (a saved model)."""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from nsr_tune._io import atomic_write, write_json
from nsr_tune.cli._common import (
    add_data_dir,
    add_eval,
    eval_config,
    evaluation_inputs,
    knob,
    load_splits,
    log,
    metrics_json,
    model_path,
    print_result,
)
from nsr_tune.errors import ConfigError


def _cmd_train(args: argparse.Namespace) -> int:
    from nsr_tune.checkpoints import load_checkpoint, save_model_file, save_state
    from nsr_tune.config import DataConfig, ModelConfig, ObjectiveConfig, OptimConfig, TrialConfig
    from nsr_tune.data import DATASETS
    from nsr_tune.trial import check_trial, run_trial

    # Build and check the whole config before reading data or creating OUT.
    config = TrialConfig(
        data=DataConfig(dataset=args.dataset, seed=args.seed, **_data_options(args)),
        model=ModelConfig(
            name=args.model or DATASETS[args.dataset].models[0],
            knobs=dict(args.knob or []),
            weight_norm=args.weight_norm,
        ),
        objective=ObjectiveConfig(
            name=args.objective, beta=args.beta, nsr_eps=args.nsr_eps, focal_gamma=args.focal_gamma
        ),
        optim=OptimConfig(
            optimizer=args.optimizer,
            lr=args.lr,
            batch_size=args.batch_size,
            epochs=args.epochs,
            balance=args.balance,
            schedule=args.schedule,
        ),
        val_eval=None,
        test_eval=eval_config(args, args.dataset),
        seed=args.seed,
    )
    config = check_trial(config)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    resume = load_checkpoint(args.resume) if args.resume else None
    inputs = evaluation_inputs(args, config.test_eval)
    loaded = load_splits(args, config.data)
    splits = loaded.splits
    log.info(
        "%s %s split: train %d, val %d, test %d (data %s)",
        config.data.dataset,
        config.data.split,
        len(splits.train),
        len(splits.val),
        len(splits.test),
        loaded.fingerprint[:12],
    )
    final = None
    for result in run_trial(
        config, splits, resume=resume, device=args.device, progress=not args.quiet, **inputs
    ):
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
    metrics = metrics_json(final.test, final.history)
    metrics["config"] = config.to_dict()
    metrics["data_fingerprint"] = loaded.fingerprint
    write_json(out / "metrics.json", metrics)
    print_result(final.test, title=f"test ({config.data.dataset}, {config.data.split})")
    print(f"\nwrote {out / 'metrics.json'} and {out / 'model.pt'}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from nsr_tune.checkpoints import load_model_file
    from nsr_tune.data import check_data
    from nsr_tune.evaluation.run import evaluate
    from nsr_tune.trial import pick_device

    with tempfile.TemporaryDirectory() as d:
        config, model = load_model_file(
            model_path(args.model_file, mlflow_uri=args.mlflow_uri, scratch=Path(d))
        )
    if args.dataset and args.dataset != config.data.dataset:
        raise ConfigError(
            f"--dataset: the model was trained on {config.data.dataset}, not {args.dataset}; "
            "it is evaluated on the dataset it was trained on"
        )
    data = check_data(dataclasses.replace(config.data, split=args.split)) if args.split else config.data
    eval_cfg = eval_config(args, data.dataset)
    out = Path(args.out) if args.out else None
    inputs = evaluation_inputs(args, eval_cfg)
    splits = load_splits(args, data).splits
    result = evaluate(
        model,
        splits.test,
        config=eval_cfg,
        split=data.split,
        device=pick_device(args.device),
        progress=not args.quiet,
        **inputs,
    )
    print_result(result, title=f"test ({data.dataset}, {data.split}) of {args.model_file}")
    if out is not None:
        write_json(out, metrics_json(result))
        print(f"\nwrote {out}")
    return 0


def _data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The DataConfig settings given on the command line (a setting left out keeps its default,
    and one that belongs to the other dataset is refused by `check_data`, naming it)."""
    given = {
        "split": args.split,
        "max_train_beats": args.max_train_beats,
        "val_fraction": args.val_fraction,
        "test_fraction": args.test_fraction,
        "input": args.input,
        "leads": args.leads,
        "sample_rate": args.sample_rate,
        "max_len": args.max_len,
        "val_per_class": args.val_per_class,
        "test_per_class": args.test_per_class,
        "multi_label": args.multi_label,
    }
    return {k: v for k, v in given.items() if v is not None}


def _add_dataset(p: argparse.ArgumentParser, *, default: str | None) -> None:
    from nsr_tune.data import DATASETS

    p.add_argument(
        "--dataset",
        choices=tuple(DATASETS),
        default=default,
        help="mitbih: single-lead beats; cpsc2018: 12-lead records"
        + (f" (default {default})" if default else " (default: the one the model was trained on)"),
    )


def _cmd_export(args: argparse.Namespace) -> int:
    from nsr_tune.checkpoints import load_model_file

    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"OUT: {out} is a directory; name the model file to write, e.g. {out / 'model.pt'}")
    with tempfile.TemporaryDirectory() as d:
        source = model_path(args.model, mlflow_uri=args.mlflow_uri, scratch=Path(d))
        config, _ = load_model_file(source)  # refuses a file that is not an nsr-tune model, in one line
        atomic_write(out, lambda fh: fh.write(source.read_bytes()))
    objective = config.objective
    print(f"wrote {out}: {config.model.name} trained with {objective.name} (beta {objective.beta:g})")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from nsr_tune.config import BALANCE, OPTIMIZERS, SCHEDULES
    from nsr_tune.data import DATASETS, INPUTS
    from nsr_tune.models import MODELS
    from nsr_tune.objectives import OBJECTIVE_NAMES

    splits = tuple(dict.fromkeys(s for d in DATASETS.values() for s in d.splits))
    train = sub.add_parser("train", help="train one model, then evaluate it under attack")
    _add_dataset(train, default="mitbih")
    add_data_dir(train)
    train.add_argument(
        "--model",
        choices=sorted(MODELS),
        help="default: the dataset's first model (cnn for mitbih, resnet18 for cpsc2018)",
    )
    train.add_argument("--knob", type=knob, action="append", metavar="KEY=INT", help="model knob, repeatable")
    train.add_argument("--weight-norm", action="store_true", help="the paper's per-unit weight normalisation")
    train.add_argument("--objective", choices=OBJECTIVE_NAMES, default="ce")
    train.add_argument(
        "--beta", type=float, default=0.0, help="weight of the regulariser (nsr, nsr_ce, jacobian)"
    )
    train.add_argument(
        "--nsr-eps",
        type=float,
        default=1.0,
        help="the eps inside the NSR term (default 1, the paper's MIT-BIH setting); on long "
        "multi-lead records the gradient's L1 norm sums over many more samples, so a smaller one "
        "keeps the term's scale",
    )
    train.add_argument("--split", choices=splits, help="mitbih: inter (default) or intra; cpsc2018: records")
    train.add_argument("--val-fraction", type=float, help="mitbih intra: share of validation beats (0.1)")
    train.add_argument("--test-fraction", type=float, help="mitbih intra: share of test beats (0.2)")
    train.add_argument(
        "--input",
        choices=tuple(INPUTS),
        help="mitbih beat representation: kachuee (default), the paper's 187 samples from the R peak; "
        "rhythm, 375 samples, 1.5 s either side of it, holding the previous and next beats; "
        "context, 688 samples, 4 s before and 1.5 s after it, holding the earlier RR intervals; "
        "lookback, 1438 samples, 10 s before and 1.5 s after it, for the local mean RR (model rrcnn); "
        "lookback30, 3938 samples, 30 s before it, for the longer-term mean RR (model rrcnn)",
    )
    cpsc = train.add_argument_group("cpsc2018 (the paper's protocol by default)")
    cpsc.add_argument("--leads", choices=("paper", "all"), help="paper: I, II, V1-V6 (default); all: 12")
    cpsc.add_argument("--sample-rate", type=int, help="resample the records to this many Hz (default: 500)")
    cpsc.add_argument("--max-len", type=int, help="truncate records to this many samples at 500 Hz (30720)")
    cpsc.add_argument("--val-per-class", type=int, help="validation records per class (5)")
    cpsc.add_argument("--test-per-class", type=int, help="test records per class (50)")
    cpsc.add_argument(
        "--multi-label",
        action="store_true",
        default=None,
        help="keep records with several labels and train on label sets (with --objective bce)",
    )
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument(
        "--max-train-beats", type=int, help="seeded class-proportional subset of the training beats"
    )
    train.add_argument(
        "--optimizer", choices=OPTIMIZERS, default="adam", help="adamax: the paper's MIT-BIH scripts"
    )
    train.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="none",
        help="learning-rate schedule, per epoch: cosine to 0, or step (x0.1 at 1/2 and 3/4)",
    )
    train.add_argument("--focal-gamma", type=float, default=2.0, help="the focal objective's gamma")
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--balance", choices=BALANCE, default="balanced", help="class-balanced sampling")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, help="directory for metrics.json, model.pt and checkpoint.pt")
    train.add_argument("--resume", help="continue from a checkpoint.pt of the same config")
    add_eval(train)
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="re-evaluate a saved model.pt on the test split")
    ev.add_argument(
        "model_file", help="a model.pt written by `nsr-tune train`, or runs:/RUN_ID (a study trial in MLflow)"
    )
    ev.add_argument("--mlflow-uri", help="the tracking store of runs:/ models (default: sqlite:///mlflow.db)")
    _add_dataset(ev, default=None)
    add_data_dir(ev)
    ev.add_argument("--split", choices=splits, help="default: the split the model was trained on")
    ev.add_argument("--out", help="write the metrics to this JSON file")
    add_eval(ev)
    ev.set_defaults(func=_cmd_evaluate)

    ex = sub.add_parser("export", help="write the model of a study trial (runs:/RUN_ID) to a model file")
    ex.add_argument("model", help="runs:/RUN_ID (or a model file, to check and copy it)")
    ex.add_argument("out", help="the model file to write, e.g. model.pt")
    ex.add_argument(
        "--mlflow-uri", help="the tracking store (default: sqlite:///mlflow.db in this directory)"
    )
    ex.set_defaults(func=_cmd_export)
