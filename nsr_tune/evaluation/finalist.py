"""One finalist of a study, evaluated again: the final protocol on the test split, with intervals
that resample test records (patients), as a FinalResult (nsr_tune.results.finalists)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from nsr_tune.data import BeatSet, RecordSet
from nsr_tune.evaluation.run import evaluate
from nsr_tune.metrics import on_part
from nsr_tune.protocol import FinalConfig
from nsr_tune.results.bootstrap import record_intervals
from nsr_tune.results.finalists import FinalResult

__all__ = ["evaluate_finalist"]


def evaluate_finalist(
    model: nn.Module,
    beats: BeatSet | RecordSet,
    *,
    trial_id: str,
    config: FinalConfig,
    split: str,
    surrogate: nn.Module | None = None,
    surrogate_id: str = "",
    nstdb: Mapping[str, np.ndarray] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> FinalResult:
    """Evaluate one finalist under `config.evaluation`, with intervals resampled by record."""
    result = evaluate(
        model,
        beats,
        config=config.evaluation,
        split=split,
        device=device,
        progress=progress,
        surrogate=surrogate,
        nstdb=nstdb,
        keep_beats=True,
    )
    metrics = result.flat_metrics("final")
    outcomes = result.beats
    if outcomes is None:  # keep_beats=True above
        raise RuntimeError("evaluate kept no per-beat outcomes for the finalist's intervals")
    if config.bootstrap:
        intervals = record_intervals(
            outcomes,
            eps=result.eps,
            classes=result.balanced_classes,
            resamples=config.bootstrap,
            level=config.ci,
            seed=config.evaluation.seed,
        )
        for kind, (low, high) in intervals.items():
            name = on_part(kind, "final")
            metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = low, high
    return FinalResult(
        trial_id=trial_id,
        settings=config.fingerprint(),
        surrogate=surrogate_id if surrogate is not None else "",
        metrics=metrics,
        flags=dict(result.flags),
        skipped=dict(result.skipped),
        evaluation=result.to_dict(),
        n_beats=result.n,
        n_records=len(np.unique(outcomes.record)),
    )
