"""A study whose driver is killed (SIGKILL) mid-study continues with `tune.py --resume PATH` alone.

Real processes throughout: the driver is `python tune.py` in its own process group, killed
with its local Ray once at least one trial has finished. The resume is given nothing but the
study's path, from another working directory: it must find the study's own space, data and
MLflow store, finish every trial, rerun none that had finished, reuse the parent MLflow run and
leave none RUNNING.
"""

from __future__ import annotations

import json
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


def _terminated_trials(experiment: Path) -> set[str]:
    """Trials that Tune's saved experiment state records as finished."""
    states = sorted(experiment.glob("experiment_state-*.json"))
    if not states:
        return set()
    try:
        data = json.loads(states[-1].read_text())
    except json.JSONDecodeError:  # caught mid-write; the next poll reads it whole
        return set()
    trials = (json.loads(t[0]) for t in data["trial_data"])
    return {t["trial_id"] for t in trials if t["status"] == "TERMINATED"}


def test_killed_driver_resumes_without_rerunning_or_duplicating(tmp_path):
    storage, uri = tmp_path / "ray", f"sqlite:///{tmp_path / 'mlflow.db'}"
    start = [sys.executable, str(REPO / "tune.py"), "--space", str(REPO / "search_spaces" / "dry_run.yaml")]
    start += ["--data-dir", "bundled", "--name", "killed", "--storage", str(storage), "--mlflow-uri", uri]
    env = {**os.environ, "RAY_ADDRESS": "local", "TUNE_RESULT_BUFFER_LENGTH": "1"}
    driver = subprocess.Popen(
        [*start, "--local-cpus", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    experiment = storage / "killed"
    deadline = time.monotonic() + 600
    while not _terminated_trials(experiment):
        assert driver.poll() is None, "the study ended before it could be killed"
        assert time.monotonic() < deadline, "no trial finished within 10 minutes"
        time.sleep(1)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
    driver.wait()
    finished_before = _terminated_trials(experiment)
    assert 1 <= len(finished_before) < 4

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run(
        [sys.executable, str(REPO / "tune.py"), "--resume", str(experiment)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "4 trials (0 errored)" in resumed.stdout
    assert f"resuming study 'killed': space {REPO / 'search_spaces' / 'dry_run.yaml'}" in resumed.stderr
    assert not (elsewhere / "mlflow.db").exists()  # the study's own store, not a new one here

    # A trial that had finished is not trained again: its reports are exactly epochs 1 and 2.
    for trial_id in finished_before:
        result = experiment / f"trial_{trial_id}" / "result.json"
        epochs = [json.loads(line)["epoch"] for line in result.read_text().splitlines() if line.strip()]
        assert epochs == [1, 2], (trial_id, epochs)

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("dry_run").experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("nsr_tune.role") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    assert all(r.info.status == "FINISHED" for r in runs), [
        (r.info.run_name, r.info.status, r.data.tags.get("nsr_tune.state")) for r in runs
    ]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert all(c.data.tags.get("pareto_optimal") in ("true", "false") for c in children)
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "train_loss")] == [1, 2]

    # The searcher's Optuna study lives in the study's journal, which the resumed driver shares:
    # every trial the study finished is there, once, with its two objective values.
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = JournalStorage(JournalFileBackend(str(experiment / "optuna_journal.log")))
    ot = optuna.load_study(study_name="killed", storage=journal)
    complete = [t for t in ot.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4 and all(len(t.values) == 2 for t in complete)
    # Trials the killed driver had started are not left RUNNING for ever.
    assert not [t for t in ot.trials if t.state == optuna.trial.TrialState.RUNNING]
