"""What every command shares: argument types, the data and evaluation options, printing."""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nsr_tune.errors import ConfigError

log = logging.getLogger("nsr_tune")


def eps_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0.01,0.05; got {text!r}"
        ) from e
    if not values:
        raise argparse.ArgumentTypeError("expected at least one noise level")
    return values


def knob(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as width=64, got {text!r}")
    try:
        return key.strip(), int(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{key}: expected an integer, got {value!r}") from e


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        help="the dataset's directory. mitbih: 'bundled' for the records shipped with nsr-tune "
        "(default: $NSR_TUNE_DATA, else the user cache directory); cpsc2018: AXXXX.hea + AXXXX.mat "
        "records (default: $NSR_TUNE_CPSC2018)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def add_eval(p: argparse.ArgumentParser) -> None:
    """The evaluation protocol: a named one (see nsr_tune.protocol.PROTOCOLS), then overrides."""
    from nsr_tune.protocol import PROTOCOLS

    standard = PROTOCOLS["standard"]
    g = p.add_argument_group("evaluation (a named protocol; each option below overrides it)")
    g.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        default="standard",
        help="standard: the paper's eps list, PGD-100, 300 beats per class (default); "
        "strong: the same beats and eps under APGD-CE, APGD-T, Square, SAP and a transfer attack in a "
        "cascade, the masking checks and the noise stress test; "
        "quick: the cheap protocol a study scores its trials with",
    )
    g.add_argument(
        "--eps", type=eps_list, help=f"noise levels (standard: {','.join(map(str, standard.eps))})"
    )
    g.add_argument("--norm", choices=("linf", "l2"), help=f"standard: {standard.norm}")
    g.add_argument("--pgd-steps", type=int, help=f"standard: {standard.steps}")
    g.add_argument("--restarts", type=int, help=f"standard: {standard.restarts}")
    g.add_argument(
        "--attack-loss", choices=("worst", "ce", "margin"), help=f"standard: {standard.attack_loss}"
    )
    g.add_argument(
        "--eval-beats",
        type=int,
        help=f"at most this many test beats per class (standard: {standard.per_class_cap})",
    )
    g.add_argument(
        "--eval-seed", type=int, help="seed of the evaluation subset and random starts (standard: 0)"
    )
    g.add_argument(
        "--attacks",
        type=lambda text: tuple(a.strip() for a in text.split(",") if a.strip()),
        help="the cascade, in order, e.g. apgd_ce,square (pgd, apgd_ce, apgd_t, square, sap, transfer)",
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
        "(without one, transfer is skipped)",
    )
    g.add_argument(
        "--nstdb",
        metavar="DIR",
        help="the MIT-BIH Noise Stress Test records bw and ma, for the noise stress test "
        "(default: $NSR_TUNE_NSTDB, else the user cache; skipped when absent there)",
    )
    g.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda where present)")


def eval_config(args: argparse.Namespace, dataset: str = "mitbih") -> Any:
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
    return protocol(args.protocol, dataset, **{k: v for k, v in given.items() if v is not None})


def model_path(spec: str, *, mlflow_uri: str | None, scratch: Path) -> Path:
    """A model file named on the command line: a path, or `runs:/RUN_ID` in the MLflow store."""
    if not spec.startswith("runs:/"):
        return Path(spec)
    from nsr_tune.tracking import default_tracking_uri, fetch_model

    return fetch_model(spec, tracking_uri=mlflow_uri or default_tracking_uri(), dest_dir=scratch)


def evaluation_inputs(args: argparse.Namespace, config: Any) -> dict[str, Any]:
    """The surrogate model and noise records that `config`'s protocol needs, read from the options."""
    from nsr_tune.checkpoints import load_model_file
    from nsr_tune.data import nstdb_if_present

    surrogate = None
    if args.surrogate:
        if "transfer" not in config.attacks:
            raise ConfigError(
                f"--surrogate: the protocol runs no transfer attack ({', '.join(config.attacks)})"
            )
        with tempfile.TemporaryDirectory() as d:
            path = model_path(args.surrogate, mlflow_uri=getattr(args, "mlflow_uri", None), scratch=Path(d))
            surrogate = load_model_file(path)[1]
    nstdb = nstdb_if_present(args.nstdb) if config.noise_stress else None
    return {"surrogate": surrogate, "nstdb": nstdb}


def load_splits(args: argparse.Namespace, data: Any) -> Any:
    """The dataset of `--data-dir`, read and split as the DataConfig `data` says (a `Loaded`)."""
    from nsr_tune.data import load_dataset

    loaded = load_dataset(data, args.data_dir, progress=not args.quiet)
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


def print_result(result: Any, *, title: str) -> None:
    from nsr_tune.config import NOISE_KINDS

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
    uv = result.median_adv_eps_uv
    print(
        f"  median adversarial eps {result.median_adv_eps:.4g}"
        + ("" if uv != uv else f" ({uv:.0f} uV)")
        + (" (above the largest eps: most beats survive it)" if result.median_adv_eps == float("inf") else "")
    )
    if result.noise_stress:
        print("  noise stress test (accuracy; RMS in uV or SNR in dB):")
        for kind in NOISE_KINDS:
            cells = [
                f"{k[len(kind) + 1 :]} {_fmt(v)}"
                for k, v in result.noise_stress.items()
                if k.startswith(kind + "_")
            ]
            if cells:
                print(f"  {kind:>15}: " + "  ".join(cells))
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
