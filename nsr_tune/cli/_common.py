"""What every command shares: the parser's conventions, argument types, the checks made before any
work (output paths, device, tracking store), the evaluation options, and printing.

Building a parser imports neither torch nor scipy: the choices it lists come from registries of
names that cost nothing to import (nsr_tune.config, nsr_tune.data, nsr_tune.protocol).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from nsr_tune.cli._checks import DATA_FLAGS, EVAL_FLAGS, flags_named, refuse_unless
from nsr_tune.errors import ConfigError

log = logging.getLogger("nsr_tune")


class Parser(argparse.ArgumentParser):
    """argparse with a refusal in one line that names the argument, and the help's examples kept
    as they are written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help, unless the help already says what it is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if not action.option_strings or "default" in text or unset:
            return text
        return f"{text} (default: %(default)s)"


def examples(*commands: str) -> str:
    """An epilog: commands a reader can run as they are written."""
    return "examples:\n" + "\n".join(f"  {c}" for c in commands)


def _levels(text: str) -> list[float]:
    out = []
    for part in text.replace(",", " ").split():
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected noise levels such as 0.01,0.05 or 0.01 0.05; got {text!r}"
            ) from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"a noise level must be a number > 0, got {part!r}")
        out.append(value)
    return out


class EpsList(argparse.Action):
    """Noise levels, the same way everywhere: commas, spaces or both (--eps 0.01,0.05 or --eps 0.01 0.05)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("metavar", "EPS")
        super().__init__(option_strings, dest, nargs="+", **kwargs)

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None
    ) -> None:
        try:
            levels = [e for v in values for e in _levels(v)]
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentError(self, str(e)) from None
        if not levels:
            raise argparse.ArgumentError(self, "expected at least one noise level")
        setattr(namespace, self.dest, tuple(levels))


def knob(text: str) -> tuple[str, int | float | bool | str]:
    """KEY=VALUE with the value typed as YAML would: 64 an int, 0.1 a float, true a bool, else a
    string. The registry checks the type against the knob's own (a plugin's may be any of these)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as width=64, got {text!r}")
    value = value.strip()
    for kind in (int, float):
        try:
            return key.strip(), kind(value)
        except ValueError:
            continue
    if value.lower() in ("true", "false"):
        return key.strip(), value.lower() == "true"
    return key.strip(), value


def add_plugin_path(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plugin-path",
        action="append",
        metavar="DIR",
        help="a directory of Python modules that plugins named package.module:attribute live in, put on "
        "the import path here and shipped to every Ray worker; repeatable (default: none)",
    )


def progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal, and never with --quiet: CI logs and nohup files stay clean."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def tracking_uri(args: argparse.Namespace, *, fallback: str | None = None) -> str:
    """--mlflow-uri, else $MLFLOW_TRACKING_URI, else `fallback` (the store a study was started with),
    else sqlite:///mlflow.db in the working directory: one default for every command."""
    from nsr_tune.tracking import default_tracking_uri

    given = getattr(args, "mlflow_uri", None)
    return given or os.environ.get("MLFLOW_TRACKING_URI") or fallback or default_tracking_uri()


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        help="the dataset's directory. mitbih: 'bundled' for the records shipped with nsr-tune "
        "(default: $NSR_TUNE_DATA, else the user cache directory); cpsc2018: AXXXX.hea + AXXXX.mat "
        "records (default: $NSR_TUNE_CPSC2018)",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars (there are none off a terminal)"
    )


def add_mlflow_uri(
    p: argparse.ArgumentParser, what: str = "the MLflow store", *, study: bool = False
) -> None:
    """--mlflow-uri; `study`: the command works on a study, whose own store is the default."""
    fallback = "the store the study was started with" if study else "sqlite:///mlflow.db in this directory"
    p.add_argument(
        "--mlflow-uri",
        help=f"{what}, e.g. sqlite:///mlflow.db or http://HOST:5000 "
        f"(default: $MLFLOW_TRACKING_URI, else {fallback})",
    )


