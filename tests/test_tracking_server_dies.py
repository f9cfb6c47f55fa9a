"""The MLflow tracking server dies mid-study: the study completes, and once the server is back
`nsr-tune sync-mlflow` writes what it missed, with no run duplicated and none left RUNNING."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

SPACE = """
name: server_dies
data: {split: inter, max_train_beats: 2000}
model: {families: {cnn: {}, mlp: {}}}
objective: {choices: {ce: {}}}
optim: {epochs: 2, batch_size: 32}
evaluation:
  search: {eps: [0.01, 0.05], steps: 2, per_class_cap: 5}
  test: {eps: [0.01, 0.05], steps: 2, per_class_cap: 5}
search: {sampler: random, num_samples: 2, max_concurrent: 1, start_with: [{model: cnn}, {model: mlp}]}
resources: {cpu: 1, gpu: 0}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(store: str, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            store,
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    os.killpg(server.pid, signal.SIGKILL)
    raise AssertionError("mlflow server did not come up")


def test_server_dies_mid_study_then_sync_fills_the_gap(tmp_path):
    store, port = f"sqlite:///{tmp_path / 'mlflow.db'}", _free_port()
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RAY_ADDRESS": "local", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    server = _start_server(store, port)
    cmd = [
        sys.executable,
        str(REPO / "tune.py"),
        "--space",
        str(space),
        "--name",
        "s",
        "--data-dir",
        "bundled",
    ]
    cmd += ["--storage", str(tmp_path / "ray"), "--mlflow-uri", uri, "--local-cpus", "2"]
    driver = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        experiment = tmp_path / "ray" / "s"
        deadline = time.monotonic() + 600
        while not any(p.read_text().strip() for p in experiment.glob("trial_*/result.json")):
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        os.killpg(server.pid, signal.SIGKILL)  # the server dies after the first report
        server.wait()
        out, _ = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, out[-3000:]
    assert "2 trials (0 errored)" in out
    assert out.count("Traceback") == 0
    assert "nsr-tune sync-mlflow" in out

    server = _start_server(store, port)
    try:
        sync = subprocess.run(
            [sys.executable, "-m", "nsr_tune.cli", "sync-mlflow", str(experiment), "--mlflow-uri", uri],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert sync.returncode == 0, sync.stderr[-3000:]
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("server_dies").experiment_id])
    parents = [r for r in runs if r.data.tags.get("nsr_tune.role") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert all(r.info.status == "FINISHED" for r in runs)
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "train_loss")] == [1, 2]
        assert child.data.tags["pareto_optimal"] in ("true", "false")
