"""A study on a two-node Ray cluster (ray.cluster_utils): trials land on both nodes, and the
beats reach them through Ray's object store, not from disk."""

from __future__ import annotations

import shutil

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from nsr_tune.data import BUNDLED_DIR
from nsr_tune.errors import ConfigError
from nsr_tune.study import startup
from nsr_tune.study.options import StudyOptions
from nsr_tune.study.runner import run_study
from nsr_tune.study.space import parse_space
from tests._helpers import tiny_space

pytestmark = pytest.mark.slow

SPACE = tiny_space(
    "two_nodes",
    models=("cnn", "mlp"),
    losses={"ce": {}, "nsr": {"beta": {"choice": [0.0, 0.3]}}},
    start_with=[{"model": "cnn", "objective": "ce"}, {"model": "mlp", "objective": "ce"}],
    # Every complete trial is a finalist, so that the final stage has a task for each node.
    extra={"evaluation": {"final": {"top_ranks": 9}}},
)


@pytest.fixture(scope="module")
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_a_local_storage_path_is_refused_on_several_nodes(two_nodes, tmp_path):
    with pytest.raises(ConfigError, match=r"--storage: .* is a local path, but the cluster has 2 nodes"):
        startup.check_storage(str(tmp_path / "ray"), n_nodes=2, shared=False)
    assert startup.check_storage("s3://bucket/nsr", n_nodes=2, shared=False) == "s3://bucket/nsr"


def test_trials_run_on_both_nodes_from_the_object_store(two_nodes, tmp_path, monkeypatch):
    data = tmp_path / "mitdb"
    shutil.copytree(BUNDLED_DIR, data)
    monkeypatch.setenv("NSR_TUNE_CACHE", str(tmp_path / "cache"))
    real_load = startup.load_dataset

    def load_then_delete(*args, **kwargs):
        # Once the driver has the beats, no node has the records or their cache any more:
        # the trials can only get the beats through Ray's object store.
        result = real_load(*args, **kwargs)
        shutil.rmtree(data)
        shutil.rmtree(tmp_path / "cache")
        return result

    monkeypatch.setattr(startup, "load_dataset", load_then_delete)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outcome = run_study(
        StudyOptions(
            space=parse_space(SPACE, where="two_nodes.yaml"),
            name="two",
            storage=str(tmp_path / "ray"),
            shared_storage=True,  # both "nodes" are this machine
            mlflow_uri=uri,
            data_dir=str(data),
        )
    )
    assert not data.exists()
    assert outcome.n_trials == 2 and outcome.n_errors == 0
    client = MlflowClient(uri)
    children = client.search_runs(
        [client.get_experiment_by_name("two_nodes").experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'",
    )
    assert len(children) == 2
    assert all(c.data.tags["nsr_tune.state"] == "complete" for c in children)
    nodes = {c.data.tags["ray_node_id"] for c in children}
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(nodes) == 2 and nodes <= alive
    # The finalists' second evaluation ran as Ray tasks, one per node, on beats from the object
    # store (the records are gone), and each cnn/mlp CE trial transferred from the other.
    final_nodes = {c.data.tags["final_ray_node_id"] for c in children}
    assert len(final_nodes) == 2 and final_nodes <= alive
    trials = {c.data.tags["nsr_tune.trial_id"] for c in children}
    for c in children:
        assert c.data.tags["final_surrogate"] in trials - {c.data.tags["nsr_tune.trial_id"]}
        assert "final_balanced_acc_ci_low" in c.data.metrics
    assert outcome.final is not None and set(outcome.final.finals) == trials
