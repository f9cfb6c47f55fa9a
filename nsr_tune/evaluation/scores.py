"""Summary statistics of predictions, as pure numpy: per-class metrics, balanced accuracy, F1,
the robust AUC, the per-class cap of an evaluated subset, and the two ways a sample is scored.

A sample has one class (MIT-BIH beats, single-label CPSC2018 records: `SingleLabel`) or a label
set (multi-label records: `LabelSets`). Both score predictions through the same methods, so an
evaluation of either is assembled in one place (nsr_tune.evaluation.result.assemble).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nsr_tune.data import AAMI_CLASSES

__all__ = [
    "ClassMetrics",
    "LabelSets",
    "Scorer",
    "SingleLabel",
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


def _metrics(tp: int, support: int, predicted: int) -> ClassMetrics:
    return ClassMetrics(
        sensitivity=tp / support if support else float("nan"),
        precision=tp / predicted if predicted else float("nan"),
        support=support,
        f1=2 * tp / (support + predicted) if support else float("nan"),
    )


def per_class(
    pred: np.ndarray, y: np.ndarray, classes: Sequence[str] = AAMI_CLASSES
) -> dict[str, ClassMetrics]:
    """Sensitivity, precision, F1 and support of every class (NaN where undefined)."""
    return {
        c: _metrics(int(((pred == i) & (y == i)).sum()), int((y == i).sum()), int((pred == i).sum()))
        for i, c in enumerate(classes)
    }


def macro_f1(pred: np.ndarray, y: np.ndarray, classes: Sequence[str] = AAMI_CLASSES) -> float:
    """Mean F1 over the classes that have samples (the CPSC2018 challenge's score); NaN if none."""
    return _mean_f1(per_class(pred, y, classes))


def _mean_f1(metrics: Mapping[str, ClassMetrics]) -> float:
    scores = [m.f1 for m in metrics.values() if m.support]
    return float(np.mean(scores)) if scores else float("nan")


def per_label(pred: np.ndarray, targets: np.ndarray, classes: Sequence[str]) -> dict[str, ClassMetrics]:
    """Per-class metrics of label sets: pred and targets (N, K) bool, one column per class; a
    class's F1 counts the samples that carry it and those predicted to (NaN where none carry it)."""
    return {
        c: _metrics(int((pred[:, i] & targets[:, i]).sum()), int(targets[:, i].sum()), int(pred[:, i].sum()))
        for i, c in enumerate(classes)
    }


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


@dataclass(frozen=True, eq=False)
class SingleLabel:
    """Samples of one class each: y (N,) indexes `classes`; a prediction is a class index (N,)."""

    y: np.ndarray
    classes: tuple[str, ...]
    balanced: tuple[str, ...]  # the classes the balanced accuracy averages over
    keeps_classes = True  # a prediction is one class, kept per beat for F1 intervals

    def correct(self, pred: np.ndarray) -> np.ndarray:
        return pred == self.y

    def balanced_acc(self, pred: np.ndarray, correct: np.ndarray) -> float:
        """Mean recall over the balanced classes; `correct` says which samples count as right (under
        attack: those that survived, whatever the class they were pushed into)."""
        return mean_recall(correct, self.y, self.balanced, self.classes)

    def macro_f1(self, pred: np.ndarray) -> float:
        return macro_f1(pred, self.y, self.classes)

    def per_class(self, pred: np.ndarray) -> dict[str, ClassMetrics]:
        return per_class(pred, self.y, self.classes)

    def members(self) -> np.ndarray:
        """(N, K) bool: the class each sample belongs to."""
        return self.y[:, None] == np.arange(len(self.classes))[None, :]


@dataclass(frozen=True, eq=False)
class LabelSets:
    """Samples with label sets: truth (N, K) bool; a prediction is a label set (N, K). A sample is
    right when its whole set is; per-class metrics are taken over label columns."""

    truth: np.ndarray
    y: np.ndarray  # (N,) a class index per sample (its first label), for intervals by record
    classes: tuple[str, ...]
    balanced: tuple[str, ...]
    keeps_classes = False  # a label set has no single class

    def correct(self, pred: np.ndarray) -> np.ndarray:
        return (pred == self.truth).all(axis=1)

    def balanced_acc(self, pred: np.ndarray, correct: np.ndarray) -> float:
        """Mean per-class sensitivity over the balanced classes present, from the predicted sets."""
        metrics = per_label(pred, self.truth, self.classes)
        sens = [metrics[c].sensitivity for c in self.balanced if metrics[c].support]
        return float(np.mean(sens)) if sens else float("nan")

    def macro_f1(self, pred: np.ndarray) -> float:
        return _mean_f1(per_label(pred, self.truth, self.classes))

    def per_class(self, pred: np.ndarray) -> dict[str, ClassMetrics]:
        return per_label(pred, self.truth, self.classes)

    def members(self) -> np.ndarray:
        return self.truth


Scorer = SingleLabel | LabelSets
