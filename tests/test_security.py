"""Ray token authentication is on in the tests, as in the cluster configs: a client without the
token is refused, one with it is let in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

HEAD = """
import sys, time, ray
ray.init(address="local", num_cpus=1, include_dashboard=False)
print(ray.get_runtime_context().gcs_address, flush=True)
time.sleep(120)
"""

CLIENT = """
import ray
ray.init(address="{address}")
print("connected", ray.cluster_resources().get("CPU"))
"""


def _client(address: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CLIENT.format(address=address)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_client_without_the_token_is_refused():
    assert os.environ["RAY_AUTH_MODE"] == "token" and os.environ["RAY_AUTH_TOKEN"]
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        address = head.stdout.readline().strip()
        assert address, "the head did not start"
        with_token = _client(address, dict(os.environ))
        assert with_token.returncode == 0 and "connected 1.0" in with_token.stdout, with_token.stderr[-2000:]
        wrong = {**os.environ, "RAY_AUTH_TOKEN": "0" * 64}
        refused = _client(address, wrong)
        assert refused.returncode != 0
        assert "connected" not in refused.stdout
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
