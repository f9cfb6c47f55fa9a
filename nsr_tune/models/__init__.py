"""Model registry: a name maps to a constructor and the knobs it accepts.

A search space names models and their knobs; nothing else needs their classes. A model takes
inputs (B, leads, L) and returns logits (B, classes): the MIT-BIH models take beats
(B, 1, W), W the width of the beat representation (187 or 375, `in_len`); `resnet18` takes
multi-lead records of any length (CPSC2018). Which models a dataset offers is in
nsr_tune.data.DATASETS.

Models from other packages (`model_spec`): an entry point of the group `nsr_tune.models`, or
`package.module:attribute`, holding the ModelPlugin contract (nsr_tune/models/_plugins.py).
"""

from __future__ import annotations

from nsr_tune.models._plugins import ModelPlugin
from nsr_tune.models._registry import (
    MODELS,
    build_model,
    check_model_input,
    check_model_knobs,
    model_spec,
)
from nsr_tune.models._resnet18 import real_mask
from nsr_tune.models._rr import RR_FEATURES, RRFeatures, record_peaks
from nsr_tune.models._spec import ModelSpec
from nsr_tune.models._weight_norm import normalize_units_

__all__ = [
    "MODELS",
    "RR_FEATURES",
    "ModelPlugin",
    "ModelSpec",
    "RRFeatures",
    "build_model",
    "check_model_input",
    "check_model_knobs",
    "model_spec",
    "normalize_units_",
    "real_mask",
    "record_peaks",
]
