"""The evaluation protocol: clean metrics, then a cascade of attacks and white noise at each eps.

Following AutoAttack, the protocol's attacks run in order, each only on the beats that are still
correct, and a beat broken by any of them is broken; a beat broken at some eps counts as broken
at every larger eps, so robust accuracy never rises with eps. The accuracy after each attack of
the cascade is kept too, so a reader sees which attack did the work.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nsr_tune.attacks import (
    APGD,
    PGD,
    SAP,
    Attack,
    GaussianNoise,
    Powerline,
    RecordedNoise,
    Square,
    Transfer,
    WhiteNoise,
)
from nsr_tune.config import EvalConfig
from nsr_tune.data import AAMI_CLASSES, FS, BeatSet
from nsr_tune.errors import ConfigError
from nsr_tune.masking import masking_flags
from nsr_tune.metrics import CURVE_KINDS, SCALAR_KINDS, eps_key, metric_name

__all__ = [
    "BeatOutcomes",
    "ClassMetrics",
    "EvalResult",
    "balanced_classes_for",
    "cascade",
    "evaluate",
    "mean_recall",
    "predict",
    "robust_auc",
    "stratified_cap",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassMetrics:
    sensitivity: float  # recall; NaN where the class has no beats
    precision: float  # NaN where nothing was predicted as the class
    support: int


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class BeatOutcomes:
    """What became of each evaluated beat, for intervals that resample records (patients).

    record: (N,) record (patient) of each beat; y: (N,) its class index.
    clean_correct: (N,) bool. survived: (E, N) bool, correct under the protocol's attacks at each
    eps of `EvalResult.eps` (and at every smaller one).
    """

    record: np.ndarray
    y: np.ndarray
    clean_correct: np.ndarray
    survived: np.ndarray


@dataclass(frozen=True)
class EvalResult:
    n: int
    clean_acc: float
    balanced_acc: float  # mean sensitivity over `balanced_classes` present in the beats
    balanced_classes: tuple[str, ...]
    per_class: Mapping[str, ClassMetrics]
    eps: tuple[float, ...]
    norm: str
    robust_acc: Mapping[float, float]
    robust_balanced_acc: Mapping[float, float]
    noise_acc: Mapping[float, float]
    eps_uv: Mapping[float, float]  # median over the beats of eps x amplitude range, in microvolts
    robust_auc: float
    robust_balanced_auc: float
    attack: str
    seconds: float
    # Robust accuracy after each attack of the cascade, in its order (the last one equals
    # `robust_acc`); empty for a protocol of one attack.
    robust_acc_by_attack: Mapping[str, Mapping[float, float]] = field(default_factory=dict)
    # Checks that fired for a masked gradient (name -> one line saying what was seen); see
    # nsr_tune.masking. Empty when the protocol runs no checks or none fired.
    flags: Mapping[str, str] = field(default_factory=dict)
    # Each attack's own robust accuracy, run alone on every clean-correct beat (EvalConfig's
    # `each_attack`); empty otherwise.
    robust_acc_alone: Mapping[str, Mapping[float, float]] = field(default_factory=dict)
    # Robust accuracy (the cascade's) among the beats of each class present: class -> eps -> acc.
    robust_acc_by_class: Mapping[str, Mapping[float, float]] = field(default_factory=dict)
    # Median over the clean-correct beats of the smallest eps that breaks each (grid, then
    # bisection), in x's units and in microvolts; inf when more than half survive the largest eps.
    median_adv_eps: float = float("nan")
    median_adv_eps_uv: float = float("nan")
    # The noise stress test: accuracy under each kind of noise at each level (e.g. `bw_snr_6db`,
    # `ma_100uv`, `white_100uv`, `powerline_50hz_100uv`); empty when the protocol runs none.
    noise_stress: Mapping[str, float] = field(default_factory=dict)
    # What the protocol asked for but could not run, and why (e.g. transfer without a surrogate).
    skipped: Mapping[str, str] = field(default_factory=dict)
    # Seconds spent in each part: cascade, white_noise, bisection, noise_stress, masking_checks.
    timings: Mapping[str, float] = field(default_factory=dict)
    # Per-beat outcomes, kept only when asked for (`evaluate(keep_beats=True)`); not in to_dict.
    beats: BeatOutcomes | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: eps keys become strings such as "0.05"."""
        out = asdict(dataclasses.replace(self, beats=None))
        del out["beats"]
        for key in ("robust_acc", "robust_balanced_acc", "noise_acc", "eps_uv"):
            out[key] = {eps_key(e): v for e, v in getattr(self, key).items()}
        for key in ("robust_acc_by_attack", "robust_acc_alone", "robust_acc_by_class"):
            out[key] = {
                a: {eps_key(e): v for e, v in curve.items()} for a, curve in getattr(self, key).items()
            }
        out["eps"] = list(self.eps)
        out["balanced_classes"] = list(self.balanced_classes)
        return out

    def flat_metrics(self, part: str | None = None) -> dict[str, float]:
        """Scalar metrics named by the metric schema, e.g. `val_robust_acc_eps_0.05`."""
        out = {metric_name(k, part=part): getattr(self, k) for k in SCALAR_KINDS}
        for e in self.eps:
            for k in CURVE_KINDS:
                out[metric_name(k, part=part, eps=e)] = getattr(self, k)[e]
        for prefix, table in (
            ("robust_acc", self.robust_acc_by_attack),
            ("robust_acc_alone", self.robust_acc_alone),
            ("robust_sensitivity", self.robust_acc_by_class),
        ):
            for a, curve in table.items():
                for e, v in curve.items():
                    out[metric_name(f"{prefix}_{a}", part=part, eps=e)] = v
        for c, m in self.per_class.items():
            out[metric_name(f"sensitivity_{c}", part=part)] = m.sensitivity
        out[metric_name("median_adv_eps", part=part)] = self.median_adv_eps
        out[metric_name("median_adv_eps_uv", part=part)] = self.median_adv_eps_uv
        for key, v in self.noise_stress.items():
            out[metric_name(f"noise_{key}", part=part)] = v
        return out

    def curves(self) -> dict[str, Any]:
        """The accuracy-against-noise curves as plain data (lists indexed like `eps`)."""
        return {
            "eps": list(self.eps),
            "eps_uv": [self.eps_uv[e] for e in self.eps],
            "norm": self.norm,
            "attack": self.attack,
            "clean_acc": self.clean_acc,
            "balanced_acc": self.balanced_acc,
            **{k: [getattr(self, k)[e] for e in self.eps] for k in CURVE_KINDS},
        }


