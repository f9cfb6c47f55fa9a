"""Oracle check of `nsr_tune.results.bootstrap.record_intervals` against `scipy.stats.bootstrap`.

`record_intervals` is a hand-written bootstrap: each resample draws as many records (patients) as
there are, with replacement, pools their beats, and the interval is the percentile interval of the
resampled statistic. For pooled accuracy this is exactly scipy's percentile bootstrap of the paired
per-record samples (beats, correct beats) with the statistic sum(correct) / sum(beats): scipy
resamples the records (pairs), the same unit. Both are compared on the record ids and AAMI labels of
real MIT-BIH beats, with a seeded correct/incorrect outcome per beat whose rate varies by record
(a statistics check: no model is needed), for `clean_acc` and `robust_acc` at two eps.

When every record holds the same number of beats, pooled accuracy is the mean of the per-record
accuracies, so `record_intervals` must also agree with scipy's plain one-sample bootstrap of the
mean of those accuracies.

Tolerance. The two sides use different random streams, so their endpoints differ by Monte Carlo
error only. With B resamples the p-quantile estimate has standard error
sqrt(p (1 - p) / B) / f(q_p) (f the density of the bootstrap distribution at the quantile); 1 / f is
estimated from scipy's own bootstrap distribution as the slope of its empirical quantile function,
(Q(p + h) - Q(p - h)) / (2 h). The two estimates are independent, so their difference has standard
error sqrt(2) times that, and each endpoint must agree within 4 of those (a 4-sigma bound, about
1e-4 chance of a false alarm per endpoint). The formula was checked against the spread of each
side's endpoints over 8 seeds (B = 20,000): standard deviations 0.0002 to 0.0010 in accuracy against
an estimated 0.0006 to 0.0008. On the cases below the bounds come to 0.0017 to 0.0055 and the largest
difference measured was 0.0014, half its bound. The bound is also required to be under a tenth of
the interval's width, so that errors of substance cannot pass: resampling beats instead of records
moved the endpoints by 0.06 (16 times the bound), a 0.90 interval for a 0.95 one by 0.011 (2.7 times).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from nsr_tune.data import load_mitbih
from nsr_tune.metrics import metric_name
from nsr_tune.results.bootstrap import BeatOutcomes, record_intervals

# A dozen records with different class mixes (N only, N + S, much V, V + F): enough records for a
# near-continuous bootstrap distribution, few enough to load in a few seconds.
RECORDS = (100, 101, 103, 105, 106, 119, 200, 203, 208, 210, 213, 221)
EPS = (0.05, 0.1)
RESAMPLES = 20_000  # on each side
SIGMAS = 4.0  # the agreement bound, in standard errors of the difference of two endpoints
H = 0.01  # half-step of the finite difference that estimates 1 / f at a quantile
EQUAL_BEATS = 1000  # beats kept per record for the equal-size case (every record here has more)

Statistic = Callable[..., np.ndarray]


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mitbih_labels(mitdb_dir: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Record number and AAMI class index of every beat of RECORDS, and the class names."""
    beats, _ = load_mitbih(mitdb_dir, records=RECORDS, input="kachuee")
    assert set(np.unique(beats.record).tolist()) == set(RECORDS)
    return beats.record.copy(), beats.y.copy(), beats.classes


def outcomes(record: np.ndarray, y: np.ndarray, classes: tuple[str, ...], seed: int) -> BeatOutcomes:
    """Seeded Bernoulli outcomes per beat: clean accuracy varies by record (0.6 to 0.98) and is lower
    on non-N beats; under attack each beat survives with a per-record rate, nested across eps (a beat
    that survives a larger eps survived every smaller one and was correct clean)."""
    rng = np.random.default_rng(seed)
    records, index = np.unique(record, return_inverse=True)
    p_clean = rng.uniform(0.6, 0.98, size=len(records))[index] * np.where(y == 0, 1.0, 0.85)
    clean = rng.random(len(y)) < p_clean
    survived = []
    alive = clean
    for _ in EPS:
        keep = rng.uniform(0.4, 0.95, size=len(records))[index]
        alive = alive & (rng.random(len(y)) < keep)
        survived.append(alive)
    return BeatOutcomes(record=record, y=y, clean_correct=clean, survived=np.array(survived), classes=classes)


