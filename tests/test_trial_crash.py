"""A trial whose worker process dies (as under the OOM killer) is retried from its checkpoint.

The study runs as a real `python tune.py` process; the test kills the trial's Ray worker with
SIGKILL after its first epoch and checks that the trial continues after that epoch on a new
worker, that the study finishes, and that MLflow holds one unbroken history for the trial.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from tests._helpers import finish, start_tune, study_runs, tiny_space, wait_for_first_report

pytestmark = pytest.mark.slow

SPACE = tiny_space(
    "crash",
    epochs=4,
    batch_size=32,
    max_train_beats=3000,
    num_samples=1,
    max_concurrent=1,
    extra={"search": {"max_failures": 2}},
)


def _worker_pids(session: int) -> list[int]:
    """Trial workers of the study whose driver leads ``session``: not another study's on this machine."""
    out = subprocess.run(
        ["pgrep", "-s", str(session), "-f", "ray::ImplicitFunc"], capture_output=True, text=True
    )
    return [int(p) for p in out.stdout.split()]


def test_a_killed_trial_worker_is_retried_from_its_checkpoint(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver = start_tune(tmp_path, SPACE, name="c", mlflow_uri=uri)
    results = tmp_path / "ray" / "c"
    try:
        wait_for_first_report(results, driver)
        pids = _worker_pids(driver.pid)  # start_tune gives the driver a session of its own
        assert pids, "no trial worker found"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    finally:
        out = finish(driver)
    assert driver.returncode == 0, out[-3000:]
    assert "1 trials (0 errored)" in out

    (result,) = results.glob("trial_*/result.json")
    epochs = [json.loads(line)["epoch"] for line in result.read_text().splitlines() if line.strip()]
    assert epochs[-1] == 4 and epochs[0] == 1
    state = json.loads(sorted(results.glob("experiment_state-*.json"))[-1].read_text())
    runtime = json.loads(state["trial_data"][0][1])
    assert runtime["num_failures"] == 1  # it failed once and was retried, not restarted from scratch
    assert epochs == sorted(set(epochs)) or len(epochs) - len(set(epochs)) <= 1

    client, _, (child,) = study_runs(uri, "crash")
    assert child.info.status == "FINISHED" and child.data.tags["nsr_tune.state"] == "complete"
    assert [m.step for m in client.get_metric_history(child.info.run_id, "train_loss")] == [1, 2, 3, 4]