def balanced_classes_for(split: str) -> tuple[str, ...]:
    # DS2 holds about 7 Q beats, so EC57 and de Chazal average over N, S, V, F for `inter`.
    return ("N", "S", "V", "F") if split == "inter" else AAMI_CLASSES


def stratified_cap(y: np.ndarray, *, cap: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most `cap` beats per class, the same for every model given a seed."""
    if cap is None:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        picks.append(idx if len(idx) <= cap else rng.choice(idx, size=cap, replace=False))
    return np.sort(np.concatenate(picks)) if picks else np.arange(0)


def robust_auc(eps: Sequence[float], clean: float, robust: Sequence[float]) -> float:
    """Area under accuracy over eps from the clean point (0, clean), divided by the largest eps."""
    xs = np.array([0.0, *eps])
    ys = np.array([clean, *robust])
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2) / xs[-1])


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)])


def mean_recall(correct: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> float:
    """Mean recall over the listed classes that have beats (NaN where none has)."""
    recalls = [
        correct[y == AAMI_CLASSES.index(c)].mean() for c in classes if (y == AAMI_CLASSES.index(c)).any()
    ]
    return float(np.mean(recalls)) if recalls else float("nan")


def _per_class(pred: np.ndarray, y: np.ndarray) -> dict[str, ClassMetrics]:
    out = {}
    for i, c in enumerate(AAMI_CLASSES):
        support = int((y == i).sum())
        predicted = int((pred == i).sum())
        tp = int(((pred == i) & (y == i)).sum())
        out[c] = ClassMetrics(
            sensitivity=tp / support if support else float("nan"),
            precision=tp / predicted if predicted else float("nan"),
            support=support,
        )
    return out


def _make_attack(
    name: str, model: nn.Module, eps: float, config: EvalConfig, surrogate: nn.Module | None
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
        # Beats are at FS (125 Hz); SAP's kernels are defined in seconds.
        return SAP(model, fs=FS, steps=config.sap_steps, early_exit=config.early_exit, **common)
    if name == "transfer":
        if surrogate is None:
            raise ConfigError("surrogate: the transfer attack needs a surrogate model")
        return Transfer(model, surrogate=surrogate, steps=config.transfer_steps, loss="ce", **common)
    raise ConfigError(f"attacks: unknown attack {name!r}")


def cascade(
    model: nn.Module, eps: float, config: EvalConfig, *, surrogate: nn.Module | None = None
) -> dict[str, Attack]:
    """The protocol's attacks at one eps, in cascade order; `transfer` only with a surrogate."""
    names = [a for a in config.attacks if a != "transfer" or surrogate is not None]
    return {name: _make_attack(name, model, eps, config, surrogate) for name in names}


def _describe(config: EvalConfig, names: Sequence[str]) -> str:
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


def _broken_by(
    attack: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    lengths: torch.Tensor,
    todo: np.ndarray,
    *,
    generator: torch.Generator,
    batch_size: int,
    **extra: Any,
) -> np.ndarray:
    """Which of the beats `todo` (indices) `attack` breaks, batch by batch: (len(todo),) bool."""
    broken = np.zeros(len(todo), dtype=bool)
    for start in range(0, len(todo), batch_size):
        idx = torch.from_numpy(todo[start : start + batch_size]).to(x.device)
        extra_b = {k: v[idx] for k, v in extra.items()}
        res = attack(x[idx], y[idx], lengths=lengths[idx], generator=generator, **extra_b)
        broken[start : start + len(idx)] = res.broken.cpu().numpy()
    return broken


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
            attack = _make_attack(name, model, mid, config, surrogate)
            broken = _broken_by(attack, x, y, lengths, idx, generator=generator, batch_size=config.batch_size)
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
            return Powerline(model, freq_hz=float(kind.split("_")[1][:-2]), fs=FS, **level)
        return RecordedNoise(model, noise=nstdb[kind], kind=kind, **level)

    everyone = np.arange(len(y))
    amp = torch.from_numpy(np.asarray(amp_mv, dtype=np.float32)).to(x.device)
    for kind in kinds:
        for label, level in levels:
            broken = _broken_by(
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
    beats: BeatSet,
    *,
    config: EvalConfig,
    split: str = "inter",
    device: str | torch.device = "cpu",
    progress: bool = False,
    surrogate: nn.Module | None = None,
    nstdb: Mapping[str, np.ndarray] | None = None,
    keep_beats: bool = False,
) -> EvalResult:
    """Evaluate `model` (any nn.Module taking (B, 1, L) beats) on `beats` under `config`'s protocol.

    `surrogate` is the model the `transfer` attack runs PGD on; without one the transfer attack
    is skipped and `EvalResult.skipped` says so. `nstdb` holds the noise records of the noise
    stress test (`nsr_tune.data.load_nstdb()`); without them its `bw` and `ma` kinds are skipped.
    `keep_beats` keeps each beat's outcome in `EvalResult.beats`, for intervals by record.
    """
    if len(beats) == 0:
        raise ConfigError("beats: nothing to evaluate (empty beat set)")
    if surrogate is not None and not isinstance(surrogate, nn.Module):
        raise ConfigError(f"surrogate: must be a torch nn.Module or None, got {type(surrogate).__name__}")
    started = time.perf_counter()
    classes = config.balanced_classes or balanced_classes_for(split)
    keep = stratified_cap(beats.y, cap=config.per_class_cap, seed=config.seed)
    sub = beats.subset(keep)
    device = torch.device(device)
    model = model.to(device).eval()
    if surrogate is not None:
        surrogate = surrogate.to(device).eval()
    x = torch.from_numpy(sub.x).to(device)  # (N, 1, 187)
    y = torch.from_numpy(sub.y).to(device)  # (N,)
    lengths = torch.from_numpy(sub.length.astype(np.int64)).to(device)  # (N,)
    y_np = sub.y
    n = len(y_np)
    run = {
        "generator": torch.Generator(device=device).manual_seed(config.seed),
        "batch_size": config.batch_size,
    }

    pred = predict(model, x, batch_size=config.batch_size).cpu().numpy()
    clean_correct = pred == y_np
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
        for name, attack in cascade(model, eps, config, surrogate=surrogate).items():
            if config.each_attack:
                todo = np.flatnonzero(alive_alone[name])
                alive_alone[name][todo[_broken_by(attack, x, y, lengths, todo, **run)]] = False
                alone[name][eps] = float(alive_alone[name].mean())
                alive &= alive_alone[name]
            else:
                todo = np.flatnonzero(alive)
                alive[todo[_broken_by(attack, x, y, lengths, todo, **run)]] = False
            newly = before & ~alive & (breaker == "")
            breaker[newly], first_break[newly], below[newly] = name, eps, previous_eps
            by_attack[name][eps] = float(alive.mean())
            bar.update(1)
            bar.set_postfix(eps=eps, attack=name, robust=f"{alive.mean():.3f}")
        robust[eps] = float(alive.mean())
        robust_bal[eps] = mean_recall(alive, y_np, classes)
        survivors[eps] = alive.copy()
        previous_eps = eps
        timings["cascade"] += time.perf_counter() - clock
        clock = time.perf_counter()

        noise_attack = WhiteNoise(
            model, eps=eps, norm=config.norm, clamp=config.clamp, respect_padding=config.respect_padding
        )
        noise[eps] = float(1.0 - _broken_by(noise_attack, x, y, lengths, np.arange(n), **run).mean())
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
        )
    timings["bisection"] = time.perf_counter() - clock
    clock = time.perf_counter()
    median_eps, median_uv = _median_adversarial(adv_eps[clean_correct], sub.amp_mv[clean_correct])

    stress: dict[str, float] = {}
    if config.noise_stress:
        stress, stress_skipped = _noise_stress(
            model, x, y, lengths, sub.amp_mv, config=config, nstdb=nstdb, generator=run["generator"]
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
    balanced = mean_recall(clean_correct, y_np, classes)
    eps_list = list(config.eps)
    by_class = {
        c: {e: float(survivors[e][y_np == i].mean()) for e in eps_list}
        for i, c in enumerate(AAMI_CLASSES)
        if (y_np == i).any()
    }
    return EvalResult(
        n=n,
        clean_acc=clean_acc,
        balanced_acc=balanced,
        balanced_classes=tuple(classes),
        per_class=_per_class(pred, y_np),
        eps=tuple(eps_list),
        norm=config.norm,
        robust_acc=robust,
        robust_balanced_acc=robust_bal,
        noise_acc=noise,
        eps_uv=eps_uv,
        robust_auc=robust_auc(eps_list, clean_acc, [robust[e] for e in eps_list]),
        robust_balanced_auc=robust_auc(eps_list, balanced, [robust_bal[e] for e in eps_list]),
        attack=_describe(config, names),
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
        )
        if keep_beats
        else None,
    )


def _median_adversarial(adv_eps: np.ndarray, amp_mv: np.ndarray) -> tuple[float, float]:
    """Median smallest breaking eps over the clean-correct beats, and the same in microvolts.

    A beat never broken counts as infinitely robust, so the median is infinite when more than
    half of the beats survive the largest eps (it lies above the grid). NaN without beats, and in
    microvolts NaN when the beats have no amplitude in mV.
    """
    if len(adv_eps) == 0:
        return float("nan"), float("nan")
    uv = adv_eps * amp_mv * 1000.0
    return float(np.median(adv_eps)), float(np.median(uv)) if np.isfinite(amp_mv).all() else float("nan")
