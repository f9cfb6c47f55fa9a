"""A trial that crashes on every attempt is retried `max_failures` times, then marked failed
with the reason; the next trial runs as usual and the front is drawn from it alone."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests._helpers import finish, start_tune, study_runs, tiny_space

pytestmark = pytest.mark.slow

SPACE = tiny_space(
    "fails",
    models=("cnn", "mlp"),
    epochs=3,
    batch_size=32,
    max_train_beats=3000,
    num_samples=2,
    max_concurrent=1,
    start_with=[{"model": "cnn"}, {"model": "mlp"}],
    extra={"search": {"max_failures": 1}},
)


def _workers(session: int) -> set[int]:
    """Trial workers of the study whose driver leads ``session``: not another study's on this machine."""
    out = subprocess.run(
        ["pgrep", "-s", str(session), "-f", "ray::ImplicitFunc"], capture_output=True, text=True
    )
    return {int(p) for p in out.stdout.split()}


def test_a_trial_that_always_crashes_ends_failed_and_the_study_goes_on(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver = start_tune(tmp_path, SPACE, name="f", mlflow_uri=uri)
    killed: set[int] = set()
    try:
        deadline = time.monotonic() + 600
        while len(killed) < 2:  # the first attempt and its one retry
            assert driver.poll() is None and time.monotonic() < deadline
            fresh = _workers(driver.pid) - killed  # start_tune gives the driver its own session
            if fresh:
                time.sleep(2)  # let it start training
                for pid in fresh:
                    os.kill(pid, signal.SIGKILL)
                killed |= fresh
            time.sleep(0.2)
    finally:
        out = finish(driver)
    assert driver.returncode == 0, out[-3000:]
    assert "2 trials (1 errored)" in out

    _, _, runs = study_runs(uri, "fails")
    children = {r.data.params["model.name"]: r for r in runs}
    failed, fine = children["cnn"], children["mlp"]
    assert failed.info.status == "FAILED" and failed.data.tags["nsr_tune.state"] == "failed"
    assert failed.data.tags["failure"]  # the reason, in one line
    assert failed.data.tags["pareto_optimal"] == "false" and failed.data.tags["pareto_rank"] == "-1"
    assert fine.info.status == "FINISHED" and fine.data.tags["pareto_optimal"] == "true"
