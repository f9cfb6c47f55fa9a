"""Bootstrap intervals that resample records (patients), not beats.

Neighbouring beats of one patient are not independent: a model that fails on one patient's
ectopic beats fails on most of them. Resampling beats would treat a few hundred correlated
beats as a few hundred independent trials and give intervals far too narrow, so the unit
resampled here is the record. Pure numpy: per-beat outcomes in, intervals out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nsr_tune.errors import ConfigError
from nsr_tune.metrics import metric_name

__all__ = ["BeatOutcomes", "record_intervals"]


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class BeatOutcomes:
    """What became of each evaluated beat, for intervals that resample records (patients).

    record: (N,) record (patient) of each beat; y: (N,) its class index.
    clean_correct: (N,) bool. survived: (E, N) bool, correct under the protocol's attacks at each
    eps of the evaluation (and at every smaller one).
    """

    record: np.ndarray
    y: np.ndarray
    clean_correct: np.ndarray
    survived: np.ndarray
    # What `y` indexes; by default MIT-BIH's AAMI classes (nsr_tune.data.AAMI_CLASSES).
    classes: tuple[str, ...] = ("N", "S", "V", "F", "Q")
    # The class each sample was given, clean (N,) and under the attacks at each eps (E, N), for
    # F1 intervals; None where there is no single class (multi-label) or it was not kept.
    pred: np.ndarray | None = None
    robust_pred: np.ndarray | None = None

    def to_arrays(self, *, eps: Sequence[float]) -> dict[str, np.ndarray]:
        """Plain arrays for `np.savez` (`nsr-tune evaluate --beats`); `from_arrays` reads them back.

        `eps` labels the rows of `survived` and `robust_pred`."""
        out = {
            "record": np.asarray(self.record).astype(str),
            "y": self.y,
            "clean_correct": self.clean_correct,
            "survived": self.survived,
            "eps": np.asarray(eps, dtype=float),
            "classes": np.asarray(self.classes),
        }
        if self.pred is not None and self.robust_pred is not None:
            out["pred"], out["robust_pred"] = self.pred, self.robust_pred
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> tuple[BeatOutcomes, tuple[float, ...]]:
        """What `to_arrays` wrote (an `np.load`ed .npz, say) -> the outcomes and their eps."""
        pred = arrays["pred"] if "pred" in arrays else None
        robust_pred = arrays["robust_pred"] if "robust_pred" in arrays else None
        beats = cls(
            record=np.asarray(arrays["record"]),
            y=np.asarray(arrays["y"]),
            clean_correct=np.asarray(arrays["clean_correct"], dtype=bool),
            survived=np.asarray(arrays["survived"], dtype=bool),
            classes=tuple(str(c) for c in arrays["classes"]),
            pred=None if pred is None else np.asarray(pred),
            robust_pred=None if robust_pred is None else np.asarray(robust_pred),
        )
        return beats, tuple(float(e) for e in arrays["eps"])


def _per_record(
    r: np.ndarray, y: np.ndarray, hit: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Beats and correct beats per record and class: two (R, C) count tables (`r`: record index)."""
    n_records = int(r.max()) + 1
    beats = np.zeros((n_records, n_classes))
    correct = np.zeros((n_records, n_classes))
    np.add.at(beats, (r, y), 1.0)
    np.add.at(correct, (r, y), hit.astype(float))
    return beats, correct


