"""The evaluation protocol as configuration: EvalConfig, the named protocols and their eps grids.

Re-exported by nsr_tune.config; imported from there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from nsr_tune._checks import check as _check
from nsr_tune._checks import choice as _choice
from nsr_tune._checks import finite_number as _finite_number
from nsr_tune._checks import positive_int as _positive_int
from nsr_tune.data._datasets import DATASETS

__all__ = [
    "ATTACKS",
    "ATTACK_LOSSES",
    "FINAL_EVAL",
    "NOISE_KINDS",
    "NORMS",
    "PAPER_EPS",
    "PROTOCOLS",
    "EvalConfig",
    "check_multilabel_eval",
    "protocol",
]

NORMS = ("linf", "l2")
ATTACK_LOSSES = ("worst", "ce", "margin")
# The attacks a protocol may chain (see nsr_tune.evaluation): PGD, APGD with the CE loss,
# APGD-T (targeted DLR), the Square attack (black box), SAP (smooth perturbations) and the
# transfer attack (PGD on a surrogate model, which the evaluation is given).
ATTACKS = ("pgd", "apgd_ce", "apgd_t", "square", "sap", "transfer")
# The noise stress test's kinds of noise: white Gaussian noise, the NSTDB's baseline wander and
# muscle artifact records, and powerline hum at 50 and 60 Hz.
NOISE_KINDS = ("white", "bw", "ma", "powerline_50hz", "powerline_60hz")
# The paper's L-inf noise levels for MIT-BIH, in units of the [0, 1]-normalised beat; each
# dataset has its own (nsr_tune.data.DATASETS), which `protocol(name, dataset=...)` uses.
PAPER_EPS = DATASETS["mitbih"].eps
_ALL_CLASSES = tuple(dict.fromkeys(c for d in DATASETS.values() for c in d.classes))


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol: which beats, which attack, which noise levels.

    Robust accuracy at eps counts a beat as correct only if it is clean-correct and survives
    the attack at every eps up to this one, so the curve never rises with eps.
    """

    eps: tuple[float, ...] = PAPER_EPS
    norm: str = "linf"
    steps: int = 100
    step_size: float | None = None  # None: 2.5 * eps / steps
    restarts: int = 1
    attack_loss: str = "worst"  # the worst case of CE and margin losses
    early_exit: bool = True
    respect_padding: bool = True  # leave the zero padding after a beat unperturbed
    clamp: bool = False  # clamp adversarial beats to [0, 1]
    per_class_cap: int | None = 300  # evaluate on at most this many beats per class (None: all)
    seed: int = 0
    batch_size: int = 512
    # Classes the headline balanced accuracy averages over. None: N, S, V, F for `inter`
    # (as EC57 and de Chazal do: DS2 has about 7 Q beats), all five for `intra`.
    balanced_classes: tuple[str, ...] | None = None
    # The attacks, in the order they run as a cascade: each attacks only the beats that every
    # attack before it left correct (as AutoAttack does); a beat is broken if any attack breaks
    # it. `steps`, `step_size`, `restarts` and `attack_loss` configure `pgd`.
    attacks: tuple[str, ...] = ("pgd",)
    apgd_steps: int = 100  # apgd_ce and apgd_t
    square_queries: int = 1000  # per beat
    sap_steps: int = 100
    # The PGD (CE loss) that `transfer` runs on its surrogate. Few steps: iterates that overfit
    # the surrogate transfer worse (Kurakin et al. 2017; Dong et al. 2018).
    transfer_steps: int = 20
    # Run the checks that flag a masked gradient (nsr_tune.masking) after the cascade.
    check_masking: bool = False
    # Run every attack on every clean-correct beat instead of only on the beats the attacks
    # before it left correct, so that each attack's own robust accuracy is known. The cascade's
    # figures are the same per-beat worst case; the cost is the sum of the attacks run alone.
    each_attack: bool = False
    # Refine each broken beat's smallest breaking eps between grid points by this many
    # bisection steps (with the attack that broke it), for the median adversarial eps.
    bisect_steps: int = 3
    # The noise stress test (real and synthetic noise, not adversarial) at these levels: the RMS
    # of the added noise in microvolts, and the signal-to-noise ratio in dB.
    noise_stress: bool = False
    noise_uv: tuple[float, ...] = (50.0, 100.0, 200.0, 500.0)
    noise_snr_db: tuple[float, ...] = (24.0, 12.0, 6.0, 0.0)

    def __post_init__(self) -> None:
        eps = tuple(float(e) for e in self.eps) if isinstance(self.eps, (list, tuple)) else self.eps
        _check(isinstance(eps, tuple) and len(eps) > 0, "eps", "must be a non-empty list of noise levels")
        for e in eps:
            _finite_number(e, "eps", low=0.0, low_open=True)
        _check(len(set(eps)) == len(eps), "eps", f"has repeated values: {list(eps)}")
        object.__setattr__(self, "eps", tuple(sorted(eps)))
        _choice(self.norm, "norm", NORMS)
        _positive_int(self.steps, "steps")
        if self.step_size is not None:
            _finite_number(self.step_size, "step_size", low=0.0, low_open=True)
        _positive_int(self.restarts, "restarts")
        _choice(self.attack_loss, "attack_loss", ATTACK_LOSSES)
        _positive_int(self.per_class_cap, "per_class_cap", allow_none=True)
        _positive_int(self.batch_size, "eval batch_size")
        if self.balanced_classes is not None:
            object.__setattr__(self, "balanced_classes", tuple(self.balanced_classes))
            for c in self.balanced_classes:
                _choice(c, "balanced_classes", _ALL_CLASSES)
            _check(len(self.balanced_classes) > 0, "balanced_classes", "must name at least one class")
        attacks = tuple(self.attacks) if isinstance(self.attacks, (list, tuple)) else self.attacks
        _check(isinstance(attacks, tuple) and len(attacks) > 0, "attacks", "must name at least one attack")
        for a in attacks:
            _choice(a, "attacks", ATTACKS)
        _check(len(set(attacks)) == len(attacks), "attacks", f"names an attack twice: {list(attacks)}")
        _check(
            "square" not in attacks or self.norm == "linf",
            "attacks",
            "square runs under the L-inf norm only; drop it for norm l2",
        )
        object.__setattr__(self, "attacks", attacks)
        for name in ("apgd_steps", "square_queries", "sap_steps", "transfer_steps"):
            _positive_int(getattr(self, name), name)
        for name in ("check_masking", "each_attack", "noise_stress"):
            _check(isinstance(getattr(self, name), bool), name, "must be true or false")
        _check(
            isinstance(self.bisect_steps, int)
            and not isinstance(self.bisect_steps, bool)
            and self.bisect_steps >= 0,
            "bisect_steps",
            f"must be a whole number >= 0, got {self.bisect_steps!r}",
        )
        uv = tuple(self.noise_uv) if isinstance(self.noise_uv, (list, tuple)) else self.noise_uv
        _check(isinstance(uv, tuple), "noise_uv", "must be a list of levels in microvolts")
        for v in uv:
            _finite_number(v, "noise_uv", low=0.0, low_open=True)
        object.__setattr__(self, "noise_uv", tuple(float(v) for v in uv))
        snr = tuple(self.noise_snr_db) if isinstance(self.noise_snr_db, (list, tuple)) else self.noise_snr_db
        _check(isinstance(snr, tuple), "noise_snr_db", "must be a list of signal-to-noise ratios in dB")
        for v in snr:
            _finite_number(v, "noise_snr_db")
        object.__setattr__(self, "noise_snr_db", tuple(float(v) for v in snr))


