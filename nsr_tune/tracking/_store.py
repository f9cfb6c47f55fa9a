"""Where the MLflow store is, and whether it is there: the default URI, and the checks a command
makes before it talks to a store, so that a read-only command never creates one and a server
that is down is named as down within seconds."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

from nsr_tune.errors import ConfigError

__all__ = ["check_store", "default_tracking_uri", "parse_run_uri"]

# MLflow's run ids are 32 hex digits.
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
# Seconds a command waits for a tracking server's /health before it says the server is down.
_PROBE_S = 3.0


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI where it is set (MLflow's own convention), else an embedded SQLite
    store in the working directory (MLflow 3's own default)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///")).expanduser()


def check_store(uri: str, *, must_exist: bool, flag: str = "--mlflow-uri") -> None:
    """Raise ConfigError naming `flag` where the store at `uri` cannot be used: a SQLite file that
    is not there (when `must_exist`: a read-only command must not create one), or a tracking
    server that does not answer its /health within a few seconds."""
    path = _sqlite_path(uri)
    if path is not None:
        if must_exist and not path.is_file():
            raise ConfigError(f"{flag}: there is no MLflow store at {path} (nothing is created by reading)")
        return
    scheme = urlparse(uri).scheme
    if scheme == "file" or (not scheme and not uri.startswith("databricks")):
        raise ConfigError(
            f"{flag}: {uri} is a file store, which MLflow 3 does not offer; use sqlite:///PATH/mlflow.db "
            "or a tracking server's http(s) URL"
        )
    if scheme in ("http", "https"):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=_PROBE_S).raise_for_status()
        except requests.RequestException as e:
            raise ConfigError(
                f"{flag}: the MLflow tracking server at {uri} cannot be reached ({type(e).__name__}); "
                "is it running?"
            ) from e


def parse_run_uri(model_uri: str, *, default_artifact: str) -> tuple[str, str]:
    """(run id, artifact path) of `runs:/RUN_ID[/ARTIFACT_PATH]`, both checked: a run id of 32
    hex digits, and a relative artifact path that stays inside the run."""
    if not model_uri.startswith("runs:/"):
        raise ConfigError(f"{model_uri}: expected runs:/RUN_ID (an MLflow run of an nsr-tune trial)")
    run_id, _, artifact = model_uri.removeprefix("runs:/").strip("/").partition("/")
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"{model_uri}: {run_id!r} is not an MLflow run id (32 hex digits)")
    artifact = artifact or default_artifact
    parts = Path(artifact).parts
    if Path(artifact).is_absolute() or ".." in parts or "\\" in artifact:
        raise ConfigError(f"{model_uri}: the artifact path {artifact!r} leaves the run")
    return run_id, artifact
