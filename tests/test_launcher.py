"""The cluster launcher as users drive it: `ray up`, `ray submit ... tune.py`, `ray exec`, `ray down`.

The "cluster" is this machine, reached over SSH: a private sshd on 127.0.0.1 (tests/_launcher.py)
with a home directory of its own, so every test starts from a machine that has only Python. The
cluster configs are the project's own, with only the machine, login and storage lines swapped
(`loopback_config`); files, setup and start commands run exactly as written. The node installs
the project the way the config says (`pip install -e ~/nsr-tune ...` of the rsynced tree), starts
Ray and the MLflow server, and the real tune.py runs there as `ray submit` runs it.

What cannot be real here: PhysioNet is out of reach, so the node's MIT-BIH cache is seeded with
the real files from ../shared (the setup's `nsr-tune data download` then checks every file's
SHA-256 against PhysioNet's list and skips the download), and PyTorch's CPU index is out of reach,
so pip takes the same torch wheel from this machine's wheel directory.

`ray up` and `ray down` run `ray stop`, which ends every Ray process on the machine. These tests
are marked `launcher`, left out of the main pytest run, and run last in a pytest call of their
own (.ci/run). Under CI (CI=true) a missing program is a failure, not a skip.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from tests._helpers import need, study_runs
from tests._launcher import REPO, SSHNode, loopback_config, missing_programs, ray_cli, start_sshd

pytestmark = [pytest.mark.launcher, pytest.mark.slow]

MLFLOW_URL = "http://127.0.0.1:5000"  # where both cluster configs start the head's MLflow server
OUTPUT = REPO / "test-output" / "launcher"
DRY_RUN_TRIALS = 4  # search_spaces/dry_run.yaml


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Cluster(NamedTuple):
    config: Path  # the project's config, pointed at the loopback node
    node: SSHNode
    shared: Path  # stands for the NFS share / the S3 bucket


def _cluster(template: str, tmp_path: Path, mitdb: Path) -> Iterator[Cluster]:
    missing = missing_programs()
    need(not missing, f"the launcher test needs {', '.join(missing)}")
    if _port_in_use(5000):
        pytest.fail("127.0.0.1:5000 is taken; the cluster configs start the head's MLflow server there")
    node = start_sshd(tmp_path / "ssh")
    # PhysioNet is out of reach: seed the node's cache with the real records (links, not copies).
    cache = node.home / ".cache" / "nsr-tune" / "mitdb"
    cache.mkdir(parents=True)
    for f in mitdb.iterdir():
        (cache / f.name).symlink_to(f.resolve())
    shared = tmp_path / "shared"
    shared.mkdir()
    config = loopback_config(REPO / "cluster" / template, node, shared, tmp_path / template)
    try:
        yield Cluster(config=config, node=node, shared=shared)
    finally:
        # Whatever happened: Ray off, the head's MLflow server off, sshd off.
        ray_cli("down", "-y", str(config), timeout=300)
        pid_file = node.home / "nsr-tune-mlflow" / "server.pid"
        if pid_file.is_file():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 30
            while _port_in_use(5000) and time.monotonic() < deadline:
                time.sleep(0.5)
        node.process.terminate()
        node.process.wait(timeout=30)


@pytest.fixture
def local_cluster(tmp_path: Path, mitdb_dir: Path) -> Iterator[Cluster]:
    yield from _cluster("local.yaml", tmp_path, mitdb_dir)


@pytest.fixture
def gpu_cluster_config(tmp_path: Path, mitdb_dir: Path) -> Iterator[Cluster]:
    yield from _cluster("config.yaml", tmp_path, mitdb_dir)


def _step(name: str, log: list[str], *args: str, timeout: float) -> tuple[str, float]:
    """Run `ray ARGS`, keep its output in test-output/launcher/, fail with it on a non-zero exit."""
    started = time.perf_counter()
    proc = ray_cli(*args, timeout=timeout)
    took = time.perf_counter() - started
    log.append(f"$ ray {' '.join(args)}\n# exit {proc.returncode} after {took:.1f} s\n{proc.stdout}\n")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / f"{name}.log").write_text("\n".join(log))
    assert proc.returncode == 0, f"`ray {args[0]}` exited {proc.returncode}:\n{proc.stdout[-6000:]}"
    return proc.stdout, took


def _user_sequence(cluster: Cluster, *, name: str, study: str) -> dict[str, float]:
    """The README's cluster commands, with the study's storage on the "shared" directory."""
    cfg = str(cluster.config)
    log: list[str] = []
    times: dict[str, float] = {}
    out, times["up"] = _step(name, log, "up", "-y", "--no-config-cache", cfg, timeout=1500)
    # The project arrived through file_mounts and was installed by the setup commands.
    assert (cluster.node.home / "nsr-tune" / "tune.py").is_file()
    assert (cluster.node.home / "nsr-venv" / "bin" / "nsr-tune").is_file()
    assert "MIT-BIH Arrhythmia Database ready" in out

    submit = ["submit", cfg, "tune.py", "--", "--dry-run", "--name", study]
    submit += ["--storage", str(cluster.shared / "ray-results"), "--shared-storage"]
    submit += ["--mlflow-uri", MLFLOW_URL]
    out, times["submit"] = _step(name, log, *submit, timeout=900)
    assert "joined the running Ray cluster" in out
    assert f"{DRY_RUN_TRIALS} trials (0 errored)" in out, out[-4000:]
    assert f"{MLFLOW_URL}/#/experiments/" in out
    # Tune's results went to the shared storage, not the node's home directory.
    assert (cluster.shared / "ray-results" / study / "nsr_tune_study.json").is_file()

    out, times["exec"] = _step(name, log, "exec", cfg, "ray status", timeout=300)
    # One live node (the head), idle now that the study is over.
    assert re.search(r"^\s*1 local\.cluster\.node\s*$", out, re.M), out
    assert re.search(r"^\s*0\.0/\d+\.0 CPU\s*$", out, re.M), out

    out, times["down"] = _step(name, log, "down", "-y", cfg, timeout=300)
    assert "Stopped all" in out and "Ray processes" in out, out
    return times


def _check_tracked(cluster: Cluster, study: str) -> None:
    """The study's runs, read back from the head's MLflow server after `ray down`.

    Each test's node starts with an empty MLflow store, so the experiment holds this study only.
    """
    client, parents, children = study_runs(MLFLOW_URL, "dry_run")
    assert len(parents) == 1
    assert parents[0].data.tags["nsr_tune.experiment_path"] == str(cluster.shared / "ray-results" / study)
    assert len(children) == DRY_RUN_TRIALS
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {r.info.status for r in [*parents, *children]} == {"FINISHED"}
    assert sum(r.data.tags["pareto_optimal"] == "true" for r in children) >= 1
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert "pareto.png" in artifacts


def test_local_yaml_up_submit_exec_down(local_cluster: Cluster) -> None:
    times = _user_sequence(local_cluster, name="local_yaml", study="launcher_local")
    _check_tracked(local_cluster, "launcher_local")
    # The server outlives `ray down` on purpose (the runs stay browsable); no raylet does.
    assert local_cluster.node.home.joinpath("nsr-tune-mlflow", "mlflow.db").is_file()
    print("local.yaml: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))


def test_gpu_config_yaml_up_submit_exec_down(gpu_cluster_config: Cluster) -> None:
    # cluster/config.yaml's file_mounts and head commands (the GPU cluster's), on the same kind of
    # node: the AWS provider, node types and S3 bucket are swapped for this machine and a directory.
    times = _user_sequence(gpu_cluster_config, name="config_yaml", study="launcher_gpu_config")
    _check_tracked(gpu_cluster_config, "launcher_gpu_config")
    print("config.yaml: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
