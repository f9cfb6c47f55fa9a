"""Experiment tracking (MLflow). MLflow calls live here only: its API moves between releases.

The front itself (which trials enter it, the table) is MLflow-free: nsr_tune.results.front; its
files are drawn by nsr_tune.plots.
"""

from __future__ import annotations

from nsr_tune.tracking._models import fetch_model
from nsr_tune.tracking._store import check_store, default_tracking_uri, parse_run_uri
from nsr_tune.tracking._tags import MODEL_ARTIFACT, masking_tags
from nsr_tune.tracking._tracker import StudyTracker, front_view_url, outage_errors

__all__ = [
    "MODEL_ARTIFACT",
    "StudyTracker",
    "check_store",
    "default_tracking_uri",
    "fetch_model",
    "front_view_url",
    "masking_tags",
    "outage_errors",
    "parse_run_uri",
]
