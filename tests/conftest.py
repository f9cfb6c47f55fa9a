"""Shared fixtures: the real data under ../shared/data, and a private beat cache per session."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

# Every Ray the tests start (local, cluster_utils nodes, tune.py subprocesses) runs with token
# authentication on, as the cluster configs do: a fresh random token per test run. Set before
# any test module imports Ray, which reads these once.
os.environ["RAY_AUTH_MODE"] = "token"
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NSR_TUNE_SHARED_DATA", REPO.parent / "shared" / "data"))
MITDB = SHARED_DATA / "mitdb"


@pytest.fixture(scope="session")
def mitdb_dir() -> Path:
    if not (MITDB / "RECORDS").is_file():
        pytest.fail(f"the real MIT-BIH data is missing: expected {MITDB} (set NSR_TUNE_SHARED_DATA)")
    return MITDB


@pytest.fixture(scope="session")
def kaggle_dir() -> Path:
    return SHARED_DATA / "kaggle_heartbeat_sample"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Each test session gets its own beat cache, so a stale user cache can never hide a bug.
    os.environ["NSR_TUNE_CACHE"] = str(tmp_path_factory.mktemp("beat-cache"))
