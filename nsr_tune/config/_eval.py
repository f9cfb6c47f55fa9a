"""How a trial is evaluated: the attacks, noise levels and beats of a protocol (EvalConfig).

The named protocols built from it are in nsr_tune.protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

from nsr_tune._checks import check, choice, finite_number, levels, positive_int, sequence, whole_number

__all__ = [
    "ATTACKS",
    "ATTACK_LOSSES",
    "NOISE_KINDS",
    "NORMS",
    "PAPER_EPS",
    "EvalConfig",
    "check_multilabel_eval",
]

NORMS = ("linf", "l2")
ATTACK_LOSSES = ("worst", "ce", "margin")
# The attacks a protocol may chain (see nsr_tune.evaluation.cascade): PGD, APGD with the CE
# loss, APGD-T (targeted DLR), the Square attack (black box), SAP (smooth perturbations) and the
# transfer attack (PGD on a surrogate model, which the evaluation is given).
ATTACKS = ("pgd", "apgd_ce", "apgd_t", "square", "sap", "transfer")
# The noise stress test's kinds of noise: white Gaussian noise, the NSTDB's baseline wander and
# muscle artifact records, and powerline hum at 50 and 60 Hz.
NOISE_KINDS = ("white", "bw", "ma", "powerline_50hz", "powerline_60hz")
# The paper's L-inf noise levels for MIT-BIH, in units of the [0, 1]-normalised beat; each
# dataset has its own (nsr_tune.data.DATASETS), which `nsr_tune.protocol.protocol` uses.
PAPER_EPS: tuple[float, ...] = (0.01, 0.03, 0.05, 0.1, 0.2, 0.3)


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol: which beats, which attack, which noise levels.

    Robust accuracy at eps counts a beat as correct only if it is clean-correct and survives
    the attack at every eps up to this one, so the curve never rises with eps. Sequences (eps,
    attacks, noise levels, classes) may be given as lists or tuples: they are held as tuples,
    eps as sorted floats, from the YAML or the command line all the way to the attack.
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
    # Run the checks that flag a masked gradient (nsr_tune.evaluation.masking) after the cascade.
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
        self._check_eps()
        choice(self.norm, "norm", NORMS)
        positive_int(self.steps, "steps")
        if self.step_size is not None:
            finite_number(self.step_size, "step_size", low=0.0, low_open=True)
        positive_int(self.restarts, "restarts")
        choice(self.attack_loss, "attack_loss", ATTACK_LOSSES)
        positive_int(self.per_class_cap, "per_class_cap", allow_none=True)
        positive_int(self.batch_size, "eval batch_size")
        if self.balanced_classes is not None:
            classes = sequence(self.balanced_classes, "balanced_classes", "class names")
            check(len(classes) > 0, "balanced_classes", "must name at least one class")
            check(all(isinstance(c, str) for c in classes), "balanced_classes", "must be class names")
            object.__setattr__(self, "balanced_classes", classes)
        self._check_attacks()
        for name in ("apgd_steps", "square_queries", "sap_steps", "transfer_steps"):
            positive_int(getattr(self, name), name)
        for name in ("check_masking", "each_attack", "noise_stress"):
            check(isinstance(getattr(self, name), bool), name, "must be true or false")
        whole_number(self.bisect_steps, "bisect_steps")
        object.__setattr__(self, "noise_uv", levels(self.noise_uv, "noise_uv", "levels in microvolts"))
        object.__setattr__(
            self,
            "noise_snr_db",
            levels(self.noise_snr_db, "noise_snr_db", "signal-to-noise ratios in dB", positive=False),
        )

    def _check_eps(self) -> None:
        check(
            isinstance(self.eps, (list, tuple)) and len(self.eps) > 0,
            "eps",
            "must be a non-empty list of noise levels",
        )
        eps = levels(self.eps, "eps", "noise levels")
        check(len(set(eps)) == len(eps), "eps", f"has repeated values: {list(eps)}")
        object.__setattr__(self, "eps", tuple(sorted(eps)))

    def _check_attacks(self) -> None:
        attacks = sequence(self.attacks, "attacks", "attack names")
        check(len(attacks) > 0, "attacks", "must name at least one attack")
        for a in attacks:
            choice(a, "attacks", ATTACKS)
        check(len(set(attacks)) == len(attacks), "attacks", f"names an attack twice: {list(attacks)}")
        check(
            "square" not in attacks or self.norm == "linf",
            "attacks",
            "square runs under the L-inf norm only; drop it for norm l2",
        )
        object.__setattr__(self, "attacks", attacks)


def check_multilabel_eval(config: EvalConfig, name: str = "evaluation") -> None:
    """A multi-label model is attacked with PGD on the BCE loss; the other attacks, the masking
    checks and the noise stress test are defined for one label per sample."""
    check(
        config.attacks == ("pgd",),
        f"{name}.attacks",
        f"multi-label models run the pgd attack only (on the BCE loss), got {list(config.attacks)}",
    )
    for flag in ("check_masking", "each_attack", "noise_stress"):
        check(not getattr(config, flag), f"{name}.{flag}", "is not available for multi-label models")
