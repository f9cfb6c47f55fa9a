"""A protocol's attacks: built by name from its EvalConfig, run as a cascade over eps, and the
smallest breaking eps of each beat refined by bisection.

Following AutoAttack, the attacks run in order, each only on the beats that are still correct,
and a beat broken by any of them is broken; a beat broken at some eps counts as broken at every
larger eps, so robust accuracy never rises with eps. The accuracy after each attack is kept too,
so a reader sees which attack did the work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from torch import nn

from nsr_tune.attacks import APGD, PGD, SAP, Attack, Square, Transfer
from nsr_tune.config import EvalConfig
from nsr_tune.errors import ConfigError
from nsr_tune.evaluation.batching import OnDevice

__all__ = ["Cascade", "cascade", "describe", "make_attack"]


def make_attack(
    name: str, model: nn.Module, eps: float, config: EvalConfig, surrogate: nn.Module | None, fs: int
) -> Attack:
    common = {
        "eps": eps,
        "norm": config.norm,
        "clamp": config.clamp,
        "respect_padding": config.respect_padding,
    }
    early = {"early_exit": config.early_exit}
    if name == "pgd":
        return PGD(
            model,
            steps=config.steps,
            step_size=config.step_size,
            restarts=config.restarts,
            loss=config.attack_loss,
            **early,
            **common,
        )
    if name == "apgd_ce":
        return APGD(model, steps=config.apgd_steps, loss="ce", **early, **common)
    if name == "apgd_t":
        # APGD-T on every other class (C - 1 targets), as AutoAttack's standard version does.
        return APGD(model, steps=config.apgd_steps, loss="dlr_targeted", **early, **common)
    if name == "square":
        return Square(model, n_queries=config.square_queries, **early, **common)
    if name == "sap":
        # SAP's kernels are defined in seconds: the data's sampling rate turns them into samples.
        return SAP(model, fs=fs, steps=config.sap_steps, **early, **common)
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


class Cascade:
    """The state of a cascade over the eps grid: which beats are still right, where each broke.

    `pred` is each beat's clean prediction. With `each_attack`, every attack runs on every beat
    that it alone has not broken yet (its own robust accuracy is kept in `alone`); a beat is
    broken for the cascade as soon as any attack breaks it.
    """

    def __init__(self, pred: np.ndarray, y: np.ndarray, names: Sequence[str], *, each_attack: bool) -> None:
        self.y = y
        self.names = tuple(names)
        self.clean_correct = pred == y
        self.alive = self.clean_correct.copy()  # right so far: clean, and unbroken at every smaller eps
        # What each beat is classified as under attack so far: its clean prediction until an
        # attack breaks it, then the class the attack pushed it into (for robust F1).
        self.adv_pred = pred.copy()
        self.alive_alone = {a: self.clean_correct.copy() for a in names} if each_attack else {}
        self.alone: dict[str, dict[float, float]] = {a: {} for a in self.alive_alone}
        self.by_attack: dict[str, dict[float, float]] = {a: {} for a in names}
        self.survivors: dict[float, np.ndarray] = {}
        self.robust_pred: dict[float, np.ndarray] = {}
        # Where each beat first broke: the grid eps, the one below it, and the attack that did it.
        self.first_break = np.full(len(y), np.inf)
        self.below = np.zeros(len(y))
        self.breaker = np.full(len(y), "", dtype=object)
        self._previous_eps = 0.0

    def run(
        self,
        eps: float,
        attacks: Mapping[str, Attack],
        on: OnDevice,
        *,
        after_each: Callable[[str], None] | None = None,
    ) -> None:
        """Every attack at `eps`, in order; `after_each(name)` is called after each (progress)."""
        before = self.alive.copy()
        for name, attack in attacks.items():
            if name in self.alive_alone:
                alone = self.alive_alone[name]
                todo = np.flatnonzero(alone)
                alone[todo[on.broken_by(attack, todo, adv_pred=self.adv_pred)]] = False
                self.alone[name][eps] = float(alone.mean())
                self.alive &= alone
            else:
                todo = np.flatnonzero(self.alive)
                self.alive[todo[on.broken_by(attack, todo, adv_pred=self.adv_pred)]] = False
            newly = before & ~self.alive & (self.breaker == "")
            self.breaker[newly], self.first_break[newly], self.below[newly] = name, eps, self._previous_eps
            self.by_attack[name][eps] = float(self.alive.mean())
            if after_each is not None:
                after_each(name)
        self.survivors[eps] = self.alive.copy()
        self.robust_pred[eps] = np.where(self.alive, self.y, self.adv_pred)
        self._previous_eps = eps

    def smallest_breaking_eps(
        self, model: nn.Module, on: OnDevice, config: EvalConfig, surrogate: nn.Module | None
    ) -> np.ndarray:
        """Each beat's smallest breaking eps: its grid eps, refined in (below, first break] by
        `config.bisect_steps` bisection steps with the attack that broke it (inf: never broken).

        Beats that share an attack and an interval go in one batch, so a round costs one call per
        distinct interval.
        """
        lo, hi = self.below.copy(), self.first_break.copy()
        for _ in range(config.bisect_steps if np.isfinite(hi).any() else 0):
            groups: dict[tuple[str, float, float], list[int]] = {}
            for i in np.flatnonzero(np.isfinite(hi)):
                groups.setdefault((str(self.breaker[i]), float(lo[i]), float(hi[i])), []).append(int(i))
            for (name, a, b), members in groups.items():
                mid = (a + b) / 2
                idx = np.asarray(members)
                attack = make_attack(name, model, mid, config, surrogate, on.samples.fs)
                broken = on.broken_by(attack, idx)
                hi[idx[broken]] = mid
                lo[idx[~broken]] = mid
        return hi
