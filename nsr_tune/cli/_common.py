"""What every command shares: the parser's conventions, argument types, the checks made before any
work (output paths, device, tracking store), the evaluation options, and printing.

Building a parser imports neither torch nor scipy: the choices it lists come from registries of
names that cost nothing to import (nsr_tune.config, nsr_tune.data, nsr_tune.protocol).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

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


def knob(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as width=64, got {text!r}")
    try:
        return key.strip(), int(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{key}: expected an integer, got {value!r}") from e


# The command-line flag of each configuration field a command builds from its options, so that
# a refusal names what the user typed, not the field behind it.
DATA_FLAGS = {
    "dataset": "--dataset",
    "split": "--split",
    "seed": "--seed",
    "max_train_beats": "--max-train-beats",
    "val_fraction": "--val-fraction",
    "test_fraction": "--test-fraction",
    "input": "--input",
    "leads": "--leads",
    "max_len": "--max-len",
    "sample_rate": "--sample-rate",
    "val_per_class": "--val-per-class",
    "test_per_class": "--test-per-class",
    "multi_label": "--multi-label",
}
TRAIN_FLAGS = {
    "model": "--model",
    "weight_norm": "--weight-norm",
    "objective": "--objective",
    "beta": "--beta",
    "nsr_eps": "--nsr-eps",
    "focal_gamma": "--focal-gamma",
    "optimizer": "--optimizer",
    "lr": "--lr",
    "batch_size": "--batch-size",
    "epochs": "--epochs",
    "balance": "--balance",
    "schedule": "--schedule",
}
EVAL_FLAGS = {
    "eps": "--eps",
    "norm": "--norm",
    "steps": "--pgd-steps",
    "restarts": "--restarts",
    "attack_loss": "--attack-loss",
    "per_class_cap": "--eval-beats",
    "seed": "--eval-seed",
    "attacks": "--attacks",
    "each_attack": "--each-attack",
    "protocol": "--protocol",
    "dataset": "--dataset",
}


@contextlib.contextmanager
def flags_named(flags: Mapping[str, str]) -> Iterator[None]:
    """Inside: a ConfigError that names a configuration field names its flag instead
    (`per_class_cap: ...` becomes `--eval-beats: ...`, `model.width: ...` `--knob width: ...`)."""
    try:
        yield
    except ConfigError as e:
        field, sep, rest = str(e).partition(": ")
        if not sep:
            raise
        if field.startswith("model.") and "model" in flags:
            raise ConfigError(f"--knob {field.removeprefix('model.')}: {rest}") from e
        if field in flags:
            raise ConfigError(f"{flags[field]}: {rest}") from e
        raise


def refuse_unless(applies: bool, flag: str, why: str) -> None:
    """A flag that does not apply is refused, naming it, rather than recorded as if it meant something."""
    if not applies:
        raise ConfigError(f"{flag}: {why}")


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path("/")


def _writable_dir(directory: Path, flag: str, target: Path) -> None:
    """A file can be made in `directory` (its nearest existing ancestor, if it does not exist yet):
    tried with a temporary directory that is removed at once, so nothing stays behind."""
    base = _nearest_existing(directory)
    if not base.is_dir():
        raise ConfigError(f"{flag}: {target} cannot be written: {base} is a file")
    try:
        probe = tempfile.mkdtemp(prefix=".nsr-tune-write-test-", dir=base)
    except OSError as e:
        raise ConfigError(f"{flag}: {target} cannot be written ({e.strerror or e})") from None
    os.rmdir(probe)


def check_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """An output directory that exists as a directory, or can be made; nothing is created yet."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag}: {out} exists and is not a directory")
    _writable_dir(out, flag, out)
    return out


def check_out_file(path: str | Path, flag: str = "--out") -> Path:
    """An output file whose directory can be written, and that is not a directory itself."""
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"{flag}: {out} is a directory; name the file to write")
    _writable_dir(out.parent, flag, out)
    return out


