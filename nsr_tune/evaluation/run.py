"""The evaluation protocol: clean predictions, then at each eps the cascade of attacks and white
noise; then each beat's smallest breaking eps, the noise stress test and the masking checks.

The attacks and their cascade are in nsr_tune.evaluation.cascade, the noise in .stress, the
checks in .masking; the result is assembled in .result. Label sets (multi-label models) are
evaluated by nsr_tune.evaluation.multilabel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nsr_tune.config import EvalConfig
from nsr_tune.data import BeatSet, RecordSet
from nsr_tune.errors import ConfigError
from nsr_tune.evaluation.batching import OnDevice, predict_samples
from nsr_tune.evaluation.cascade import Cascade, cascade, describe
from nsr_tune.evaluation.masking import masking_flags
from nsr_tune.evaluation.multilabel import evaluate_multilabel
from nsr_tune.evaluation.result import EvalResult, Outcomes, assemble
from nsr_tune.evaluation.scores import SingleLabel, balanced_classes_for, median_adversarial, stratified_cap
from nsr_tune.evaluation.stress import noise_stress, white_noise_accuracy

__all__ = ["evaluate", "plan"]

log = logging.getLogger(__name__)

# The parts of an evaluation whose seconds EvalResult.timings reports, in order.
_PARTS = ("cascade", "white_noise", "bisection", "noise_stress", "masking_checks")


class _Clock:
    """Seconds spent in each part of an evaluation."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(_PARTS, 0.0)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started


def plan(config: EvalConfig) -> str:
    """What an evaluation under `config` will run, in one line for the log: it can take longer
    than the training before it."""
    cap = config.per_class_cap if config.per_class_cap is not None else "all"
    eps = ", ".join(f"{e:g}" for e in config.eps)
    return f"{', '.join(config.attacks)} at eps {eps}, up to {cap} beats per class"


def _check_inputs(beats: BeatSet | RecordSet, surrogate: nn.Module | None, config: EvalConfig) -> None:
    if len(beats) == 0:
        raise ConfigError("beats: nothing to evaluate (empty beat set)")
    if surrogate is not None and not isinstance(surrogate, nn.Module):
        raise ConfigError(f"surrogate: must be a torch nn.Module or None, got {type(surrogate).__name__}")
    unknown = [c for c in config.balanced_classes or () if c not in beats.classes]
    if unknown:
        raise ConfigError(
            f"balanced_classes: {unknown} are not classes of this data ({', '.join(beats.classes)})"
        )


def _attack_names(config: EvalConfig, surrogate: nn.Module | None, skipped: dict[str, str]) -> list[str]:
    """The protocol's attacks that can run; one that cannot is said in `skipped`."""
    if "transfer" in config.attacks and surrogate is None:
        skipped["transfer"] = "no surrogate model was given (--surrogate MODEL)"
        log.warning("the transfer attack is skipped: no surrogate model was given")
    return [a for a in config.attacks if a not in skipped]


def _stress(
    model: nn.Module,
    on: OnDevice,
    config: EvalConfig,
    nstdb: Mapping[str, np.ndarray] | None,
    skipped: dict[str, str],
) -> dict[str, float]:
    """The noise stress test, where the protocol asks for it and the samples allow it."""
    if not config.noise_stress:
        return {}
    if on.samples.n_leads != 1:
        skipped["noise_stress"] = (
            f"the noise stress test adds single-lead noise to single-lead beats; these samples have "
            f"{on.samples.n_leads} leads"
        )
        return {}
    stress, stress_skipped = noise_stress(model, on, config=config, nstdb=nstdb)
    skipped.update(stress_skipped)
    return stress


def _over_eps(
    model: nn.Module,
    on: OnDevice,
    run: Cascade,
    *,
    config: EvalConfig,
    surrogate: nn.Module | None,
    clock: _Clock,
    progress: bool,
) -> dict[float, float]:
    """The cascade at every eps of the grid, smallest first, and white noise of each size: the
    accuracy under noise at each eps."""
    noise = {}
    desc = f"{'+'.join(run.names)} {config.norm}"
    with tqdm(total=len(config.eps) * len(run.names), desc=desc, disable=not progress, leave=False) as bar:
        for eps in config.eps:

            def tick(name: str, eps: float = eps) -> None:
                bar.update(1)
                bar.set_postfix(eps=eps, attack=name, robust=f"{run.alive.mean():.3f}")

            with clock.part("cascade"):
                attacks = cascade(model, eps, config, surrogate=surrogate, fs=on.samples.fs)
                run.run(eps, attacks, on, after_each=tick)
            with clock.part("white_noise"):
                noise[eps] = white_noise_accuracy(model, eps, config, on)
    return noise


def _masking(
    model: nn.Module, on: OnDevice, run: Cascade, noise: Mapping[float, float], config: EvalConfig, k: int
) -> dict[str, str]:
    """The masking checks, where the protocol asks for them; each flag is logged as a warning."""
    if not config.check_masking:
        return {}
    flags = masking_flags(model, on, run, noise_acc=noise, config=config, balanced_k=k)
    for name, why in flags.items():
        log.warning("possible gradient masking (%s): %s", name, why)
    return flags


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
    _check_inputs(beats, surrogate, config)
    if beats.multi_label:
        return evaluate_multilabel(
            model, beats, config=config, device=device, progress=progress, keep_beats=keep_beats
        )
    started = time.perf_counter()
    device = torch.device(device)
    sub = beats.subset(stratified_cap(beats.y, cap=config.per_class_cap, seed=config.seed))
    on = OnDevice.of(sub, device=device, seed=config.seed, batch_size=config.batch_size)
    model = model.to(device).eval()
    surrogate = surrogate.to(device).eval() if surrogate is not None else None
    scorer = SingleLabel(
        sub.y, tuple(beats.classes), config.balanced_classes or balanced_classes_for(split, beats.classes)
    )
    skipped: dict[str, str] = {}
    names = _attack_names(config, surrogate, skipped)
    pred = predict_samples(model, sub, device=device, batch_size=config.batch_size)
    run = Cascade(pred, sub.y, names, each_attack=config.each_attack)
    clock = _Clock()
    noise = _over_eps(model, on, run, config=config, surrogate=surrogate, clock=clock, progress=progress)
    with clock.part("bisection"):
        adv_eps = run.smallest_breaking_eps(model, on, config, surrogate)
    median_eps, median_uv = median_adversarial(adv_eps[run.clean_correct], sub.amp_mv[run.clean_correct])
    with clock.part("noise_stress"):
        stress = _stress(model, on, config, nstdb, skipped)
    with clock.part("masking_checks"):
        flags = _masking(model, on, run, noise, config, len(scorer.balanced))
    several = len(names) > 1
    return assemble(
        Outcomes(pred=pred, survivors=run.survivors, robust_pred=run.robust_pred, noise_acc=noise),
        scorer=scorer,
        eps=config.eps,
        norm=config.norm,
        record=sub.record,
        amp_mv=sub.amp_mv,
        attack=describe(config, names),
        seconds=time.perf_counter() - started,
        keep_beats=keep_beats,
        robust_acc_by_attack=run.by_attack if several else {},
        robust_acc_alone=run.alone if several else {},
        flags=flags,
        median_adv_eps=median_eps,
        median_adv_eps_uv=median_uv,
        noise_stress=stress,
        skipped=skipped,
        timings=clock.seconds,
    )
