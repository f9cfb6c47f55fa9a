"""A trial that crashes on every attempt is retried `max_failures` times, then marked failed
with the reason; the next trial runs as usual and the front is drawn from it alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

SPACE = """
name: fails
data: {split: inter, max_train_beats: 3000}
model: {families: {cnn: {}, mlp: {}}}
objective: {choices: {ce: {}}}
optim: {epochs: 3, batch_size: 32}
evaluation:
  search: {eps: [0.01, 0.05], steps: 2, per_class_cap: 5}
  test: {eps: [0.01, 0.05], steps: 2, per_class_cap: 5}
search:
  sampler: random
  num_samples: 2
  max_concurrent: 1
  max_failures: 1
  start_with: [{model: cnn}, {model: mlp}]
resources: {cpu: 1, gpu: 0}
"""


def _workers() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "ray::ImplicitFunc"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def test_a_trial_that_always_crashes_ends_failed_and_the_study_goes_on(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [
        sys.executable,
        str(REPO / "tune.py"),
        "--space",
        str(space),
        "--name",
        "f",
        "--data-dir",
        "bundled",
    ]
    cmd += ["--storage", str(tmp_path / "ray"), "--mlflow-uri", uri, "--local-cpus", "2"]
    driver = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env={**os.environ, "RAY_ADDRESS": "local"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    killed: set[int] = set()
    try:
        deadline = time.monotonic() + 600
        while len(killed) < 2:  # the first attempt and its one retry
            assert driver.poll() is None and time.monotonic() < deadline
            fresh = _workers() - killed
            if fresh:
                time.sleep(2)  # let it start training
                for pid in fresh:
                    os.kill(pid, signal.SIGKILL)
                killed |= fresh
            time.sleep(0.2)
        out, _ = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, out[-3000:]
    assert "2 trials (1 errored)" in out

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("fails").experiment_id])
    children = {r.data.params["model.name"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    failed, fine = children["cnn"], children["mlp"]
    assert failed.info.status == "FAILED" and failed.data.tags["nsr_tune.state"] == "failed"
    assert failed.data.tags["failure"]  # the reason, in one line
    assert failed.data.tags["pareto_optimal"] == "false" and failed.data.tags["pareto_rank"] == "-1"
    assert fine.info.status == "FINISHED" and fine.data.tags["pareto_optimal"] == "true"
