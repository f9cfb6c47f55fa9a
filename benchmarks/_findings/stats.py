"""Intervals over seeds and patients: a percentile bootstrap that resamples records.

Several seeds of one recipe are evaluated on beats of the same MIT-BIH records. Each resample
draws the records with replacement (the same draw for every seed), recomputes each seed's
accuracy on the drawn records' beats, and averages over the seeds: the interval is that of the
seed mean, with patients as the unit of sampling (beats of one patient are not independent, see
`nsr_tune.results.bootstrap`) and the seeds' own spread inside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nsr_tune.results.bootstrap import BeatOutcomes

RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A seed-mean figure with its 95% interval and the seeds' own values."""

    value: float
    low: float
    high: float
    seeds: tuple[float, ...]

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "seeds": list(self.seeds)}

    def text(self) -> str:
        return cell(self.as_dict())


def cell(e: Mapping[str, Any]) -> str:
    """An estimate as a table cell, from its JSON form: `0.912 [0.880, 0.941]`."""
    return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def load_outcomes(path: Path) -> tuple[BeatOutcomes, tuple[float, ...]]:
    """An `nsr-tune evaluate --beats` file."""
    with np.load(path) as arrays:
        return BeatOutcomes.from_arrays(dict(arrays))


def _tables(
    beats: BeatOutcomes, hit: np.ndarray, records: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Beats and correct beats per record and class: (R, C) each, rows in `records`' order."""
    r = np.searchsorted(records, np.asarray(beats.record).astype(str))
    n = np.zeros((len(records), n_classes))
    k = np.zeros((len(records), n_classes))
    np.add.at(n, (r, beats.y), 1.0)
    np.add.at(k, (r, beats.y), hit.astype(float))
    return n, k


def seed_mean(
    runs: Sequence[tuple[BeatOutcomes, tuple[float, ...]]],
    *,
    eps: float | None,
    balanced: Sequence[str] = (),
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """Accuracy at `eps` (None: clean) averaged over `runs` (one per seed), with a 95% interval.

    `balanced`: the mean recall over these classes instead of plain accuracy (classes absent from
    a resample drop out of its mean)."""
    records = np.unique(np.concatenate([np.asarray(b.record).astype(str) for b, _ in runs]))
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(records), np.full(len(records), 1 / len(records)), size=resamples)  # (B, R)
    full = np.ones((1, len(records)))
    per_seed, point = [], []
    for beats, levels in runs:
        hit = beats.clean_correct if eps is None else beats.survived[levels.index(eps)]
        n, k = _tables(beats, hit, records, len(beats.classes))
        cols = [beats.classes.index(c) for c in balanced]
        per_seed.append(_score(weights, n, k, cols))
        point.append(float(_score(full, n, k, cols)[0]))
    mean = np.nanmean(np.stack(per_seed), axis=0)  # (B,)
    low, high = np.quantile(mean[np.isfinite(mean)], [0.025, 0.975])
    return Estimate(float(np.mean(point)), float(low), float(high), tuple(point))


def _score(weights: np.ndarray, n: np.ndarray, k: np.ndarray, cols: Sequence[int]) -> np.ndarray:
    """Accuracy (or mean recall over `cols`) of each row of record weights: (B,)."""
    wn, wk = weights @ n, weights @ k  # (B, C)
    if not cols:
        return wk.sum(1) / wn.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(wn[:, cols] > 0, wk[:, cols] / wn[:, cols], np.nan)
    return np.nanmean(recall, axis=1)
