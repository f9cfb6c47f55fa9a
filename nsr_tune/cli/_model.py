"""`nsr-tune train` (one model, then its evaluation), `evaluate` (a saved model) and `export`.

Every option is checked before any data is read or anything is written: the configuration, the
flags that do not apply to it, the output path, the device and the model named.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from nsr_tune._io import atomic_write, write_json
from nsr_tune.cli._checks import (
    DATA_FLAGS,
    TRAIN_FLAGS,
    check_device,
    check_out_dir,
    check_out_file,
    flags_named,
    refuse_unless,
)
from nsr_tune.cli._common import (
    add_data_dir,
    add_eval,
    add_mlflow_uri,
    add_plugin_path,
    command_line,
    eval_config,
    evaluation_inputs,
    examples,
    load_splits,
    log,
    model_path,
    on_interrupt,
    progress,
    tracking_uri,
)
from nsr_tune.cli._print import metrics_json, print_result
from nsr_tune.cli._train_options import add_data_options, add_model_options, add_optim_options
from nsr_tune.errors import CheckpointError, ConfigError

# What `train` writes in --out: a second run there would mix its files with these.
RUN_FILES = ("checkpoint.pt", "model.pt", "metrics.json")


def _objective_options(args: argparse.Namespace) -> dict[str, Any]:
    """The objective's settings given, each refused where the objective has no use for it."""
    from nsr_tune.config import NSR_OBJECTIVES, OBJECTIVE_NAMES, WEIGHTED

    name = args.objective
    if name not in OBJECTIVE_NAMES:  # a plugin: its own settings, in its own config
        for flag, value in (
            ("--beta", args.beta),
            ("--nsr-eps", args.nsr_eps),
            ("--focal-gamma", args.focal_gamma),
        ):
            refuse_unless(
                value is None,
                flag,
                f"applies to the built-in objectives; give {name}'s own settings "
                "with --objective-param KEY=VALUE",
            )
        return {"params": dict(args.objective_param or [])}
    refuse_unless(
        not args.objective_param,
        "--objective-param",
        f"sets a plugin objective's config; the built-in {name} takes --beta, --nsr-eps or --focal-gamma",
    )
    refuse_unless(
        args.beta is None or name in WEIGHTED,
        "--beta",
        f"the {name} objective has no regulariser to weigh; --beta applies to {', '.join(WEIGHTED)}",
    )
    refuse_unless(
        args.nsr_eps is None or name in NSR_OBJECTIVES,
        "--nsr-eps",
        f"the {name} objective has no NSR term; --nsr-eps applies to {', '.join(NSR_OBJECTIVES)}",
    )
    refuse_unless(
        args.focal_gamma is None or name == "focal", "--focal-gamma", f"applies to focal, not to {name}"
    )
    given = {"beta": args.beta, "nsr_eps": args.nsr_eps, "focal_gamma": args.focal_gamma}
    return {k: v for k, v in given.items() if v is not None}


def _train_config(args: argparse.Namespace) -> Any:
    """The trial the options describe, checked against the registries; a refusal names the flag."""
    from nsr_tune.config import DataConfig, ModelConfig, ObjectiveConfig, OptimConfig, TrialConfig
    from nsr_tune.data import absolute_dataset, dataset_spec
    from nsr_tune.trial import check_trial

    with flags_named(DATA_FLAGS):
        data = DataConfig(dataset=absolute_dataset(args.dataset), seed=args.seed, **_data_options(args))
        default_model = dataset_spec(data.dataset).models[0]
    with flags_named(TRAIN_FLAGS):
        config = TrialConfig(
            data=data,
            model=ModelConfig(
                name=args.model or default_model,
                knobs=dict(args.knob or []),
                weight_norm=args.weight_norm,
            ),
            objective=ObjectiveConfig(name=args.objective, **_objective_options(args)),
            optim=OptimConfig(
                optimizer=args.optimizer,
                lr=args.lr,
                batch_size=args.batch_size,
                epochs=args.epochs,
                balance=args.balance,
                schedule=args.schedule,
            ),
            val_eval=None,
            test_eval=eval_config(args, data.dataset),
            seed=args.seed,
        )
    with flags_named({**DATA_FLAGS, **TRAIN_FLAGS}):
        return check_trial(config)


def _check_out(args: argparse.Namespace) -> Path:
    """--out can be written, and holds no other run's files: a second run never mixes with one."""
    out = check_out_dir(args.out)
    found = [name for name in RUN_FILES if (out / name).exists()]
    if not found:
        return out
    if args.resume and Path(args.resume).resolve() == (out / "checkpoint.pt").resolve():
        return out
    raise ConfigError(
        f"--out: {out} holds a run already ({', '.join(found)}); give a new --out, or continue that run "
        f"with --resume {out / 'checkpoint.pt'}"
    )