def check_device(name: str | None) -> str | None:
    """--device, checked before any data is read: a torch device this build and machine have."""
    if name is None:
        return None
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(
            f"--device: {name!r} is not a torch device such as cpu, cuda or cuda:1 ({e})"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                "this torch is built without CUDA"
                if torch.version.cuda is None
                else "no CUDA device is visible"
            )
            raise ConfigError(f"--device: {name} is not available here ({why}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device: {name} does not exist ({torch.cuda.device_count()} CUDA devices here)"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device: {name} is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device: {name} is not a device nsr-tune runs on (cpu, cuda, mps)")
    return name


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

    loaded = load_dataset(data, args.data_dir, progress=progress(args))
    for note in loaded.notes:
        log.info("%s", note)
    return loaded


def _fmt(v: float) -> str:
    return "  -  " if v != v else f"{v:.3f}"  # NaN -> dash


def _print_eps_table(heading: str, table: Any, eps: Sequence[float]) -> None:
    """One column per entry of `table` (name -> eps -> accuracy), one row per eps; nothing if empty."""
    if not table:
        return
    names = list(table)
    print(f"  {heading}:")
    print(f"  {'eps':>7} " + " ".join(f"{a:>8}" for a in names))
    for e in eps:
        print(f"  {e:>7g} " + " ".join(f"{_fmt(table[a][e]):>8}" for a in names))


def _print_curves(result: Any) -> None:
    print(f"  {'eps':>7} {'uV':>7} {'robust':>7} {'rob.bal':>7} {'rob.F1':>7} {'noise':>7}")
    for e in result.eps:
        uv = result.eps_uv[e]
        uv_text = "-" if uv != uv else f"{uv:.0f}"
        print(
            f"  {e:>7g} {uv_text:>7} {_fmt(result.robust_acc[e]):>7} "
            f"{_fmt(result.robust_balanced_acc[e]):>7} "
            f"{_fmt(result.robust_macro_f1.get(e, float('nan'))):>7} "
            f"{_fmt(result.noise_acc[e]):>7}"
        )
    for heading, table in (
        ("robust accuracy after each attack of the cascade", result.robust_acc_by_attack),
        ("robust accuracy of each attack run alone", result.robust_acc_alone),
        ("robust accuracy by class", result.robust_acc_by_class),
    ):
        _print_eps_table(heading, table, result.eps)


def _print_noise_stress(result: Any) -> None:
    from nsr_tune.config import NOISE_KINDS

    if not result.noise_stress:
        return
    print("  noise stress test (accuracy; RMS in uV or SNR in dB):")
    for kind in NOISE_KINDS:
        cells = [
            f"{k[len(kind) + 1 :]} {_fmt(v)}"
            for k, v in result.noise_stress.items()
            if k.startswith(kind + "_")
        ]
        if cells:
            print(f"  {kind:>15}: " + "  ".join(cells))


def print_result(result: Any, *, title: str) -> None:
    print(f"\n{title}: {result.n} samples, {result.attack}")
    if result.timings:
        print("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items() if v >= 0.05))
    print(f"  clean accuracy     {_fmt(result.clean_acc)}")
    print(
        f"  balanced accuracy  {_fmt(result.balanced_acc)}"
        f"  (mean recall over {', '.join(result.balanced_classes)})"
    )
    print(f"  macro F1           {_fmt(result.macro_f1)}  (mean F1 over the classes present)")
    low, mid, high = result.uv_per_unit
    if mid == mid:  # not NaN
        print(
            f"  eps 1 = {mid:.0f} uV, the median over the samples ({low:.0f} to {high:.0f}); "
            "the uV column uses the median"
        )
    print(f"  robust AUC         {_fmt(result.robust_auc)}  (balanced: {_fmt(result.robust_balanced_auc)})")
    _print_curves(result)
    uv = result.median_adv_eps_uv
    print(
        f"  median adversarial eps {result.median_adv_eps:.4g}"
        + ("" if uv != uv else f" ({uv:.0f} uV)")
        + (" (above the largest eps: most beats survive it)" if result.median_adv_eps == float("inf") else "")
    )
    _print_noise_stress(result)
    for name, why in result.skipped.items():
        print(f"  SKIPPED {name}: {why}")
    for name, why in result.flags.items():
        print(f"  FLAG {name}: {why}")
    print(f"  {'class':>7} {'sens.':>7} {'prec.':>7} {'F1':>7} {'n':>7}")
    for c, m in result.per_class.items():
        print(f"  {c:>7} {_fmt(m.sensitivity):>7} {_fmt(m.precision):>7} {_fmt(m.f1):>7} {m.support:>7}")


def metrics_json(result: Any, history: Sequence[Any] = ()) -> dict[str, Any]:
    out = result.to_dict()
    if history:
        out["history"] = [dict(h) for h in history]
    return out


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
