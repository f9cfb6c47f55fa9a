"""The options of `nsr-tune train` that build a trial: the model and objective, the data, the
optimiser. Each help says its default; the choices come from plain-data registries."""

from __future__ import annotations

import argparse

from nsr_tune.cli._common import knob


def add_model_options(train: argparse.ArgumentParser) -> None:
    from nsr_tune.config import NSR_OBJECTIVES, OBJECTIVE_NAMES, WEIGHTED
    from nsr_tune.data import DATASETS

    offered = "; ".join(f"{name}: {', '.join(d.models)}" for name, d in DATASETS.items())
    train.add_argument(
        "--model",
        metavar="NAME",
        help=f"the model (default: the dataset's first). Offered: {offered}; or a plugin: an installed "
        "entry point of nsr_tune.models, or package.module:attribute",
    )
    train.add_argument(
        "--knob",
        type=knob,
        action="append",
        metavar="KEY=VALUE",
        help="a model knob, repeatable (default: none)",
    )
    train.add_argument("--weight-norm", action="store_true", help="the paper's per-unit weight normalisation")
    train.add_argument(
        "--objective",
        metavar="NAME",
        default="ce",
        help=f"the training loss: {', '.join(OBJECTIVE_NAMES)} (default: ce), or a plugin: an installed "
        "entry point of nsr_tune.objectives, or package.module:attribute",
    )
    train.add_argument(
        "--objective-param",
        type=knob,
        action="append",
        metavar="KEY=VALUE",
        help="a setting of a plugin objective's own config, repeatable (default: its defaults)",
    )
    train.add_argument(
        "--beta",
        type=float,
        help=f"weight of the regulariser, for {', '.join(WEIGHTED)} only (default: 0)",
    )
    train.add_argument(
        "--nsr-eps",
        type=float,
        help=f"the eps inside the NSR term, for {', '.join(NSR_OBJECTIVES)} only (default: 1, the paper's "
        "MIT-BIH setting); on long multi-lead records the gradient's L1 norm sums over many more "
        "samples, so a smaller one keeps the term's scale",
    )
    train.add_argument(
        "--focal-gamma", type=float, help="the focal objective's gamma, for focal only (default: 2)"
    )


def add_data_options(train: argparse.ArgumentParser) -> None:
    from nsr_tune.data import DATASETS, INPUTS

    splits = tuple(dict.fromkeys(s for d in DATASETS.values() for s in d.splits))
    train.add_argument(
        "--split",
        choices=splits,
        help="mitbih: inter (default) or intra; cpsc2018: records; csv:PATH: intra (default), records "
        "with a record column; wfdb:DIR: records (default), intra, inter for MIT-BIH's records",
    )
    train.add_argument(
        "--val-fraction",
        type=float,
        help="intra: share of validation beats; records (csv:, wfdb:): share of the records left after "
        "the test records (default: 0.1)",
    )
    train.add_argument(
        "--test-fraction",
        type=float,
        help="intra: share of test beats; records (csv:, wfdb:): share of the records (default: 0.2)",
    )
    train.add_argument(
        "--lead",
        help="wfdb:DIR: the signal to cut beats from, e.g. V1 (default: MLII where a record has it, "
        "else its first signal, as the MIT-BIH loader does)",
    )
    train.add_argument(
        "--input",
        choices=tuple(INPUTS),
        help="mitbih beat representation (default: kachuee): "
        + "; ".join(f"{name}, {spec.description}" for name, spec in INPUTS.items()),
    )
    train.add_argument(
        "--max-train-beats",
        type=int,
        help="a seeded class-proportional subset of the training beats (default: all)",
    )
    cpsc = train.add_argument_group("cpsc2018 (the paper's protocol by default)")
    cpsc.add_argument("--leads", choices=("paper", "all"), help="paper: I, II, V1-V6 (default); all: 12")
    cpsc.add_argument("--sample-rate", type=int, help="resample the records to this many Hz (default: 500)")
    cpsc.add_argument(
        "--max-len", type=int, help="truncate records to this many samples at 500 Hz (default: 30720)"
    )
    cpsc.add_argument("--val-per-class", type=int, help="validation records per class (default: 5)")
    cpsc.add_argument("--test-per-class", type=int, help="test records per class (default: 50)")
    cpsc.add_argument(
        "--multi-label",
        action="store_true",
        default=None,
        help="keep records with several labels and train on label sets (with --objective bce)",
    )


def add_optim_options(train: argparse.ArgumentParser) -> None:
    from nsr_tune.config import BALANCE, OPTIMIZERS, SCHEDULES

    train.add_argument("--epochs", type=int, default=10, help="passes over the training set")
    train.add_argument(
        "--optimizer", choices=OPTIMIZERS, default="adam", help="adamax: the paper's MIT-BIH scripts"
    )
    train.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="none",
        help="learning-rate schedule, per epoch: cosine to 0, or step (x0.1 at 1/2 and 3/4)",
    )
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    train.add_argument("--batch-size", type=int, default=128, help="training samples per step")
    train.add_argument(
        "--balance", choices=BALANCE, default="balanced", help="class-balanced sampling of each epoch"
    )
    train.add_argument(
        "--seed", type=int, default=0, help="seed of the model, the epoch order and the data split"
    )
