"""The objectives' own configuration: their names, which of them take a weight, their fields.

It lives with the objectives (not in nsr_tune.config) so that the dependency runs one way:
nsr_tune.config re-exports `ObjectiveConfig`, and no objective imports nsr_tune.config.
"""

from __future__ import annotations

from dataclasses import dataclass

from nsr_tune._checks import choice, finite_number, positive_int

__all__ = ["OBJECTIVE_FIELDS", "OBJECTIVE_NAMES", "WEIGHTED", "ObjectiveConfig"]

# Losses with a regulariser weighed by `beta`; the others ignore it.
WEIGHTED: tuple[str, ...] = ("nsr", "nsr_ce", "jacobian")
# `bce`: binary cross-entropy on label sets, for multi-label data (sigmoid outputs).
# `mse` and `mse_margin`: the paper's ablations, its loss without the NSR term (mse_margin is
# `nsr` at beta 0, without computing the term); `focal`: focal cross-entropy for imbalance.
OBJECTIVE_NAMES: tuple[str, ...] = ("ce", *WEIGHTED, "pgd_at", "bce", "mse", "mse_margin", "focal")
# The fields a search space may set per loss (`beta` only for the weighted ones).
OBJECTIVE_FIELDS: tuple[str, ...] = ("beta", "nsr_eps", "at_eps", "at_steps", "focal_gamma")


@dataclass(frozen=True)
class ObjectiveConfig:
    """The training loss. `beta` weighs the regulariser (ignored by `ce` and `pgd_at`)."""

    name: str = "ce"
    beta: float = 0.0
    nsr_eps: float = 1.0  # the eps inside the NSR term; the paper uses 1
    at_eps: float = 0.05  # PGD adversarial training (`pgd_at`): L-inf budget
    at_steps: int = 10
    # `focal`: the factor (1 - p_y)^gamma that shrinks the loss of beats already classified well,
    # so the rare classes' hard beats weigh more (Lin et al. 2017); 0 gives plain CE.
    focal_gamma: float = 2.0

    def __post_init__(self) -> None:
        choice(self.name, "objective", OBJECTIVE_NAMES)
        finite_number(self.beta, "beta", low=0.0)
        finite_number(self.nsr_eps, "nsr_eps", low=0.0, low_open=True)
        finite_number(self.at_eps, "at_eps", low=0.0, low_open=True)
        positive_int(self.at_steps, "at_steps")
        finite_number(self.focal_gamma, "focal_gamma", low=0.0)

    @property
    def weighted(self) -> bool:
        return self.name in WEIGHTED
