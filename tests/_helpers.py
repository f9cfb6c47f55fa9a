"""Small shared helpers for tests (not fixtures)."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn


def kaggle_beats(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real beats from the Kaggle-format CSV sample: x (B, 1, 187), y (B,), true lengths (B,)."""
    rows = np.loadtxt(path, delimiter=",", dtype=np.float32)
    x = torch.from_numpy(rows[:, :187]).unsqueeze(1)
    y = torch.from_numpy(rows[:, 187].astype(np.int64))
    nonzero = (x[:, 0] != 0).int()
    lengths = 187 - nonzero.flip(1).argmax(dim=1)  # index of the last non-zero sample + 1
    return x, y, lengths


def gen(seed: int = 0) -> torch.Generator:
    """A CPU generator for an attack's random starts, seeded."""
    return torch.Generator().manual_seed(seed)


def linear_model(seed: int = 0, dtype: torch.dtype = torch.float32, classes: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(187, classes)).to(dtype)


def _train_epochs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> Iterator[int]:
    """Adam epochs over shuffled batches of 64, without end; yields the epoch just finished (1, 2, ...)."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in itertools.count(1):
        model.train()
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        yield epoch


def train_quick(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 30, seed: int = 0
) -> nn.Module:
    """A fixed number of Adam epochs. How good the model gets differs between machines (float
    arithmetic does): assert nothing about its accuracy; use `train_until` where a test needs it."""
    for _ in itertools.islice(_train_epochs(model, x, y, seed=seed), epochs):
        pass
    return model.eval()


def train_until(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    measure: Callable[[nn.Module], float],
    target: float,
    max_epochs: int,
    what: str = "accuracy",
    seed: int = 0,
) -> nn.Module:
    """Train as `train_quick` does until ``measure(model) >= target``, checked after every epoch.

    A test that needs a model at least this good gets one on any machine, however its arithmetic
    steers training; past ``max_epochs`` the test fails and says how far the model got.
    """
    got = float("nan")
    for epoch in _train_epochs(model, x, y, seed=seed):
        got = measure(model)
        if got >= target:
            return model
        if epoch == max_epochs:
            break
    pytest.fail(f"the test model reached {what} {got:.3f} after {max_epochs} epochs; it needs >= {target}")


REPO = Path(__file__).resolve().parents[1]

# What every tiny study evaluates: two noise levels (0.05 is the default robust objective's), a
# PGD of 2 steps, and 5 beats per class.
TINY_EVAL = {"eps": [0.01, 0.05], "steps": 2, "per_class_cap": 5}
# And its finalists: the strong protocol's attacks on the same beats, each at a token budget.
TINY_FINAL = {
    "eps": [0.01, 0.05],
    "per_class_cap": 5,
    "apgd_steps": 2,
    "square_queries": 10,
    "sap_steps": 2,
    "transfer_steps": 2,
    "bisect_steps": 0,
    "noise_stress": False,
    "top_ranks": 1,
    "bootstrap": 20,
}


def tiny_space(
    name: str,
    *,
    models: Sequence[str] = ("cnn",),
    losses: Sequence[str] | Mapping[str, Mapping[str, Any]] = ("ce",),
    epochs: int = 1,
    batch_size: int = 64,
    max_train_beats: int = 600,
    num_samples: int = 2,
    max_concurrent: int = 2,
    start_with: Sequence[Mapping[str, Any]] = (),
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The YAML text of a small search space (the format of nsr_tune/search_spaces/*.yaml) for tests.

    Real records under the `inter` split, at most ``max_train_beats`` training beats, the
    random sampler, one CPU per trial and the `TINY_EVAL` evaluation (`TINY_FINAL` for the
    finalists). ``models`` are model families with their default knobs; ``losses`` are
    objective names, or a mapping from name to fields
    (``{"nsr": {"beta": {"choice": [0.0, 0.3]}}}``). ``extra`` is merged in last, key by key
    (``{"optim": {"grad_clip": None}, "search": {"max_failures": 1}}``), for what a test needs
    beyond that.
    """
    fields = losses if isinstance(losses, Mapping) else {loss: {} for loss in losses}
    search: dict[str, Any] = {"sampler": "random", "num_samples": num_samples}
    search["max_concurrent"] = max_concurrent
    if start_with:
        search["start_with"] = [dict(point) for point in start_with]
    space: dict[str, Any] = {
        "name": name,
        "data": {"split": "inter", "max_train_beats": max_train_beats},
        "model": {"families": {family: {} for family in models}},
        "objective": {"choices": {loss: dict(f) for loss, f in fields.items()}},
        "optim": {"epochs": epochs, "batch_size": batch_size},
        "evaluation": {"search": TINY_EVAL, "test": TINY_EVAL, "final": TINY_FINAL},
        "search": search,
        "resources": {"cpu": 1, "gpu": 0},
    }
    return yaml.dump(_merged(space, extra or {}), Dumper=_PlainDumper, sort_keys=False)