def per_record(beats: BeatOutcomes, hit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Beats and correct beats of each record (one entry per record, in record order)."""
    _, index = np.unique(beats.record, return_inverse=True)
    return np.bincount(index).astype(float), np.bincount(index, weights=hit.astype(float))


def hits(beats: BeatOutcomes) -> dict[str, np.ndarray]:
    """The per-beat outcome behind each compared metric, by its name in `record_intervals`' output."""
    out = {metric_name("clean_acc"): beats.clean_correct}
    for e, alive in zip(EPS, beats.survived, strict=True):
        out[metric_name("robust_acc", eps=e)] = alive
    return out


# --------------------------------------------------------------------------------------------------
# the oracle and its Monte Carlo error
# --------------------------------------------------------------------------------------------------


def pooled(n: np.ndarray, k: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pooled accuracy of resampled records: correct beats over beats."""
    return k.sum(axis=axis) / n.sum(axis=axis)


def mean(a: np.ndarray, axis: int = -1) -> np.ndarray:
    return a.mean(axis=axis)


def scipy_interval(
    samples: tuple[np.ndarray, ...], statistic: Statistic, *, level: float, seed: int
) -> tuple[tuple[float, float], np.ndarray]:
    """scipy's percentile interval over records, and its bootstrap distribution."""
    res = stats.bootstrap(
        samples,
        statistic,
        paired=len(samples) > 1,
        vectorized=True,
        method="percentile",
        n_resamples=RESAMPLES,
        confidence_level=level,
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return (float(ci.low), float(ci.high)), np.asarray(res.bootstrap_distribution)


def quantile_se(distribution: np.ndarray, p: float) -> float:
    """Monte Carlo standard error of the p-quantile of RESAMPLES bootstrap values:
    sqrt(p (1 - p) / B) / f(q_p), with 1 / f the slope of the empirical quantile function."""
    slope = (np.quantile(distribution, p + H) - np.quantile(distribution, p - H)) / (2 * H)
    return float(slope * np.sqrt(p * (1 - p) / RESAMPLES))


def assert_agree(
    ours: tuple[float, float], theirs: tuple[float, float], distribution: np.ndarray, level: float
) -> None:
    """Each endpoint within SIGMAS standard errors of the difference of two independent estimates."""
    tail = (1 - level) / 2
    width = theirs[1] - theirs[0]
    for mine, other, p in zip(ours, theirs, (tail, 1 - tail), strict=True):
        bound = SIGMAS * np.sqrt(2) * quantile_se(distribution, p)
        assert 0 < bound < 0.1 * width  # the bound is tight enough to tell intervals apart
        assert abs(mine - other) <= bound, (ours, theirs, bound)


# --------------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "seed"), [(0.95, 0), (0.95, 1), (0.8, 2)])
def test_pooled_accuracy_matches_scipy_paired_bootstrap(
    mitbih_labels: tuple[np.ndarray, np.ndarray, tuple[str, ...]], level: float, seed: int
) -> None:
    beats = outcomes(*mitbih_labels, seed=seed)
    ours = record_intervals(
        beats, eps=EPS, classes=beats.classes, resamples=RESAMPLES, level=level, seed=seed
    )
    for name, hit in hits(beats).items():
        n, k = per_record(beats, hit)
        assert len(n) == len(RECORDS) and n.min() > EQUAL_BEATS
        theirs, distribution = scipy_interval((n, k), pooled, level=level, seed=seed + 1000)
        assert_agree(ours[name], theirs, distribution, level)


@pytest.mark.parametrize("seed", [3, 4])
def test_equal_records_match_scipy_mean_bootstrap(
    mitbih_labels: tuple[np.ndarray, np.ndarray, tuple[str, ...]], seed: int
) -> None:
    # The same number of real beats from every record (drawn without replacement): pooled accuracy
    # of any resample is then the mean of its records' accuracies.
    record, y, classes = mitbih_labels
    rng = np.random.default_rng([seed, 1])
    keep = np.sort(
        np.concatenate(
            [rng.choice(np.flatnonzero(record == r), size=EQUAL_BEATS, replace=False) for r in RECORDS]
        )
    )
    beats = outcomes(record[keep], y[keep], classes, seed=seed)
    level = 0.95
    ours = record_intervals(
        beats, eps=EPS, classes=beats.classes, resamples=RESAMPLES, level=level, seed=seed
    )
    for name, hit in hits(beats).items():
        n, k = per_record(beats, hit)
        np.testing.assert_array_equal(n, np.full(len(RECORDS), float(EQUAL_BEATS)))
        accuracy = k / n
        theirs, distribution = scipy_interval((accuracy,), mean, level=level, seed=seed + 1000)
        assert_agree(ours[name], theirs, distribution, level)
