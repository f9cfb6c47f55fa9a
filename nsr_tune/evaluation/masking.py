"""Checks that flag a masked gradient: signs that an attack failed, not that a model is robust.

Regularisers of input gradients (NSR among them) are the classic way to fool gradient attacks
without being robust (Athalye et al. 2018; Carlini et al. 2019). Each check below is cheap
next to the strong protocol it follows, and each flag comes with one line saying what it saw.
A flag is a reason to distrust a robust accuracy, not proof that it is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nsr_tune.attacks import APGD, Attack, Square
from nsr_tune.config import EvalConfig
from nsr_tune.evaluation.batching import OnDevice
from nsr_tune.evaluation.cascade import Cascade

__all__ = ["BLACK_BOX", "FLAGS", "masking_flags"]

# Attacks that use no gradient of the model: Square queries its scores, transfer its predictions.
BLACK_BOX = ("square", "transfer")
# Every flag, in the order it is reported; each check below says what it looks for.
FLAGS = (
    "black_box_beats_white_box",
    "more_iterations_help",
    "large_eps_above_chance",
    "zero_gradients",
    "noise_beats_attacks",
)
# More than this fraction of the evaluated beats (or this many points of accuracy) raises a flag.
_THRESHOLD = 0.01


def _broken(attack, x, y, lengths, generator, batch_size: int) -> np.ndarray:
    out = np.zeros(len(x), dtype=bool)
    for start in range(0, len(x), batch_size):
        sl = slice(start, start + batch_size)
        out[sl] = attack(x[sl], y[sl], lengths=lengths[sl], generator=generator).broken.cpu().numpy()
    return out


def _broken_among(attack: Attack, on: OnDevice, todo: np.ndarray) -> np.ndarray:
    """Which of the beats `todo` (indices) `attack` breaks, in plain batches of the protocol's size."""
    idx = torch.from_numpy(todo).to(on.x.device)
    return _broken(attack, on.x[idx], on.y[idx], on.lengths[idx], on.generator, on.batch_size)


def _black_box_beats_white_box(cascade: Cascade) -> str | None:
    """A black-box attack breaks beats that the white-box attacks before it left correct."""
    order = list(cascade.names)
    found = None  # the last black-box attack that did, at the first eps where it did
    for bb in (a for a in order if a in BLACK_BOX):
        before = [a for a in order[: order.index(bb)] if a not in BLACK_BOX]
        gains = [
            (e, cascade.by_attack[before[-1]][e] - cascade.by_attack[bb][e])
            for e in sorted(cascade.survivors)
            if before
        ]
        e, gain = next(((e, g) for e, g in gains if g > _THRESHOLD), (None, 0.0))
        if e is not None:
            found = (
                f"{bb} (no gradients) broke {gain:.1%} of the beats that {', '.join(before)} "
                f"left correct at eps {e:g}"
            )
    return found


def _more_iterations_help(model: nn.Module, on: OnDevice, cascade: Cascade, config: EvalConfig) -> str | None:
    """Twice the white-box iterations find more: the attack had not converged, or was misled."""
    eps_list = sorted(cascade.survivors)
    mid = eps_list[len(eps_list) // 2]
    todo = np.flatnonzero(cascade.survivors[mid])
    if not len(todo):
        return None
    twice = APGD(model, eps=mid, norm=config.norm, steps=2 * config.apgd_steps, loss="ce")
    drop = _broken_among(twice, on, todo).sum() / len(on.y)
    if drop <= _THRESHOLD:
        return None
    return (
        f"APGD-CE with {2 * config.apgd_steps} steps lowered robust accuracy at eps {mid:g} by a further "
        f"{drop:.1%} after the whole cascade"
    )


def _large_eps_above_chance(
    model: nn.Module, on: OnDevice, cascade: Cascade, config: EvalConfig, balanced_k: int
) -> str | None:
    """At eps 1 a beat can reach any signal in [0, 1] on its real samples: a model that keeps its
    classes apart there is not robust, the attack is blind."""
    todo = np.flatnonzero(cascade.clean_correct)
    if not len(todo) or config.norm != "linf":
        return None
    alive = np.zeros(len(on.y), dtype=bool)
    alive[todo] = True
    for attack in (
        APGD(model, eps=1.0, steps=config.apgd_steps, loss="ce"),
        Square(model, eps=1.0, n_queries=300),
    ):
        left = np.flatnonzero(alive)
        if not len(left):
            break
        alive[left[_broken_among(attack, on, left)]] = False
    y = on.y.cpu().numpy()
    balanced = float(np.mean([alive[y == c].mean() for c in np.unique(y)]))
    if balanced <= 1.0 / balanced_k:
        return None
    return (
        f"at eps 1, where a beat can reach any signal in range, robust balanced accuracy is "
        f"{balanced:.1%}, above chance ({1 / balanced_k:.1%})"
    )


def _zero_gradients(model: nn.Module, on: OnDevice, cascade: Cascade) -> str | None:
    """Exactly zero input gradients: nothing for a gradient attack to follow."""
    todo = np.flatnonzero(cascade.clean_correct)
    if not len(todo):
        return None
    xs = on.x[torch.from_numpy(todo).to(on.x.device)].detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(F.cross_entropy(model(xs), on.y[todo], reduction="sum"), xs)
    zero = float((grad.flatten(1).abs().amax(dim=1) == 0).float().sum()) / len(on.y)
    return f"{zero:.1%} of the beats have an input gradient of exactly zero" if zero > _THRESHOLD else None


def _noise_beats_attacks(cascade: Cascade, noise_acc: Mapping[float, float]) -> str | None:
    """Random noise of the same size breaks more beats than the attacks."""
    robust = {e: float(s.mean()) for e, s in cascade.survivors.items()}
    worse = [e for e in sorted(robust) if noise_acc[e] < robust[e] - _THRESHOLD]
    if not worse:
        return None
    e = worse[0]
    return (
        f"white noise left {noise_acc[e]:.1%} correct at eps {e:g}, fewer than the attacks' {robust[e]:.1%}"
    )


def masking_flags(
    model: nn.Module,
    on: OnDevice,
    cascade: Cascade,
    *,
    noise_acc: Mapping[float, float],
    config: EvalConfig,
    balanced_k: int,
) -> dict[str, str]:
    """The flags that fire after `cascade` ran over the protocol's eps grid, each with its one-line
    explanation, in the order of FLAGS. `balanced_k` is the number of classes a balanced accuracy
    averages over (chance is 1 / balanced_k)."""
    found = {
        "black_box_beats_white_box": _black_box_beats_white_box(cascade),
        "more_iterations_help": _more_iterations_help(model, on, cascade, config),
        "large_eps_above_chance": _large_eps_above_chance(model, on, cascade, config, balanced_k),
        "zero_gradients": _zero_gradients(model, on, cascade),
        "noise_beats_attacks": _noise_beats_attacks(cascade, noise_acc),
    }
    return {k: found[k] for k in FLAGS if found[k] is not None}
