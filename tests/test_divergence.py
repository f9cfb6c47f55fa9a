"""A diverging trial under Tune: it stops early, is marked diverged in Tune and MLflow, the
searcher gets chance-level objectives, it is never on the front, and the study goes on."""

from __future__ import annotations

import json

import pytest
import ray
from mlflow.tracking import MlflowClient

from nsr_tune.cli import main
from tests._helpers import tiny_space

pytestmark = pytest.mark.slow

# Two trials: a sane one (CE, lr 1e-3) and one that must diverge (NSR with beta 1e30, lr 1e6,
# no gradient clipping).
SPACE = tiny_space(
    "diverge",
    losses={"ce": {}, "nsr": {"beta": {"choice": [0.3, 1.0e30]}}},
    epochs=2,
    start_with=[
        {"objective": "ce", "optim.lr": 0.001},
        {"objective": "nsr", "objective.nsr.beta": 1.0e30, "optim.lr": 1.0e6},
    ],
    extra={"optim": {"grad_clip": None, "lr": {"choice": [0.001, 1.0e6]}}},
)


def test_a_diverging_trial_is_marked_and_kept_off_the_front(tmp_path):
    space = tmp_path / "diverge.yaml"
    space.write_text(SPACE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [
        "tune",
        "--space",
        str(space),
        "--name",
        "d",
        "--storage",
        str(tmp_path / "ray"),
        "--data-dir",
        "bundled",
    ]
    try:
        assert main([*argv, "--mlflow-uri", uri, "--address", "local", "--local-cpus", "2"]) == 0
    finally:
        ray.shutdown()

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("diverge").experiment_id])
    children = {r.data.params["objective.name"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert set(children) == {"ce", "nsr"}
    bad, good = children["nsr"], children["ce"]
    assert bad.data.tags["nsr_tune.state"] == "diverged" and bad.data.tags["diverged"] == "true"
    assert bad.data.tags["pareto_optimal"] == "false" and bad.data.tags["pareto_rank"] == "-1"
    assert good.data.tags["nsr_tune.state"] == "complete" and good.data.tags["pareto_optimal"] == "true"
    assert all(r.info.status == "FINISHED" for r in runs)

    # What the searcher was told: chance level (1/4 over N, S, V, F), not NaN, and no more epochs.
    trial_dir = tmp_path / "ray" / "d" / f"trial_{bad.data.tags['nsr_tune.trial_id']}"
    reports = [
        json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()
    ]
    last = reports[-1]
    assert [r["diverged"] for r in reports] == [False] * (len(reports) - 1) + [True]  # none after it
    assert last["val_balanced_acc"] == 0.25 and last["val_robust_balanced_acc_eps_0.05"] == 0.25