# The named evaluation protocols, shared by the CLI, the Python API and the search spaces.
# `quick` is what a study scores every trial with on validation beats; `standard` is the
# held-out report of a model (the paper's eps list, PGD-100, 300 beats per class); `strong`
# chains gradient-based, black-box, smooth and transfer attacks on the same beats, so that a
# masked gradient cannot pass for robustness, checks for signs of masking, and runs the noise
# stress test.
PROTOCOLS: Mapping[str, EvalConfig] = MappingProxyType(
    {
        "quick": EvalConfig(eps=(0.01, 0.05, 0.1), steps=20, per_class_cap=150, bisect_steps=0),
        "standard": EvalConfig(),
        "strong": EvalConfig(
            attacks=("apgd_ce", "apgd_t", "square", "sap", "transfer"), check_masking=True, noise_stress=True
        ),
    }
)


# What a study's finalists are evaluated with by default: the strong protocol, on more test beats
# than the search's quick attack saw (a class with fewer beats is taken whole).
FINAL_EVAL = dataclasses.replace(PROTOCOLS["strong"], per_class_cap=1000)


def check_multilabel_eval(config: EvalConfig, name: str = "evaluation") -> None:
    """A multi-label model is attacked with PGD on the BCE loss; the other attacks, the masking
    checks and the noise stress test are defined for one label per sample."""
    _check(
        config.attacks == ("pgd",),
        f"{name}.attacks",
        f"multi-label models run the pgd attack only (on the BCE loss), got {list(config.attacks)}",
    )
    for flag in ("check_masking", "each_attack", "noise_stress"):
        _check(not getattr(config, flag), f"{name}.{flag}", "is not available for multi-label models")


def protocol(name: str, dataset: str = "mitbih", **overrides: Any) -> EvalConfig:
    """The protocol called `name` for `dataset`, with some of its fields replaced (each checked
    as usual). Without an `eps` override it runs at the dataset's own grid."""
    _choice(name, "protocol", tuple(PROTOCOLS))
    _choice(dataset, "dataset", tuple(DATASETS))
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    unknown = sorted(set(overrides) - fields)
    _check(not unknown, "evaluation", f"unknown setting(s) {', '.join(unknown)}")
    if "eps" not in overrides:
        spec = DATASETS[dataset]
        overrides["eps"] = spec.quick_eps if name == "quick" else spec.eps
    return dataclasses.replace(PROTOCOLS[name], **overrides)