class _PlainDumper(yaml.SafeDumper):
    """Writes a value used twice in full, not as a YAML anchor and alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = _merged(out[key], value) if both else value
    return out


def start_tune(tmp_path: Path, space_text: str, *, name: str, mlflow_uri: str, env: dict | None = None):
    """`python tune.py` on a space, as a real process in its own process group (stdout piped).

    Its study lands in tmp_path/ray/NAME, on the bundled records, with a local Ray of 2 CPUs.
    """
    import os
    import subprocess
    import sys

    space = tmp_path / f"{name}.yaml"
    space.write_text(space_text)
    cmd = [
        sys.executable,
        str(REPO / "tune.py"),
        "--space",
        str(space),
        "--name",
        name,
        "--data-dir",
        "bundled",
    ]
    cmd += ["--storage", str(tmp_path / "ray"), "--mlflow-uri", mlflow_uri, "--local-cpus", "2"]
    return subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env={**os.environ, "RAY_ADDRESS": "local", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for_first_report(experiment: Path, driver, *, timeout: float = 600) -> None:
    """Block until some trial of the study has reported an epoch (the driver must stay alive)."""
    import time

    deadline = time.monotonic() + timeout
    while not any(p.read_text().strip() for p in experiment.glob("trial_*/result.json")):
        assert driver.poll() is None, "the study ended early"
        assert time.monotonic() < deadline, "no trial reported in time"
        time.sleep(0.2)


def finish(driver, *, timeout: float = 900) -> str:
    """Wait for the driver and return its output; kill its process group if it hangs."""
    import os
    import signal

    try:
        out, _ = driver.communicate(timeout=timeout)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    return out


def study_runs(mlflow_uri: str, experiment: str):
    """(parent runs, child runs) of an MLflow experiment, read with the real client."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("nsr_tune.role") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def need(ok: bool, message: str) -> None:
    """Skip an end-to-end test that lacks what it drives; under CI (CI=true), fail it instead.

    CI installs every such program, so there a missing one is a broken CI set-up, not a reason to
    report a green run that tested nothing.
    """
    if ok:
        return
    message += " (.ci/run installs it)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (once this returns)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(store: str, *, port: int, cwd: Path, timeout: float = 180) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1:``port`` against ``store``, returned once /health answers.

    It runs in ``cwd`` (where it keeps proxied artifacts, ./mlartifacts) and logs to
    ``cwd``/mlflow-server.log; its own process group, so that a test can kill it whole.
    """
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1", "--backend-store-uri", store]
    # The GenAI job runner is a dozen processes this tool never uses (the cluster configs too).
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = cwd / "mlflow-server.log"
    with log.open("a") as fh:
        server = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            os.killpg(server.pid, signal.SIGKILL)
            raise AssertionError(f"mlflow server did not answer on port {port}: {log.read_text()[-3000:]}")
        time.sleep(0.5)