def _accuracies(
    weights: np.ndarray, beats: np.ndarray, correct: np.ndarray, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and mean recall over `classes` of each resample (rows of `weights`)."""
    n = weights @ beats  # (B, C) beats of each class in each resample
    k = weights @ correct  # (B, C)
    acc = k.sum(axis=1) / n.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(n[:, classes] > 0, k[:, classes] / n[:, classes], np.nan)  # (B, len(classes))
    # A class absent from a resample drops out of its mean, as it does from `mean_recall`.
    present = np.isfinite(recall)
    balanced = np.where(
        present.any(axis=1), np.nansum(recall, axis=1) / np.maximum(present.sum(1), 1), np.nan
    )
    return acc, balanced


def _f1_tables(
    r: np.ndarray, y: np.ndarray, pred: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, false positives and false negatives per record and class: (R, C) each."""
    n_records = int(r.max()) + 1
    tp, fp, fn = (np.zeros((n_records, n_classes)) for _ in range(3))
    hit = pred == y
    np.add.at(tp, (r[hit], y[hit]), 1.0)
    np.add.at(fp, (r[~hit], pred[~hit]), 1.0)
    np.add.at(fn, (r[~hit], y[~hit]), 1.0)
    return tp, fp, fn


def _macro_f1(weights: np.ndarray, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Macro F1 of each resample (rows of `weights`): the mean F1 over the classes it holds."""
    t, p, n = weights @ tp, weights @ fp, weights @ fn  # (B, C)
    support = t + n
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(support > 0, 2 * t / (2 * t + p + n), np.nan)
    present = support > 0
    return np.where(present.any(axis=1), np.nansum(f1, axis=1) / np.maximum(present.sum(1), 1), np.nan)


def record_intervals(
    beats: BeatOutcomes,
    *,
    eps: Sequence[float],
    classes: Sequence[str],
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of clean and robust (balanced) accuracy and macro F1, resampling records.

    Each resample draws as many records as there are, with replacement, and pools their beats.
    Returns metric kind -> (low, high), e.g. `balanced_acc` and `robust_balanced_acc_eps_0.05`,
    for `clean_acc`, `balanced_acc` and, at each eps, `robust_acc` and `robust_balanced_acc`;
    and `macro_f1` and `robust_macro_f1` where the outcomes keep each sample's predicted class.
    Balanced accuracy averages recall over `classes` present in a resample, macro F1 over every
    class present.
    """
    if not isinstance(resamples, int) or isinstance(resamples, bool) or resamples < 1:
        raise ConfigError(f"resamples: must be a whole number >= 1, got {resamples!r}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level: must lie between 0 and 1, such as 0.95, got {level!r}")
    if len(beats.y) == 0:
        raise ConfigError("beats: no beats to resample")
    if beats.survived.shape != (len(eps), len(beats.y)):
        raise ConfigError(f"eps: {len(eps)} levels, but the outcomes hold {beats.survived.shape[0]}")
    every = list(beats.classes)
    unknown = [c for c in classes if c not in every]
    if unknown:
        raise ConfigError(f"classes: unknown class(es) {unknown}; choose from {', '.join(every)}")
    class_idx = np.array([every.index(c) for c in classes], dtype=int)
    _, record_index = np.unique(beats.record, return_inverse=True)
    n_records = int(record_index.max()) + 1
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_records, np.full(n_records, 1.0 / n_records), size=resamples).astype(float)
    q = ((1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0)

    def interval(values: np.ndarray) -> tuple[float, float]:
        values = values[np.isfinite(values)]
        if not len(values):
            return float("nan"), float("nan")
        low, high = np.quantile(values, q)
        return float(low), float(high)

    out: dict[str, tuple[float, float]] = {}
    outcomes = [(None, beats.clean_correct), *zip(eps, beats.survived, strict=True)]
    for e, hit in outcomes:
        counts, correct = _per_record(record_index, beats.y, hit, len(every))
        acc, balanced = _accuracies(weights, counts, correct, class_idx)
        plain, bal = ("clean_acc", "balanced_acc") if e is None else ("robust_acc", "robust_balanced_acc")
        out[metric_name(plain, eps=e)] = interval(acc)
        out[metric_name(bal, eps=e)] = interval(balanced)
    if beats.pred is not None and beats.robust_pred is not None:
        # Macro F1 (the CPSC2018 score), clean and under attack, with the same resamples.
        for e, pred in [(None, beats.pred), *zip(eps, beats.robust_pred, strict=True)]:
            tables = _f1_tables(record_index, beats.y, pred, len(every))
            name = metric_name("macro_f1" if e is None else "robust_macro_f1", eps=e)
            out[name] = interval(_macro_f1(weights, *tables))
    return out