def _resume(args: argparse.Namespace) -> Any:
    from nsr_tune.checkpoints import load_checkpoint

    if not args.resume:
        return None
    try:
        return load_checkpoint(args.resume)
    except CheckpointError as e:
        raise ConfigError(f"--resume: {e}") from e


def _cmd_train(args: argparse.Namespace) -> int:
    from nsr_tune.checkpoints import save_model_file, save_state
    from nsr_tune.trial import run_trial

    # Everything is checked before data is read or OUT is made.
    config = _train_config(args)
    out = _check_out(args)
    device = check_device(args.device)
    resume = _resume(args)
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
    on_interrupt(args, "no epoch had finished: nothing was kept; run the same command again")
    final = None
    for result in run_trial(config, splits, resume=resume, device=device, progress=progress(args), **inputs):
        if result.diverged:
            log.error("epoch %d: training diverged (non-finite loss or weights); stopping", result.epoch)
            return 1
        _log_epoch(result)
        save_state(out / "checkpoint.pt", result.checkpoint)
        _note_checkpoint(args, out, result)
        final = result
    if final is None:
        log.info("nothing to train: the checkpoint had already finished %d epochs", config.optim.epochs)
        if not (out / "model.pt").exists():
            log.info("evaluate it with: nsr-tune evaluate %s --out %s", args.resume, out / "metrics.json")
        return 0
    save_model_file(out / "model.pt", config=config, model=final.checkpoint["model_state"])
    metrics = metrics_json(final.test, final.history)
    metrics["config"] = config.to_dict()
    metrics["data_fingerprint"] = loaded.fingerprint
    write_json(out / "metrics.json", metrics)
    print_result(final.test, title=f"test ({config.data.dataset}, {config.data.split})")
    print(f"\nwrote {out / 'metrics.json'} and {out / 'model.pt'}")
    return 0


def _log_epoch(result: Any) -> None:
    m = result.metrics
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


def _note_checkpoint(args: argparse.Namespace, out: Path, result: Any) -> None:
    """What an interrupt after this epoch keeps, and the command that goes on from it."""
    checkpoint = out / "checkpoint.pt"
    if result.epoch < result.epochs:
        again = command_line(args, drop=["--resume"], add=["--resume", str(checkpoint)])
        on_interrupt(
            args, f"kept {checkpoint} after epoch {result.epoch} of {result.epochs}; continue with: {again}"
        )
    else:
        on_interrupt(
            args,
            f"kept {checkpoint} with all {result.epochs} epochs trained; evaluate it with: "
            f"nsr-tune evaluate {checkpoint} --out {out / 'metrics.json'}",
        )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from nsr_tune.data import absolute_dataset, check_data
    from nsr_tune.evaluation.run import evaluate, plan
    from nsr_tune.trial import pick_device

    out = check_out_file(args.out) if args.out else None
    beats_file = _check_beats_file(args.beats) if args.beats else None
    device = check_device(args.device)
    with tempfile.TemporaryDirectory() as d:
        path = model_path(args.model_file, mlflow_uri=tracking_uri(args), scratch=Path(d), flag="MODEL_FILE")
        config, model = _load_model(path, args.model_file, "MODEL_FILE")
    if args.dataset and absolute_dataset(args.dataset) != config.data.dataset:
        raise ConfigError(
            f"--dataset: the model was trained on {config.data.dataset}, not {args.dataset}; "
            "it is evaluated on the dataset it was trained on"
        )
    with flags_named(DATA_FLAGS):
        data = check_data(dataclasses.replace(config.data, split=args.split)) if args.split else config.data
    eval_cfg = eval_config(args, data.dataset)
    inputs = evaluation_inputs(args, eval_cfg)
    splits = load_splits(args, data).splits
    on_interrupt(args, "an evaluation keeps no partial result: nothing was kept; run the same command again")
    log.info("evaluating on the test split: %s", plan(eval_cfg))
    result = evaluate(
        model,
        splits.test,
        config=eval_cfg,
        split=data.split,
        device=pick_device(device),
        progress=progress(args),
        keep_beats=beats_file is not None,
        **inputs,
    )
    print_result(result, title=f"test ({data.dataset}, {data.split}) of {args.model_file}")
    if out is not None:
        write_json(out, metrics_json(result))
        print(f"\nwrote {out}")
    if beats_file is not None:
        arrays = result.beats.to_arrays(eps=result.eps)
        atomic_write(beats_file, lambda fh: np.savez_compressed(fh, **arrays))
        print(f"wrote {beats_file}")
    return 0


def _check_beats_file(path: str) -> Path:
    """--beats: an .npz file that can be written."""
    if not path.endswith(".npz"):
        raise ConfigError(f"--beats: {path} must end in .npz (it is written with numpy.savez)")
    return check_out_file(path, "--beats")


