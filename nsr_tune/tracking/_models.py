"""Trained models in MLflow: each complete trial's model file as an artifact of its run."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nsr_tune.errors import ConfigError
from nsr_tune.tracking._store import check_store, parse_run_uri
from nsr_tune.tracking._tags import MODEL_ARTIFACT, TAG_MODEL

__all__ = ["ModelRuns", "fetch_model"]


class ModelRuns:
    """Logs a trial's model to its run (a mixin of StudyTracker)."""

    # Provided by StudyTracker.
    client: Any

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], *, step: int) -> None: ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None: ...

    def log_model(self, run_id: str, checkpoint: bytes) -> None:
        """A trial's model, from its training checkpoint, as the run's MODEL_ARTIFACT.

        Only the model file is logged (config and weights, no optimizer state), the file that
        `nsr-tune evaluate` and `nsr-tune export` read. It is loaded with weights_only=True, so
        a model taken from a shared tracking server cannot run code when it is opened.
        """
        from nsr_tune.checkpoints import load_model_file, save_model_file

        with tempfile.TemporaryDirectory() as d:
            source = Path(d) / "checkpoint.pt"
            source.write_bytes(checkpoint)
            config, model = load_model_file(source)
            target = save_model_file(
                Path(d) / "model" / Path(MODEL_ARTIFACT).name, config=config, model=model
            )
            self.log_file(run_id, target, str(Path(MODEL_ARTIFACT).parent))
        self.set_tags(run_id, {TAG_MODEL: MODEL_ARTIFACT})


def fetch_model(model_uri: str, *, tracking_uri: str, dest_dir: Path) -> Path:
    """The model file of a run (`runs:/RUN_ID`, or `runs:/RUN_ID/ARTIFACT_PATH`), downloaded.

    The store must exist and answer: fetching a model creates nothing there.
    """
    run_id, artifact = parse_run_uri(model_uri, default_artifact=MODEL_ARTIFACT)
    check_store(tracking_uri, must_exist=True)
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        client.get_run(run_id)
    except MlflowException as e:
        raise ConfigError(f"{model_uri}: no run {run_id} at {tracking_uri} (give --mlflow-uri?)") from e
    folder = str(Path(artifact).parent) if "/" in artifact else None
    names = {a.path for a in client.list_artifacts(run_id, folder)}
    if artifact not in names:
        raise ConfigError(
            f"{model_uri}: the run has no model ({artifact}). Trials log theirs when their study ends; "
            "for a study from before that, run `nsr-tune sync-mlflow STORAGE/NAME` once"
        )
    # One small file: MLflow's download progress bar would only clutter a command's output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return Path(client.download_artifacts(run_id, artifact, str(dest_dir)))
