"""A plugin that exists only in a temporary directory reaches both nodes of a two-node Ray
cluster through `--plugin-path` (runtime_env py_modules), its provenance lands in MLflow, and a
resume after its code changed is refused before Ray starts."""

from __future__ import annotations

import subprocess
import sys

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from nsr_tune.errors import PluginError
from nsr_tune.plugins import add_plugin_path
from nsr_tune.study.options import StudyOptions, resume_options
from nsr_tune.study.runner import run_study
from nsr_tune.study.space import parse_space
from tests._helpers import tiny_space
from tests._plugin_source import forget_plugin, write_plugin

pytestmark = pytest.mark.slow

OBJECTIVE = "tmpplug.reg:logit_penalty"
MODEL = "tmpplug.reg:TinyNet"


@pytest.fixture
def two_nodes():
    ray.shutdown()  # this process joins the cluster in run_study, with the plugin's runtime_env
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_a_plugin_from_a_temporary_directory_runs_on_both_nodes(two_nodes, tmp_path):
    root = write_plugin(tmp_path / "plugins")
    # Nothing but --plugin-path puts it on a path: a fresh interpreter cannot import it.
    probe = subprocess.run([sys.executable, "-c", "import tmpplug"], capture_output=True, cwd=tmp_path)
    assert probe.returncode != 0
    forget_plugin()
    add_plugin_path(root)
    try:
        space = parse_space(
            tiny_space(
                "plugin_nodes",
                models=(MODEL,),
                losses={"ce": {}, OBJECTIVE: {"gamma": {"choice": [0.01, 0.1]}}},
                start_with=[{"objective": "ce"}, {"objective": OBJECTIVE}],
                extra={"evaluation": {"final": {"top_ranks": 9}}},
            ),
            where="plugin_nodes.yaml",
        )
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        options = StudyOptions(
            space=space,
            name="plugin",
            storage=str(tmp_path / "ray"),
            shared_storage=True,  # both "nodes" are this machine
            mlflow_uri=uri,
            data_dir="bundled",
            ray_address=two_nodes.address,
            plugin_paths=(str(root),),
        )
        outcome = run_study(options)
        assert outcome.n_trials == 2 and outcome.n_errors == 0
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("plugin_nodes").experiment_id])
        parent = next(r for r in runs if r.info.run_id == outcome.parent_run_id)
        children = [r for r in runs if r.info.run_id != outcome.parent_run_id]
        assert {c.data.tags["ray_node_id"] for c in children} == {
            n["NodeID"] for n in ray.nodes() if n["Alive"]
        }
        sha = parent.data.params[f"plugin.objective:{OBJECTIVE}.sha256"]
        assert len(sha) == 64 and parent.data.params[f"plugin.model:{MODEL}.target"] == MODEL
        for c in children:
            assert c.data.params["plugins.model.sha256"] == sha
            assert c.data.params["plugins.model.name"] == MODEL
        lp = [c for c in children if c.data.params["objective.name"] == OBJECTIVE]
        assert len(lp) == 1 and lp[0].data.params["plugins.objective.sha256"] == sha
        assert lp[0].data.params["objective.params.gamma"] in ("0.01", "0.1")

        # The same study, resumed after the plugin's code changed: refused before Ray starts.
        ray.shutdown()
        reg = root / "tmpplug" / "reg.py"
        reg.write_text(reg.read_text() + "\n# edited after the study\n")
        resumed = resume_options(outcome.experiment_path, {"plugin_path": [str(root)]})
        with pytest.raises(PluginError) as e:
            run_study(resumed)
        assert str(e.value).startswith(
            f"--resume: plugin code changed since the study at {outcome.experiment_path} started: "
            f"model '{MODEL}' ({MODEL}) source sha256 {sha[:12]} then, "
        )
        assert f"objective '{OBJECTIVE}' ({OBJECTIVE}) source sha256 {sha[:12]} then, " in str(e.value)
        assert not ray.is_initialized()
    finally:
        sys.path.remove(str(root.resolve()))
        forget_plugin()
