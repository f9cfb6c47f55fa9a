"""The evaluation protocol: clean metrics, then a cascade of attacks and white noise at each eps.

Following AutoAttack, the protocol's attacks run in order, each only on the beats that are still
correct, and a beat broken by any of them is broken; a beat broken at some eps counts as broken
at every larger eps, so robust accuracy never rises with eps. The accuracy after each attack of
the cascade is kept too, so a reader sees which attack did the work. What a result holds, and
the summary statistics behind it, are in nsr_tune.eval_result; the attacks are built in
nsr_tune.cascade and run in batches by nsr_tune.batching.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nsr_tune.attacks import (
    GaussianNoise,
    Powerline,
    RecordedNoise,
    WhiteNoise,
)
from nsr_tune.batching import broken_by, predict_logits, predict_samples
from nsr_tune.cascade import cascade, describe, make_attack
from nsr_tune.config import EvalConfig
from nsr_tune.data import BeatSet, RecordSet
from nsr_tune.errors import ConfigError
from nsr_tune.eval_result import (
    BeatOutcomes,
    ClassMetrics,
    EvalResult,
    balanced_classes_for,
    macro_f1,
    mean_recall,
    median_adversarial,
    per_class,
    robust_auc,
    stratified_cap,
    uv_per_unit,
)
from nsr_tune.masking import masking_flags

__all__ = [
    "BeatOutcomes",
    "ClassMetrics",
    "EvalResult",
    "balanced_classes_for",
    "cascade",
    "evaluate",
    "mean_recall",
    "predict_logits",
    "predict_samples",
    "robust_auc",
    "stratified_cap",
]

log = logging.getLogger(__name__)


def _bisect(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    lengths: torch.Tensor,
    *,
    lower: np.ndarray,
    upper: np.ndarray,
    breaker: np.ndarray,
    config: EvalConfig,
    surrogate: nn.Module | None,
    generator: torch.Generator,
    fs: int,
    trim: bool,
) -> np.ndarray:
    """Each beat's smallest breaking eps, refined from the grid interval (lower, upper].

    A beat is bisected with the attack that broke it at `upper`; beats that share an attack and
    an interval go in one batch, so a round costs one call per distinct interval. Beats with an
    infinite `upper` (never broken) are left as they are.
    """
    lo, hi = lower.copy(), upper.copy()
    for _ in range(config.bisect_steps):
        groups: dict[tuple[str, float, float], list[int]] = {}
        for i in np.flatnonzero(np.isfinite(hi)):
            groups.setdefault((str(breaker[i]), float(lo[i]), float(hi[i])), []).append(int(i))
        for (name, a, b), members in groups.items():
            mid = (a + b) / 2
            idx = np.asarray(members)
            attack = make_attack(name, model, mid, config, surrogate, fs)
            broken = broken_by(
                attack, x, y, lengths, idx, generator=generator, batch_size=config.batch_size, trim=trim
            )
            hi[idx[broken]] = mid
            lo[idx[~broken]] = mid
    return hi


def _noise_stress(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    lengths: torch.Tensor,
    amp_mv: np.ndarray,
    *,
    config: EvalConfig,
    nstdb: Mapping[str, np.ndarray] | None,
    generator: torch.Generator,
    fs: int,
) -> tuple[dict[str, float], dict[str, str]]:
    """Accuracy under each kind of noise at each level, and what was skipped and why.

    Keys are `KIND_LEVELuv` (RMS in microvolts) and `KIND_snr_LEVELdb`, e.g. `bw_snr_6db`.
    """
    out: dict[str, float] = {}
    skipped: dict[str, str] = {}
    kinds = ["white"]
    for k in ("bw", "ma"):
        if nstdb is not None and k in nstdb:
            kinds.append(k)
        else:
            skipped[f"noise_{k}"] = (
                "the MIT-BIH Noise Stress Test records are not at hand "
                "(give --nstdb DIR or set NSR_TUNE_NSTDB)"
            )
    kinds += ["powerline_50hz", "powerline_60hz"]
    levels: list[tuple[str, dict[str, float]]] = [
        (f"snr_{v:g}db", {"snr_db": v}) for v in config.noise_snr_db
    ]
    if np.isfinite(amp_mv).all() and (amp_mv > 0).all():
        levels = [(f"{v:g}uv", {"amplitude_uv": v}) for v in config.noise_uv] + levels
    elif config.noise_uv:
        skipped["noise_uv"] = "the beats have no amplitude in mV (Kaggle CSV rows?); only SNR levels were run"

    def make(kind: str, level: dict[str, float]) -> Any:
        if kind == "white":
            return GaussianNoise(model, **level)
        if kind.startswith("powerline"):
            return Powerline(model, freq_hz=float(kind.split("_")[1][:-2]), fs=fs, **level)
        return RecordedNoise(model, noise=nstdb[kind], kind=kind, **level)

    everyone = np.arange(len(y))
    amp = torch.from_numpy(np.asarray(amp_mv, dtype=np.float32)).to(x.device)
    for kind in kinds:
        for label, level in levels:
            broken = broken_by(
                make(kind, level),
                x,
                y,
                lengths,
                everyone,
                generator=generator,
                batch_size=config.batch_size,
                amp_mv=amp,
            )
            out[f"{kind}_{label}"] = float(1.0 - broken.mean())
    return out, skipped


def evaluate(
    model: nn.Module,
    beats: BeatSet | RecordSet,
    *,
    config: EvalConfig,
    split: str = "inter",
    device: str | torch.device = "cpu",
    progress: bool = False,
    surrogate: nn.Module | None = None,
    nstdb: Mapping[str, np.ndarray] | None = None,
    keep_beats: bool = False,
) -> EvalResult:
    """Evaluate `model` (any nn.Module taking (B, leads, L) inputs) on `beats` under `config`'s protocol.

    `beats` is a part of a dataset: MIT-BIH beats or CPSC2018 records. Records of different
    lengths are attacked in batches of similar length, each cut to its longest record; the
    attacks leave the padding untouched, and eps is in units of the scaled input (also given
    in microvolts: the median over the samples of eps times their millivolts per unit).

    `surrogate` is the model the `transfer` attack runs PGD on; without one the transfer attack
    is skipped and `EvalResult.skipped` says so. `nstdb` holds the noise records of the noise
    stress test (`nsr_tune.data.load_nstdb()`); without them its `bw` and `ma` kinds are skipped.
    `keep_beats` keeps each beat's outcome in `EvalResult.beats`, for intervals by record.
    """
    if len(beats) == 0:
        raise ConfigError("beats: nothing to evaluate (empty beat set)")
    if beats.multi_label:
        from nsr_tune.multilabel import evaluate_multilabel

        return evaluate_multilabel(
            model, beats, config=config, device=device, progress=progress, keep_beats=keep_beats
        )
    if surrogate is not None and not isinstance(surrogate, nn.Module):
        raise ConfigError(f"surrogate: must be a torch nn.Module or None, got {type(surrogate).__name__}")
    started = time.perf_counter()
    all_classes = beats.classes
    unknown = [c for c in config.balanced_classes or () if c not in all_classes]
    if unknown:
        raise ConfigError(
            f"balanced_classes: {unknown} are not classes of this data ({', '.join(all_classes)})"
        )
    classes = config.balanced_classes or balanced_classes_for(split, all_classes)
    keep = stratified_cap(beats.y, cap=config.per_class_cap, seed=config.seed)
    sub = beats.subset(keep)
    device = torch.device(device)
    model = model.to(device).eval()
    if surrogate is not None:
        surrogate = surrogate.to(device).eval()
    x_np, len_np = sub.inputs(np.arange(len(sub)))
    x = torch.from_numpy(x_np).to(device)  # (N, leads, L): zero-padded to the longest sample
    y = torch.from_numpy(sub.y).to(device)  # (N,)
    lengths = torch.from_numpy(len_np).to(device)  # (N,)
    y_np = sub.y
    n = len(y_np)
    fs, trim = sub.fs, sub.variable_length
    run = {
        "generator": torch.Generator(device=device).manual_seed(config.seed),
        "batch_size": config.batch_size,
        "trim": trim,
    }

    pred = predict_samples(model, sub, device=device, batch_size=config.batch_size)
    clean_correct = pred == y_np
    # What each sample is classified as under attack at the current eps (for robust F1): its
    # clean prediction until an attack breaks it, then the class the attack pushed it into.
    adv_pred = pred.copy()
    robust_f1: dict[float, float] = {}
    robust_pred: dict[float, np.ndarray] = {}
    skipped: dict[str, str] = {}
    if "transfer" in config.attacks and surrogate is None:
        skipped["transfer"] = "no surrogate model was given (--surrogate MODEL)"
        log.warning("the transfer attack is skipped: no surrogate model was given")
    names = [a for a in config.attacks if a not in skipped]

    robust, robust_bal, noise, eps_uv = {}, {}, {}, {}
    by_attack: dict[str, dict[float, float]] = {a: {} for a in names}
    alone: dict[str, dict[float, float]] = {a: {} for a in names} if config.each_attack else {}
    alive_alone = {a: clean_correct.copy() for a in alone}  # each attack run alone
    survivors: dict[float, np.ndarray] = {}
    alive = clean_correct.copy()  # correct so far: clean, and unbroken at every smaller eps
    # Where each beat first broke: the grid eps, the one below it, and the attack that did it.
    first_break = np.full(n, np.inf)
    below = np.zeros(n)
    breaker = np.full(n, "", dtype=object)
    bar = tqdm(
        total=len(config.eps) * len(names),
        desc=f"{'+'.join(names)} {config.norm}",
        disable=not progress,
        leave=False,
    )
    previous_eps = 0.0
    timings = dict.fromkeys(("cascade", "white_noise", "bisection", "noise_stress", "masking_checks"), 0.0)
    clock = time.perf_counter()
    for eps in config.eps:
        before = alive.copy()
        for name, attack in cascade(model, eps, config, surrogate=surrogate, fs=fs).items():
            if config.each_attack:
                todo = np.flatnonzero(alive_alone[name])
                hit = broken_by(attack, x, y, lengths, todo, adv_pred=adv_pred, **run)
                alive_alone[name][todo[hit]] = False
                alone[name][eps] = float(alive_alone[name].mean())
                alive &= alive_alone[name]
            else:
                todo = np.flatnonzero(alive)
                alive[todo[broken_by(attack, x, y, lengths, todo, adv_pred=adv_pred, **run)]] = False
            newly = before & ~alive & (breaker == "")
            breaker[newly], first_break[newly], below[newly] = name, eps, previous_eps
            by_attack[name][eps] = float(alive.mean())
            bar.update(1)
            bar.set_postfix(eps=eps, attack=name, robust=f"{alive.mean():.3f}")
        robust[eps] = float(alive.mean())
        robust_bal[eps] = mean_recall(alive, y_np, classes, all_classes)
        robust_f1[eps] = macro_f1(np.where(alive, y_np, adv_pred), y_np, all_classes)
        survivors[eps] = alive.copy()
        robust_pred[eps] = np.where(alive, y_np, adv_pred)
        previous_eps = eps
        timings["cascade"] += time.perf_counter() - clock
        clock = time.perf_counter()

        noise_attack = WhiteNoise(
            model, eps=eps, norm=config.norm, clamp=config.clamp, respect_padding=config.respect_padding
        )
        noise[eps] = float(1.0 - broken_by(noise_attack, x, y, lengths, np.arange(n), **run).mean())
        amp = sub.amp_mv[np.isfinite(sub.amp_mv)]
        eps_uv[eps] = float(np.median(eps * amp * 1000.0)) if len(amp) else float("nan")
        timings["white_noise"] += time.perf_counter() - clock
        clock = time.perf_counter()
    bar.close()

    adv_eps = first_break
    if config.bisect_steps and np.isfinite(first_break).any():
        adv_eps = _bisect(
            model,
            x,
            y,
            lengths,
            lower=below,
            upper=first_break,
            breaker=breaker,
            config=config,
            surrogate=surrogate,
            generator=run["generator"],
            fs=fs,
            trim=trim,
        )
    timings["bisection"] = time.perf_counter() - clock
    clock = time.perf_counter()
    median_eps, median_uv = median_adversarial(adv_eps[clean_correct], sub.amp_mv[clean_correct])

    stress: dict[str, float] = {}
    if config.noise_stress and sub.n_leads != 1:
        skipped["noise_stress"] = (
            f"the noise stress test adds single-lead noise to single-lead beats; these samples have "
            f"{sub.n_leads} leads"
        )
    elif config.noise_stress:
        stress, stress_skipped = _noise_stress(
            model, x, y, lengths, sub.amp_mv, config=config, nstdb=nstdb, generator=run["generator"], fs=fs
        )
        skipped.update(stress_skipped)
    timings["noise_stress"] = time.perf_counter() - clock
    clock = time.perf_counter()

    flags = {}
    if config.check_masking:
        flags = masking_flags(
            model,
            x,
            y,
            lengths,
            clean_correct=clean_correct,
            survivors=survivors,
            by_attack=by_attack,
            robust_acc=robust,
            noise_acc=noise,
            attacks=names,
            apgd_steps=config.apgd_steps,
            norm=config.norm,
            balanced_k=len(classes),
            generator=run["generator"],
            batch_size=config.batch_size,
        )
        for name, why in flags.items():
            log.warning("possible gradient masking (%s): %s", name, why)
    timings["masking_checks"] = time.perf_counter() - clock
    clean_acc = float(clean_correct.mean())
    balanced = mean_recall(clean_correct, y_np, classes, all_classes)
    eps_list = list(config.eps)
    by_class = {
        c: {e: float(survivors[e][y_np == i].mean()) for e in eps_list}
        for i, c in enumerate(all_classes)
        if (y_np == i).any()
    }
    return EvalResult(
        n=n,
        clean_acc=clean_acc,
        balanced_acc=balanced,
        balanced_classes=tuple(classes),
        per_class=per_class(pred, y_np, all_classes),
        macro_f1=macro_f1(pred, y_np, all_classes),
        uv_per_unit=uv_per_unit(sub.amp_mv),
        robust_macro_f1=robust_f1,
        eps=tuple(eps_list),
        norm=config.norm,
        robust_acc=robust,
        robust_balanced_acc=robust_bal,
        noise_acc=noise,
        eps_uv=eps_uv,
        robust_auc=robust_auc(eps_list, clean_acc, [robust[e] for e in eps_list]),
        robust_balanced_auc=robust_auc(eps_list, balanced, [robust_bal[e] for e in eps_list]),
        attack=describe(config, names),
        seconds=time.perf_counter() - started,
        robust_acc_by_attack=by_attack if len(names) > 1 else {},
        flags=flags,
        robust_acc_alone=alone if len(names) > 1 else {},
        robust_acc_by_class=by_class,
        median_adv_eps=median_eps,
        median_adv_eps_uv=median_uv,
        noise_stress=stress,
        skipped=skipped,
        timings=timings,
        beats=BeatOutcomes(
            record=sub.record.copy(),
            y=y_np.copy(),
            clean_correct=clean_correct,
            survived=np.stack([survivors[e] for e in eps_list]),
            classes=tuple(all_classes),
            pred=pred.copy(),
            robust_pred=np.stack([robust_pred[e] for e in eps_list]),
        )
        if keep_beats
        else None,
    )
