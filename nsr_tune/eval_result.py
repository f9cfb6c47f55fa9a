"""What an evaluation returns, as plain data, and the summary statistics it is made of.

`nsr_tune.evaluation` runs the attacks; this module holds the result types (`EvalResult`, its
per-class and per-beat parts), their flat metric names and curves, and the pure functions that
summarise predictions: class-balanced recall, the robust AUC, the per-class cap of a subset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from nsr_tune.data import AAMI_CLASSES
from nsr_tune.metrics import CURVE_KINDS, SCALAR_KINDS, eps_key, metric_name

__all__ = [
    "BeatOutcomes",
    "ClassMetrics",
    "EvalResult",
    "balanced_classes_for",
    "macro_f1",
    "mean_recall",
    "median_adversarial",
    "per_class",
    "per_label",
    "robust_auc",
    "stratified_cap",
    "uv_per_unit",
]


@dataclass(frozen=True)
class ClassMetrics:
    sensitivity: float  # recall; NaN where the class has no beats
    precision: float  # NaN where nothing was predicted as the class
    support: int
    f1: float = float("nan")  # 2 TP / (2 TP + FP + FN); NaN where the class has no beats


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
    classes: tuple[str, ...] = AAMI_CLASSES  # what `y` indexes
    # The class each sample was given, clean (N,) and under the attacks at each eps (E, N), for
    # F1 intervals; None where there is no single class (multi-label) or it was not kept.
    pred: np.ndarray | None = None
    robust_pred: np.ndarray | None = None


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
    # The mean over the classes present of each class's F1 (CPSC2018's headline score), clean
    # and under the cascade at each eps (a broken sample counts as the class it was pushed to).
    macro_f1: float = float("nan")
    robust_macro_f1: Mapping[float, float] = field(default_factory=dict)
    # Microvolts that one unit of x stands for, over the evaluated samples: (min, median, max).
    # A beat or record is scaled on its own, so eps means a different voltage in each; eps x
    # these gives the range (eps_uv holds the median). NaN where the data carry no amplitude.
    uv_per_unit: tuple[float, float, float] = (float("nan"), float("nan"), float("nan"))
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
        for key in ("robust_acc", "robust_balanced_acc", "noise_acc", "eps_uv", "robust_macro_f1"):
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
                out[metric_name(k, part=part, eps=e)] = getattr(self, k).get(e, float("nan"))
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
            out[metric_name(f"f1_{c}", part=part)] = m.f1
            out[metric_name(f"ppv_{c}", part=part)] = m.precision  # positive predictivity, +P
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
            **{k: [getattr(self, k).get(e, float("nan")) for e in self.eps] for k in CURVE_KINDS},
        }


def balanced_classes_for(split: str, classes: Sequence[str] = AAMI_CLASSES) -> tuple[str, ...]:
    """The classes the headline balanced accuracy averages over: every class of the data, but
    for MIT-BIH's `inter` split, whose DS2 holds about 7 Q beats: N, S, V, F (EC57, de Chazal)."""
    return ("N", "S", "V", "F") if split == "inter" else tuple(classes)


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


def mean_recall(
    correct: np.ndarray, y: np.ndarray, classes: Sequence[str], all_classes: Sequence[str] = AAMI_CLASSES
) -> float:
    """Mean recall over the listed classes that have samples (NaN where none has); `y` indexes
    `all_classes`."""
    index = [list(all_classes).index(c) for c in classes]
    recalls = [correct[y == i].mean() for i in index if (y == i).any()]
    return float(np.mean(recalls)) if recalls else float("nan")


def per_class(
    pred: np.ndarray, y: np.ndarray, classes: Sequence[str] = AAMI_CLASSES
) -> dict[str, ClassMetrics]:
    """Sensitivity, precision, F1 and support of every class (NaN where undefined)."""
    out = {}
    for i, c in enumerate(classes):
        support = int((y == i).sum())
        predicted = int((pred == i).sum())
        tp = int(((pred == i) & (y == i)).sum())
        out[c] = ClassMetrics(
            sensitivity=tp / support if support else float("nan"),
            precision=tp / predicted if predicted else float("nan"),
            support=support,
            f1=2 * tp / (support + predicted) if support else float("nan"),
        )
    return out


def macro_f1(pred: np.ndarray, y: np.ndarray, classes: Sequence[str] = AAMI_CLASSES) -> float:
    """Mean F1 over the classes that have samples (the CPSC2018 challenge's score); NaN if none."""
    scores = [m.f1 for m in per_class(pred, y, classes).values() if m.support]
    return float(np.mean(scores)) if scores else float("nan")


def per_label(pred: np.ndarray, targets: np.ndarray, classes: Sequence[str]) -> dict[str, ClassMetrics]:
    """Per-class metrics of label sets: pred and targets (N, K) bool, one column per class; a
    class's F1 counts the samples that carry it and those predicted to (NaN where none carry it)."""
    out = {}
    for i, c in enumerate(classes):
        support, predicted = int(targets[:, i].sum()), int(pred[:, i].sum())
        tp = int((pred[:, i] & targets[:, i]).sum())
        out[c] = ClassMetrics(
            sensitivity=tp / support if support else float("nan"),
            precision=tp / predicted if predicted else float("nan"),
            support=support,
            f1=2 * tp / (support + predicted) if support else float("nan"),
        )
    return out


def median_adversarial(adv_eps: np.ndarray, amp_mv: np.ndarray) -> tuple[float, float]:
    """Median smallest breaking eps over the clean-correct beats, and the same in microvolts.

    A beat never broken counts as infinitely robust, so the median is infinite when more than
    half of the beats survive the largest eps (it lies above the grid). NaN without beats, and in
    microvolts NaN when the beats have no amplitude in mV.
    """
    if len(adv_eps) == 0:
        return float("nan"), float("nan")
    uv = adv_eps * amp_mv * 1000.0
    return float(np.median(adv_eps)), float(np.median(uv)) if np.isfinite(amp_mv).all() else float("nan")


def uv_per_unit(amp_mv: np.ndarray) -> tuple[float, float, float]:
    """Microvolts per unit of x over the samples: (min, median, max); NaN without amplitudes."""
    uv = amp_mv[np.isfinite(amp_mv)] * 1000.0
    if not len(uv):
        return float("nan"), float("nan"), float("nan")
    return float(uv.min()), float(np.median(uv)), float(uv.max())
