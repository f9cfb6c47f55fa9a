"""What an evaluation returns, as plain data, and the one place it is assembled.

`nsr_tune.evaluation.run` (one label per sample) and `nsr_tune.evaluation.multilabel` (label
sets) run their attacks and hand the per-eps outcomes to `assemble`, which derives every figure
of an `EvalResult` from them the same way: accuracies, balanced accuracy and F1, the robust AUC,
the per-class curves, the microvolt scale and, when asked, each beat's outcome for intervals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from nsr_tune.evaluation.scores import ClassMetrics, Scorer, robust_auc, uv_per_unit
from nsr_tune.metrics import CURVE_KINDS, SCALAR_KINDS, eps_key, metric_name
from nsr_tune.results.bootstrap import BeatOutcomes

__all__ = ["EvalResult", "Outcomes", "assemble"]


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
    # nsr_tune.evaluation.masking. Empty when the protocol runs no checks or none fired.
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


@dataclass(frozen=True, eq=False)
class Outcomes:
    """What an evaluation's attacks found, per eps, before any figure is taken from it.

    pred: the clean prediction of each sample (a class (N,) or a label set (N, K)).
    survivors[eps]: (N,) bool, right under every attack at this eps and every smaller one.
    robust_pred[eps]: what each sample is predicted as under attack: its true class or set while
    it survives, then what the attack pushed it into (for robust F1).
    noise_acc[eps]: accuracy under random noise of the same size.
    """

    pred: np.ndarray
    survivors: Mapping[float, np.ndarray]
    robust_pred: Mapping[float, np.ndarray]
    noise_acc: Mapping[float, float]


def _eps_uv(eps: float, amp_mv: np.ndarray) -> float:
    """The median over the samples of eps in microvolts (NaN where they carry no amplitude)."""
    amp = amp_mv[np.isfinite(amp_mv)]
    return float(np.median(eps * amp * 1000.0)) if len(amp) else float("nan")


def assemble(
    outcomes: Outcomes,
    *,
    scorer: Scorer,
    eps: Sequence[float],
    norm: str,
    record: np.ndarray,
    amp_mv: np.ndarray,
    attack: str,
    seconds: float,
    keep_beats: bool,
    **extra: Any,
) -> EvalResult:
    """The EvalResult of `outcomes` on samples of `record`s with `amp_mv` millivolts per unit.

    `extra` holds the fields only one kind of evaluation fills (the cascade's per-attack
    accuracies, the masking flags, the noise stress test, what was skipped, timings).
    """
    eps = tuple(eps)
    clean_correct = scorer.correct(outcomes.pred)
    clean_acc = float(clean_correct.mean())
    balanced = scorer.balanced_acc(outcomes.pred, clean_correct)
    robust = {e: float(outcomes.survivors[e].mean()) for e in eps}
    robust_bal = {e: scorer.balanced_acc(outcomes.robust_pred[e], outcomes.survivors[e]) for e in eps}
    members = scorer.members()  # (N, K)
    by_class = {
        c: {e: float(outcomes.survivors[e][members[:, i]].mean()) for e in eps}
        for i, c in enumerate(scorer.classes)
        if members[:, i].any()
    }
    beats = None
    if keep_beats:
        single = scorer.keeps_classes
        beats = BeatOutcomes(
            record=record.copy(),
            y=scorer.y.copy(),
            clean_correct=clean_correct,
            survived=np.stack([outcomes.survivors[e] for e in eps]),  # (E, N)
            classes=tuple(scorer.classes),
            pred=outcomes.pred.copy() if single else None,
            robust_pred=np.stack([outcomes.robust_pred[e] for e in eps]) if single else None,
        )
    return EvalResult(
        n=len(clean_correct),
        clean_acc=clean_acc,
        balanced_acc=balanced,
        balanced_classes=tuple(scorer.balanced),
        per_class=scorer.per_class(outcomes.pred),
        macro_f1=scorer.macro_f1(outcomes.pred),
        uv_per_unit=uv_per_unit(amp_mv),
        eps=eps,
        norm=norm,
        robust_acc=robust,
        robust_balanced_acc=robust_bal,
        robust_macro_f1={e: scorer.macro_f1(outcomes.robust_pred[e]) for e in eps},
        noise_acc=dict(outcomes.noise_acc),
        eps_uv={e: _eps_uv(e, amp_mv) for e in eps},
        robust_auc=robust_auc(eps, clean_acc, [robust[e] for e in eps]),
        robust_balanced_auc=robust_auc(eps, balanced, [robust_bal[e] for e in eps]),
        robust_acc_by_class=by_class,
        attack=attack,
        seconds=seconds,
        beats=beats,
        **extra,
    )
