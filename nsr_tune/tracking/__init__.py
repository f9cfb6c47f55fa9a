"""Experiment tracking (MLflow). MLflow calls live here only: its API moves between releases."""

from __future__ import annotations

from nsr_tune.tracking.mlflow_tracker import (
    STATE_COMPLETE,
    STATE_DIVERGED,
    STATE_FAILED,
    StudyFront,
    StudyTracker,
    default_tracking_uri,
    front_from_record,
    front_table,
    front_view_url,
    outage_errors,
    run_name,
    trial_params,
    write_front_files,
)

__all__ = [
    "STATE_COMPLETE",
    "STATE_DIVERGED",
    "STATE_FAILED",
    "StudyFront",
    "StudyTracker",
    "default_tracking_uri",
    "front_from_record",
    "front_table",
    "front_view_url",
    "outage_errors",
    "run_name",
    "trial_params",
    "write_front_files",
]
