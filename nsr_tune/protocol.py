"""The named evaluation protocols, each at a dataset's own eps grid, and a study's final stage.

`quick` is what a study scores every trial with on validation beats; `standard` is the held-out
report of a model (the paper's eps list, PGD-100, 300 beats per class); `strong` chains
gradient-based, black-box, smooth and transfer attacks on the same beats, so that a masked
gradient cannot pass for robustness, checks for signs of masking, and runs the noise stress
test. `FinalConfig` says how a study's finalists are evaluated again. The protocols are shared
by the CLI, the Python API and the search spaces.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from nsr_tune._checks import check, choice, finite_number, positive_int
from nsr_tune.config import EvalConfig, build, plain
from nsr_tune.data import dataset_spec

__all__ = ["FINAL_EVAL", "PROTOCOLS", "FinalConfig", "protocol"]

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


def protocol(name: str, dataset: str = "mitbih", **overrides: Any) -> EvalConfig:
    """The protocol called `name` for `dataset`, with some of its fields replaced (each checked
    as usual). Without an `eps` override it runs at the dataset's own grid."""
    choice(name, "protocol", tuple(PROTOCOLS))
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    unknown = sorted(set(overrides) - fields)
    check(not unknown, "evaluation", f"unknown setting(s) {', '.join(unknown)}")
    spec = dataset_spec(dataset)
    unknown_classes = [c for c in overrides.get("balanced_classes") or () if c not in spec.classes]
    check(
        not unknown_classes,
        "balanced_classes",
        f"{unknown_classes} are not classes of {dataset} ({', '.join(spec.classes)})",
    )
    if "eps" not in overrides:
        overrides["eps"] = spec.quick_eps if name == "quick" else spec.eps
    return dataclasses.replace(PROTOCOLS[name], **overrides)


@dataclass(frozen=True)
class FinalConfig:
    """A study's second stage: its finalists, evaluated again on the test split.

    The finalists are the trials of validation Pareto rank below `top_ranks` (2: the front and
    the rank behind it). `bootstrap` resamples of the test records give each final metric a
    `ci`-level interval (0: no intervals).
    """

    evaluation: EvalConfig = FINAL_EVAL
    top_ranks: int = 2
    bootstrap: int = 1000
    ci: float = 0.95

    def __post_init__(self) -> None:
        check(isinstance(self.evaluation, EvalConfig), "evaluation", "must be an EvalConfig")
        positive_int(self.top_ranks, "top_ranks")
        check(
            isinstance(self.bootstrap, int) and not isinstance(self.bootstrap, bool) and self.bootstrap >= 0,
            "bootstrap",
            f"must be a whole number of resamples >= 0, got {self.bootstrap!r}",
        )
        finite_number(self.ci, "ci", low=0.0, low_open=True)
        check(self.ci < 1.0, "ci", f"must be a level below 1, such as 0.95, got {self.ci!r}")

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinalConfig:
        kwargs = dict(data)
        if "evaluation" in kwargs:
            kwargs["evaluation"] = build(EvalConfig, kwargs["evaluation"])
        return build(cls, kwargs)

    def fingerprint(self) -> str:
        """A short hash of these settings: final results are kept per setting."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