def add_eval(p: argparse.ArgumentParser) -> None:
    """The evaluation protocol: a named one (see nsr_tune.protocol.PROTOCOLS), then overrides."""
    from nsr_tune.config import ATTACK_LOSSES, ATTACKS, NORMS
    from nsr_tune.protocol import PROTOCOLS

    standard = PROTOCOLS["standard"]
    g = p.add_argument_group("evaluation (a named protocol; each option below overrides it)")
    g.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        default="standard",
        help="standard: the paper's eps list, PGD-100, 300 beats per class; "
        "strong: the same beats and eps under APGD-CE, APGD-T, Square, SAP and a transfer attack in a "
        "cascade, the masking checks and the noise stress test; "
        "quick: the cheap protocol a study scores its trials with",
    )
    g.add_argument(
        "--eps",
        action=EpsList,
        help=f"noise levels, with commas or spaces (default: the protocol's; standard: "
        f"{','.join(map(str, standard.eps))} for mitbih)",
    )
    g.add_argument("--norm", choices=NORMS, help=f"default: the protocol's ({standard.norm})")
    g.add_argument(
        "--pgd-steps", type=int, help=f"PGD's steps (default: the protocol's; standard: {standard.steps})"
    )
    g.add_argument(
        "--restarts",
        type=int,
        help=f"PGD's restarts (default: the protocol's; standard: {standard.restarts})",
    )
    g.add_argument(
        "--attack-loss",
        choices=ATTACK_LOSSES,
        help=f"PGD's loss, worst = the worse of CE and margin per beat (default: {standard.attack_loss})",
    )
    g.add_argument(
        "--eval-beats",
        type=int,
        help="at most this many test beats per class "
        f"(default: the protocol's; standard: {standard.per_class_cap})",
    )
    g.add_argument(
        "--eval-seed", type=int, help="seed of the evaluation subset and random starts (default: 0)"
    )
    g.add_argument(
        "--attacks",
        type=lambda text: tuple(a.strip() for a in text.split(",") if a.strip()),
        help=f"the cascade, in order, e.g. apgd_ce,square (default: the protocol's; of {', '.join(ATTACKS)})",
    )
    g.add_argument(
        "--each-attack",
        action="store_true",
        default=None,
        help="run every attack on every clean-correct beat, so each one's own robust accuracy is "
        "reported beside the cascade's (costs the sum of the attacks)",
    )
    g.add_argument(
        "--surrogate",
        metavar="MODEL",
        help="a model.pt, or runs:/RUN_ID of a study trial, to run the transfer attack's PGD on "
        "(default: none, and transfer is skipped)",
    )
    g.add_argument(
        "--nstdb",
        metavar="DIR",
        help="the MIT-BIH Noise Stress Test records bw and ma, for the noise stress test "
        "(default: $NSR_TUNE_NSTDB, else the user cache; skipped when absent there)",
    )
    g.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda where present, else cpu)")


def eval_config(args: argparse.Namespace, dataset: str = "mitbih") -> Any:
    """The protocol the evaluation options name, each override checked and refused by its flag."""
    from nsr_tune.protocol import protocol

    given = {
        "eps": args.eps,
        "norm": args.norm,
        "steps": args.pgd_steps,
        "restarts": args.restarts,
        "attack_loss": args.attack_loss,
        "per_class_cap": args.eval_beats,
        "seed": args.eval_seed,
        "attacks": args.attacks,
        "each_attack": args.each_attack,
    }
    with flags_named(EVAL_FLAGS):
        config = protocol(args.protocol, dataset, **{k: v for k, v in given.items() if v is not None})
    for flag, value in (
        ("--pgd-steps", args.pgd_steps),
        ("--restarts", args.restarts),
        ("--attack-loss", args.attack_loss),
    ):
        refuse_unless(
            value is None or "pgd" in config.attacks,
            flag,
            f"configures the pgd attack, which this protocol does not run ({', '.join(config.attacks)})",
        )
    refuse_unless(
        not args.surrogate or "transfer" in config.attacks,
        "--surrogate",
        f"the protocol runs no transfer attack ({', '.join(config.attacks)})",
    )
    refuse_unless(
        not args.nstdb or config.noise_stress,
        "--nstdb",
        f"the {args.protocol} protocol runs no noise stress test (the strong one does)",
    )
    return config


def model_path(spec: str, *, mlflow_uri: str, scratch: Path, flag: str) -> Path:
    """A model file named on the command line: a path, or `runs:/RUN_ID` in the MLflow store."""
    if not spec.startswith("runs:/"):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"{flag}: {spec}: no such model file")
        return path
    from nsr_tune.tracking import fetch_model

    return fetch_model(spec, tracking_uri=mlflow_uri, dest_dir=scratch)


def evaluation_inputs(args: argparse.Namespace, config: Any) -> dict[str, Any]:
    """The surrogate model and noise records that `config`'s protocol needs, read from the options."""
    from nsr_tune.checkpoints import load_model_file
    from nsr_tune.data import nstdb_if_present

    surrogate = None
    if args.surrogate:
        with tempfile.TemporaryDirectory() as d:
            path = model_path(
                args.surrogate, mlflow_uri=tracking_uri(args), scratch=Path(d), flag="--surrogate"
            )
            surrogate = load_model_file(path)[1]
    nstdb = nstdb_if_present(args.nstdb) if config.noise_stress else None
    return {"surrogate": surrogate, "nstdb": nstdb}


def load_splits(args: argparse.Namespace, data: Any) -> Any:
    """The dataset of `--data-dir`, read and split as the DataConfig `data` says (a `Loaded`)."""
    from nsr_tune.data import load_dataset

    with flags_named(DATA_FLAGS):  # a refusal while reading (`lead: ...`) names its flag
        loaded = load_dataset(data, args.data_dir, progress=progress(args))
    for note in loaded.notes:
        log.info("%s", note)
    return loaded


def on_interrupt(args: argparse.Namespace, note: str) -> None:
    """What the command has kept so far and how to go on: the line `nsr-tune` prints on Ctrl-C."""
    args.on_interrupt = note


def command_line(args: argparse.Namespace, *, drop: Sequence[str] = (), add: Sequence[str] = ()) -> str:
    """The command the user typed, with the options in `drop` (and their values) left out and `add`
    appended: the exact command that continues an interrupted run."""
    import shlex

    argv, out, skip = list(getattr(args, "argv", [])), [], False
    for token in argv:
        if skip:
            skip = False
            continue
        name = token.split("=", 1)[0]
        if name in drop:
            skip = "=" not in token
            continue
        out.append(token)
    return "nsr-tune " + " ".join(shlex.quote(t) for t in [*out, *add])
