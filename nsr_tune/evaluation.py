"""The evaluation protocol: clean metrics, then a cascade of attacks and white noise at each eps.

Following AutoAttack, the protocol's attacks run in order, each only on the beats that are still
correct, and a beat broken by any of them is broken; a beat broken at some eps counts as broken
at every larger eps, so robust accuracy never rises with eps. The accuracy after each attack of
the cascade is kept too, so a reader sees which attack did the work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nsr_tune.attacks import APGD, PGD, SAP, Attack, Square, WhiteNoise
from nsr_tune.config import EvalConfig
from nsr_tune.data import AAMI_CLASSES, FS, BeatSet
from nsr_tune.errors import ConfigError
from nsr_tune.masking import masking_flags
from nsr_tune.metrics import CURVE_KINDS, SCALAR_KINDS, eps_key, metric_name

__all__ = [
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: eps keys become strings such as "0.05"."""
        out = asdict(self)
        for key in ("robust_acc", "robust_balanced_acc", "noise_acc", "eps_uv"):
            out[key] = {eps_key(e): v for e, v in getattr(self, key).items()}
        out["robust_acc_by_attack"] = {
            a: {eps_key(e): v for e, v in curve.items()} for a, curve in self.robust_acc_by_attack.items()
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
        for a, curve in self.robust_acc_by_attack.items():
            for e, v in curve.items():
                out[metric_name(f"robust_acc_{a}", part=part, eps=e)] = v
        for c, m in self.per_class.items():
            out[metric_name(f"sensitivity_{c}", part=part)] = m.sensitivity
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


def cascade(model: nn.Module, eps: float, config: EvalConfig) -> dict[str, Attack]:
    """The protocol's attacks at one eps, in cascade order."""
    common = {
        "eps": eps,
        "norm": config.norm,
        "clamp": config.clamp,
        "respect_padding": config.respect_padding,
    }
    makers = {
        "pgd": lambda: PGD(
            model,
            steps=config.steps,
            step_size=config.step_size,
            restarts=config.restarts,
            loss=config.attack_loss,
            early_exit=config.early_exit,
            **common,
        ),
        "apgd_ce": lambda: APGD(
            model, steps=config.apgd_steps, loss="ce", early_exit=config.early_exit, **common
        ),
        # APGD-T on every other class (C - 1 targets), as AutoAttack's standard version does.
        "apgd_t": lambda: APGD(
            model, steps=config.apgd_steps, loss="dlr_targeted", early_exit=config.early_exit, **common
        ),
        "square": lambda: Square(
            model, n_queries=config.square_queries, early_exit=config.early_exit, **common
        ),
        # Beats are at FS (125 Hz); SAP's kernels are defined in seconds.
        "sap": lambda: SAP(model, fs=FS, steps=config.sap_steps, early_exit=config.early_exit, **common),
    }
    return {name: makers[name]() for name in config.attacks}


def _describe(config: EvalConfig) -> str:
    step = config.step_size if config.step_size is not None else "2.5*eps/steps"
    parts = {
        "pgd": f"PGD-{config.steps} loss={config.attack_loss} restarts={config.restarts} step={step} "
        "random_start",
        "apgd_ce": f"APGD-CE-{config.apgd_steps}",
        "apgd_t": f"APGD-T-{config.apgd_steps}",
        "square": f"Square-{config.square_queries}q",
        "sap": f"SAP-{config.sap_steps}",
    }
    return (
        " -> ".join(parts[a] for a in config.attacks)
        + f" ({config.norm}, early_exit={config.early_exit} clamp={config.clamp} "
        f"respect_padding={config.respect_padding})"
    )


def evaluate(
    model: nn.Module,
    beats: BeatSet,
    *,
    config: EvalConfig,
    split: str = "inter",
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> EvalResult:
    """Evaluate `model` on (a per-class-capped subset of) `beats` under `config`'s protocol."""
    if len(beats) == 0:
        raise ConfigError("beats: nothing to evaluate (empty beat set)")
    started = time.perf_counter()
    classes = config.balanced_classes or balanced_classes_for(split)
    keep = stratified_cap(beats.y, cap=config.per_class_cap, seed=config.seed)
    sub = beats.subset(keep)
    device = torch.device(device)
    model = model.to(device).eval()
    x = torch.from_numpy(sub.x).to(device)  # (N, 1, 187)
    y = torch.from_numpy(sub.y).to(device)  # (N,)
    lengths = torch.from_numpy(sub.length.astype(np.int64)).to(device)  # (N,)
    y_np = sub.y

    pred = predict(model, x, batch_size=config.batch_size).cpu().numpy()
    clean_correct = pred == y_np
    generator = torch.Generator(device=device).manual_seed(config.seed)

    robust, robust_bal, noise, eps_uv = {}, {}, {}, {}
    by_attack: dict[str, dict[float, float]] = {a: {} for a in config.attacks}
    survivors: dict[float, np.ndarray] = {}
    alive = clean_correct.copy()  # correct so far: clean, and unbroken at every smaller eps
    bar = tqdm(
        total=len(config.eps) * len(config.attacks),
        desc=f"{'+'.join(config.attacks)} {config.norm}",
        disable=not progress,
        leave=False,
    )
    for eps in config.eps:
        for name, attack in cascade(model, eps, config).items():
            todo = np.flatnonzero(alive)
            for start in range(0, len(todo), config.batch_size):
                idx = torch.from_numpy(todo[start : start + config.batch_size]).to(device)
                result = attack(x[idx], y[idx], lengths=lengths[idx], generator=generator)
                alive[idx.cpu().numpy()[result.broken.cpu().numpy()]] = False
            by_attack[name][eps] = float(alive.mean())
            bar.update(1)
            bar.set_postfix(eps=eps, attack=name, robust=f"{alive.mean():.3f}")
        robust[eps] = float(alive.mean())
        robust_bal[eps] = mean_recall(alive, y_np, classes)
        survivors[eps] = alive.copy()

        noisy_correct = np.empty(len(y_np), dtype=bool)
        noise_attack = WhiteNoise(
            model, eps=eps, norm=config.norm, clamp=config.clamp, respect_padding=config.respect_padding
        )
        for start in range(0, len(y_np), config.batch_size):
            sl = slice(start, start + config.batch_size)
            res = noise_attack(x[sl], y[sl], lengths=lengths[sl], generator=generator)
            noisy_correct[sl] = ~res.broken.cpu().numpy()
        noise[eps] = float(noisy_correct.mean())
        amp = sub.amp_mv[np.isfinite(sub.amp_mv)]
        eps_uv[eps] = float(np.median(eps * amp * 1000.0)) if len(amp) else float("nan")
    bar.close()

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
            attacks=config.attacks,
            apgd_steps=config.apgd_steps,
            norm=config.norm,
            balanced_k=len(classes),
            generator=generator,
            batch_size=config.batch_size,
        )
        for name, why in flags.items():
            log.warning("possible gradient masking (%s): %s", name, why)
    clean_acc = float(clean_correct.mean())
    balanced = mean_recall(clean_correct, y_np, classes)
    eps_list = list(config.eps)
    return EvalResult(
        n=len(y_np),
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
        attack=_describe(config),
        seconds=time.perf_counter() - started,
        robust_acc_by_attack=by_attack if len(config.attacks) > 1 else {},
        flags=flags,
    )
