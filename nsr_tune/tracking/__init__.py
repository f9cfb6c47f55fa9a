"""Experiment tracking (MLflow). MLflow calls live here only: its API moves between releases.

The front itself (which trials enter it, the table, the files) is MLflow-free: nsr_tune.front.
"""

from __future__ import annotations

from nsr_tune.tracking.mlflow_tracker import (
    MODEL_ARTIFACT,
    StudyTracker,
    default_tracking_uri,
    fetch_model,
    front_view_url,
    masking_tags,
    outage_errors,
)

__all__ = [
    "MODEL_ARTIFACT",
    "StudyTracker",
    "default_tracking_uri",
    "fetch_model",
    "front_view_url",
    "masking_tags",
    "outage_errors",
]
