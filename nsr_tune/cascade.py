"""A protocol's attacks, built by name from its EvalConfig, and the line that describes them."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nsr_tune.attacks import APGD, PGD, SAP, Attack, Square, Transfer
from nsr_tune.config import EvalConfig
from nsr_tune.errors import ConfigError

__all__ = ["cascade", "describe", "make_attack"]


def make_attack(
    name: str, model: nn.Module, eps: float, config: EvalConfig, surrogate: nn.Module | None, fs: int
) -> Attack:
    common = {
        "eps": eps,
        "norm": config.norm,
        "clamp": config.clamp,
        "respect_padding": config.respect_padding,
    }
    if name == "pgd":
        return PGD(
            model,
            steps=config.steps,
            step_size=config.step_size,
            restarts=config.restarts,
            loss=config.attack_loss,
            early_exit=config.early_exit,
            **common,
        )
    if name == "apgd_ce":
        return APGD(model, steps=config.apgd_steps, loss="ce", early_exit=config.early_exit, **common)
    if name == "apgd_t":
        # APGD-T on every other class (C - 1 targets), as AutoAttack's standard version does.
        return APGD(
            model, steps=config.apgd_steps, loss="dlr_targeted", early_exit=config.early_exit, **common
        )
    if name == "square":
        return Square(model, n_queries=config.square_queries, early_exit=config.early_exit, **common)
    if name == "sap":
        # SAP's kernels are defined in seconds: the data's sampling rate turns them into samples.
        return SAP(model, fs=fs, steps=config.sap_steps, early_exit=config.early_exit, **common)
    if name == "transfer":
        if surrogate is None:
            raise ConfigError("surrogate: the transfer attack needs a surrogate model")
        return Transfer(model, surrogate=surrogate, steps=config.transfer_steps, loss="ce", **common)
    raise ConfigError(f"attacks: unknown attack {name!r}")


def cascade(
    model: nn.Module, eps: float, config: EvalConfig, *, surrogate: nn.Module | None = None, fs: int = 125
) -> dict[str, Attack]:
    """The protocol's attacks at one eps, in cascade order; `transfer` only with a surrogate.
    `fs` is the data's sampling rate in Hz (SAP's smoothing kernels are set in seconds)."""
    names = [a for a in config.attacks if a != "transfer" or surrogate is not None]
    return {name: make_attack(name, model, eps, config, surrogate, fs) for name in names}


def describe(config: EvalConfig, names: Sequence[str]) -> str:
    step = config.step_size if config.step_size is not None else "2.5*eps/steps"
    parts = {
        "pgd": f"PGD-{config.steps} loss={config.attack_loss} restarts={config.restarts} step={step} "
        "random_start",
        "apgd_ce": f"APGD-CE-{config.apgd_steps}",
        "apgd_t": f"APGD-T-{config.apgd_steps}",
        "square": f"Square-{config.square_queries}q",
        "sap": f"SAP-{config.sap_steps}",
        "transfer": f"transfer(PGD-{config.transfer_steps} CE on a surrogate)",
    }
    return (
        " -> ".join(parts[a] for a in names)
        + (" (each attack alone and as a cascade)" if config.each_attack and len(names) > 1 else "")
        + f" ({config.norm}, early_exit={config.early_exit} clamp={config.clamp} "
        f"respect_padding={config.respect_padding})"
    )
