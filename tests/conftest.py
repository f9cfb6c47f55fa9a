"""Shared fixtures: the real data under ../shared/data, the Kaggle-format beats as tensors, the
two-class model the attack tests share, and a private beat cache per session.

A test that trains (takes an optimiser step, itself or through a fixture it is the first to
need) or runs a study must carry the `slow` mark: `pytest -m "not slow"` is the quick check.
The first is enforced here: an optimiser step in an unmarked test fails it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from tests._helpers import kaggle_beats, linear_model, train_quick

# Every Ray the tests start (local, cluster_utils nodes, tune.py subprocesses) runs with token
# authentication on, as the cluster configs do: a fresh random token per test run. Set before
# any test module imports Ray, which reads these once.
os.environ["RAY_AUTH_MODE"] = "token"
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NSR_TUNE_SHARED_DATA", REPO.parent / "shared" / "data"))
MITDB = SHARED_DATA / "mitdb"


def _refuse_training(nodeid: str):
    def hook(optimizer, args, kwargs):
        raise RuntimeError(
            f"{nodeid} trains a model ({type(optimizer).__name__}.step): a test that trains, itself or "
            "through a fixture, is marked @pytest.mark.slow"
        )

    return hook


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    handle = None
    if item.get_closest_marker("slow") is None:
        handle = register_optimizer_step_pre_hook(_refuse_training(item.nodeid))
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()


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


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: attacks that run thousands of forwards on tiny tensors
    (Square) only wait on more threads, and on a loaded machine (CI, other workers) they made
    those tests ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def beats(kaggle_dir: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 500 real beats of the Kaggle-format training sample: x (B, 1, 187), y (B,), lengths (B,)."""
    return kaggle_beats(kaggle_dir / "mitbih_train_sample.csv")


@pytest.fixture(scope="session")
def two_class(beats):
    """N (0) against V (1) beats of the sample, and a linear model trained on them a little (any
    accuracy: tests that need a good model train their own)."""
    keep = (beats[1] == 0) | (beats[1] == 2)
    x, y, lengths = beats[0][keep], (beats[1][keep] == 2).long(), beats[2][keep]
    return x, y, lengths, train_quick(linear_model(seed=0, classes=2), x, y, epochs=20)
