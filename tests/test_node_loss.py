"""A worker node dies mid-trial: the trial continues from its last checkpoint on another node.

Two worker nodes in a `ray.cluster_utils.Cluster` (the head takes no trials); once the trial has
reported an epoch, the node running it is removed with all its processes.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from nsr_tune.study.options import StudyOptions
from nsr_tune.study.runner import run_study
from nsr_tune.study.space import parse_space
from tests._helpers import tiny_space

pytestmark = pytest.mark.slow

SPACE = tiny_space(
    "node_loss",
    epochs=4,
    batch_size=32,
    max_train_beats=3000,
    num_samples=1,
    max_concurrent=1,
    extra={"search": {"max_failures": 2}},
)


def _reports(experiment: Path) -> list[dict]:
    files = list(experiment.glob("trial_*/result.json"))
    if not files:
        return []
    return [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]


def test_trial_moves_to_another_node_when_its_node_dies(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=cluster.address)
    experiment = tmp_path / "ray" / "n"
    removed: list[str] = []

    def kill_the_trials_node() -> None:
        deadline = time.monotonic() + 600
        while not _reports(experiment) and time.monotonic() < deadline:
            time.sleep(0.2)
        node_id = _reports(experiment)[0]["node_id"]
        (node,) = [w for w in workers if w.node_id == node_id]
        cluster.remove_node(node, allow_graceful=False)
        removed.append(node_id)

    killer = threading.Thread(target=kill_the_trials_node, daemon=True)
    killer.start()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        outcome = run_study(
            StudyOptions(
                space=parse_space(SPACE, where="node_loss.yaml"),
                name="n",
                storage=str(tmp_path / "ray"),
                shared_storage=True,  # both "nodes" are this machine
                mlflow_uri=uri,
                data_dir="bundled",
            )
        )
    finally:
        killer.join(timeout=5)
        ray.shutdown()
        cluster.shutdown()
    assert removed, "the trial's node was never removed"
    assert outcome.n_trials == 1 and outcome.n_errors == 0

    reports = _reports(experiment)
    epochs = [r["epoch"] for r in reports]
    assert epochs[0] == 1 and epochs[-1] == 4
    assert len(epochs) - len(set(epochs)) <= 1  # at most the epoch in flight is trained again
    assert reports[0]["node_id"] == removed[0] != reports[-1]["node_id"]

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("node_loss").experiment_id])
    (child,) = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert child.info.status == "FINISHED" and child.data.tags["nsr_tune.state"] == "complete"
    assert [m.step for m in client.get_metric_history(child.info.run_id, "train_loss")] == [1, 2, 3, 4]
