"""Checks that flag a masked gradient: signs that an attack failed, not that a model is robust.

Regularisers of input gradients (NSR among them) are the classic way to fool gradient attacks
without being robust (Athalye et al. 2018; Carlini et al. 2019). Each check below is cheap
next to the strong protocol it follows, and each flag comes with one line saying what it saw.
A flag is a reason to distrust a robust accuracy, not proof that it is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nsr_tune.attacks import APGD, Square

__all__ = ["BLACK_BOX", "FLAGS", "masking_flags"]

# Attacks that use no gradient of the model: Square queries its scores, transfer its predictions.
BLACK_BOX = ("square", "transfer")
# Every flag, in the order it is reported; the explanations are in masking_flags.
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


def masking_flags(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    lengths: torch.Tensor,
    *,
    clean_correct: np.ndarray,
    survivors: Mapping[float, np.ndarray],
    by_attack: Mapping[str, Mapping[float, float]],
    robust_acc: Mapping[float, float],
    noise_acc: Mapping[float, float],
    attacks: Sequence[str],
    apgd_steps: int,
    norm: str,
    balanced_k: int,
    generator: torch.Generator,
    batch_size: int,
) -> dict[str, str]:
    """The flags that fire, each with its one-line explanation.

    `survivors[eps]` marks the beats the whole cascade left correct at eps, `by_attack` is the
    accuracy after each attack of the cascade (in order), `balanced_k` the number of classes a
    balanced accuracy averages over.
    """
    flags: dict[str, str] = {}
    n = len(y)
    eps_list = sorted(robust_acc)
    # 1. A black-box attack breaks beats that the white-box attacks before it left correct.
    order = list(attacks)
    for bb in (a for a in order if a in BLACK_BOX and a in by_attack):
        before = [a for a in order[: order.index(bb)] if a not in BLACK_BOX]
        if not before:
            continue
        for e in eps_list:
            gain = by_attack[before[-1]][e] - by_attack[bb][e]
            if gain > _THRESHOLD:
                flags["black_box_beats_white_box"] = (
                    f"{bb} (no gradients) broke {gain:.1%} of the beats that {', '.join(before)} "
                    f"left correct at eps {e:g}"
                )
                break
    # 2. Twice the white-box iterations find more: the attack had not converged, or was misled.
    mid = eps_list[len(eps_list) // 2]
    todo = np.flatnonzero(survivors[mid])
    if len(todo):
        idx = torch.from_numpy(todo).to(x.device)
        twice = APGD(model, eps=mid, norm=norm, steps=2 * apgd_steps, loss="ce")
        drop = _broken(twice, x[idx], y[idx], lengths[idx], generator, batch_size).sum() / n
        if drop > _THRESHOLD:
            flags["more_iterations_help"] = (
                f"APGD-CE with {2 * apgd_steps} steps lowered robust accuracy at eps {mid:g} by a further "
                f"{drop:.1%} after the whole cascade"
            )
    # 3. At eps 1 a beat can reach any signal in [0, 1] on its real samples: a model that keeps
    # its classes apart there is not robust, the attack is blind.
    todo = np.flatnonzero(clean_correct)
    if len(todo) and norm == "linf":
        idx = torch.from_numpy(todo).to(x.device)
        alive = np.zeros(n, dtype=bool)
        alive[todo] = True
        for attack in (
            APGD(model, eps=1.0, steps=apgd_steps, loss="ce"),
            Square(model, eps=1.0, n_queries=300),
        ):
            left = np.flatnonzero(alive)
            if not len(left):
                break
            sub = torch.from_numpy(left).to(x.device)
            alive[left[_broken(attack, x[sub], y[sub], lengths[sub], generator, batch_size)]] = False
        y_np = y.cpu().numpy()
        balanced = float(np.mean([alive[y_np == c].mean() for c in np.unique(y_np)]))
        if balanced > 1.0 / balanced_k:
            flags["large_eps_above_chance"] = (
                f"at eps 1, where a beat can reach any signal in range, robust balanced accuracy is "
                f"{balanced:.1%}, above chance ({1 / balanced_k:.1%})"
            )
    # 4. Exactly zero input gradients: nothing for a gradient attack to follow.
    todo = np.flatnonzero(clean_correct)
    if len(todo):
        xs = x[torch.from_numpy(todo).to(x.device)].detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(F.cross_entropy(model(xs), y[todo], reduction="sum"), xs)
        zero = float((grad.flatten(1).abs().amax(dim=1) == 0).float().sum()) / n
        if zero > _THRESHOLD:
            flags["zero_gradients"] = f"{zero:.1%} of the beats have an input gradient of exactly zero"
    # 5. Random noise of the same size breaks more beats than the attacks.
    worse = [e for e in eps_list if noise_acc[e] < robust_acc[e] - _THRESHOLD]
    if worse:
        e = worse[0]
        flags["noise_beats_attacks"] = (
            f"white noise left {noise_acc[e]:.1%} correct at eps {e:g}, "
            f"fewer than the attacks' {robust_acc[e]:.1%}"
        )
    return {k: flags[k] for k in FLAGS if k in flags}