def _load_model(path: Path, named: str, flag: str) -> Any:
    """The config and model of a model file, or a refusal in one line naming what the user gave."""
    from nsr_tune.checkpoints import load_model_file

    try:
        return load_model_file(path)
    except CheckpointError as e:
        raise ConfigError(f"{flag}: {named}: {str(e).removeprefix(f'{path}: ')}") from None


def _data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The DataConfig settings given on the command line (a setting left out keeps its default,
    and one that belongs to the other dataset is refused by `check_data`, naming its flag)."""
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
        "lead": args.lead,
    }
    return {k: v for k, v in given.items() if v is not None}


def _cmd_export(args: argparse.Namespace) -> int:
    out = check_out_file(args.out, flag="OUT")
    with tempfile.TemporaryDirectory() as d:
        source = model_path(args.model, mlflow_uri=tracking_uri(args), scratch=Path(d), flag="MODEL")
        config, _ = _load_model(source, args.model, "MODEL")  # refuses a file that is not an nsr-tune model
        atomic_write(out, lambda fh: fh.write(source.read_bytes()))
    objective = config.objective
    print(f"wrote {out}: {config.model.name} trained with {objective.name} (beta {objective.beta:g})")
    return 0


def _add_dataset(p: argparse.ArgumentParser, *, default: str | None) -> None:
    p.add_argument(
        "--dataset",
        metavar="NAME",
        default=default,
        help="mitbih: single-lead beats; cpsc2018: 12-lead records; csv:PATH: beats in a CSV file (the "
        "Kaggle heartbeat format, or one with a label column); wfdb:DIR: any WFDB database with beat "
        "annotations; or a plugin (an entry point of nsr_tune.datasets, or package.module:attribute)"
        + (f" (default: {default})" if default else " (default: the one the model was trained on)"),
    )


def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="train one model, then evaluate it under attack",
        description="Train one model on real beats (or records), then evaluate it under attack on the test "
        "split; writes OUT/checkpoint.pt after every epoch, then OUT/model.pt and OUT/metrics.json.",
        epilog=examples(
            "nsr-tune train --data-dir bundled --epochs 2 --out runs/cnn-ce",
            "nsr-tune train --data-dir bundled --objective nsr --beta 0.3 --epochs 2 --eps 0.01,0.05 "
            "--out runs/cnn-nsr",
        ),
    )
    _add_dataset(train, default="mitbih")
    add_data_dir(train)
    add_plugin_path(train)
    add_model_options(train)
    add_data_options(train)
    add_optim_options(train)
    train.add_argument(
        "--out",
        required=True,
        help="directory for checkpoint.pt, model.pt and metrics.json (a new one, or this run's)",
    )
    train.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        help="continue from a checkpoint.pt of the same config (default: a new run)",
    )
    add_eval(train)
    train.set_defaults(func=_cmd_train)


def add_commands(sub: argparse._SubParsersAction) -> None:
    from nsr_tune.data import DATASETS

    splits = tuple(dict.fromkeys(s for d in DATASETS.values() for s in d.splits))
    _add_train(sub)
    ev = sub.add_parser(
        "evaluate",
        help="re-evaluate a saved model.pt on the test split",
        description="Evaluate a saved model (a model.pt, a checkpoint.pt, or runs:/RUN_ID of a study trial) "
        "under a named protocol on the test split of the data it was trained on.",
        epilog=examples(
            "nsr-tune evaluate runs/cnn-ce/model.pt --data-dir bundled --eps 0.01 0.05 --out eval.json",
            "nsr-tune evaluate runs:/RUN_ID --protocol strong --surrogate runs/cnn-ce/model.pt",
        ),
    )
    ev.add_argument("model_file", metavar="MODEL_FILE", help="a model.pt or checkpoint.pt, or runs:/RUN_ID")
    add_mlflow_uri(ev, "the tracking store of runs:/ models")
    _add_dataset(ev, default=None)
    add_data_dir(ev)
    add_plugin_path(ev)
    ev.add_argument("--split", choices=splits, help="default: the split the model was trained on")
    ev.add_argument("--out", help="write the metrics to this JSON file (default: print only)")
    ev.add_argument(
        "--beats",
        metavar="FILE.npz",
        help="also write each beat's record, class and outcome, clean and at each eps, for "
        "intervals that resample records (default: none)",
    )
    add_eval(ev)
    ev.set_defaults(func=_cmd_evaluate)

    ex = sub.add_parser(
        "export",
        help="write the model of a study trial (runs:/RUN_ID) to a model file",
        epilog=examples("nsr-tune export runs:/RUN_ID model.pt"),
    )
    ex.add_argument("model", metavar="MODEL", help="runs:/RUN_ID (or a model file, to check and copy it)")
    ex.add_argument("out", metavar="OUT", help="the model file to write, e.g. model.pt")
    add_mlflow_uri(ex, "the tracking store")
    add_plugin_path(ex)
    ex.set_defaults(func=_cmd_export)
