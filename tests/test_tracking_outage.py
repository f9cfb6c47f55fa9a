"""A tracking server that cannot be reached does not stop a study, and nothing measured is lost."""

from __future__ import annotations

import logging
import socket

import pytest
import ray
from mlflow.tracking import MlflowClient

from nsr_tune.cli import main
from tests._helpers import tiny_space

pytestmark = pytest.mark.slow

SPACE = tiny_space("outage", models=("cnn", "mlp"), epochs=2, start_with=[{"model": "cnn"}, {"model": "mlp"}])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket is closed


def test_study_survives_an_unreachable_server_and_syncs_later(tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    space = tmp_path / "outage.yaml"
    space.write_text(SPACE)
    down = f"http://127.0.0.1:{_closed_port()}"
    argv = [
        "tune",
        "--space",
        str(space),
        "--name",
        "o",
        "--storage",
        str(tmp_path / "ray"),
        "--data-dir",
        "bundled",
    ]
    with caplog.at_level(logging.WARNING):
        try:
            assert main([*argv, "--mlflow-uri", down, "--address", "local", "--local-cpus", "2"]) == 0
        finally:
            ray.shutdown()
    out = capsys.readouterr().out
    assert "2 trials (0 errored)" in out and "Pareto front" in out  # the front still prints, from Tune
    warnings = [
        r for r in caplog.records if "cannot be reached" in r.message or "still unreachable" in r.message
    ]
    # One at the start, one at the end with the command; none per trial.
    assert ["cannot be reached" in w.message for w in warnings] == [True, False]
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.WARNING)
    assert "still unreachable" in warnings[-1].message and "nsr-tune sync-mlflow" in warnings[-1].message

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["sync-mlflow", str(tmp_path / "ray" / "o"), "--mlflow-uri", uri]) == 0
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("outage").experiment_id])
    parents = [r for r in runs if r.data.tags.get("nsr_tune.role") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert all(r.info.status == "FINISHED" for r in runs)
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "train_loss")] == [1, 2]
        assert "val_robust_balanced_acc_eps_0.05" in child.data.metrics
        assert child.data.tags["pareto_optimal"] in ("true", "false")
        # Synced from Tune's last report: what the masking checks found (none ran) arrives too.
        assert child.data.tags["masking_flags"] == "none" and child.data.metrics["test_masking_flags"] == 0.0
    # A second sync writes nothing twice.
    assert main(["sync-mlflow", str(tmp_path / "ray" / "o"), "--mlflow-uri", uri]) == 0
    again = client.search_runs([client.get_experiment_by_name("outage").experiment_id])
    assert len(again) == 3
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "train_loss")] == [1, 2]
