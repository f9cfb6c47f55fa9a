"""The study end to end: real Ray, real Optuna, a real MLflow SQLite store, real records.

One dry run is shared by every test that only reads its results (MLflow runs, tags, figures).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import ray
from mlflow.tracking import MlflowClient

from nsr_tune.cli import main
from nsr_tune.data import BUNDLED_DIR
from nsr_tune.results.pareto import hypervolume
from nsr_tune.study.space import load_space

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """`nsr-tune tune --dry-run --seed 3`, in-process, into a private Tune dir and MLflow store.

    Its data are a copy of the bundled records, so that a test can change them under the study.
    """
    root = tmp_path_factory.mktemp("dry")
    data = shutil.copytree(BUNDLED_DIR, root / "mitdb")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    argv = ["tune", "--dry-run", "--name", "dry", "--storage", str(root / "ray"), "--mlflow-uri", uri]
    argv += ["--data-dir", str(data), "--seed", "3"]
    try:
        assert main([*argv, "--address", "local", "--local-cpus", "2"]) == 0
    finally:
        ray.shutdown()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("dry_run")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("nsr_tune.role") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return {
        "root": root,
        "data": data,
        "path": root / "ray" / "dry",
        "uri": uri,
        "client": client,
        "parents": parents,
        "children": children,
    }


def test_one_parent_and_one_child_per_trial(dry_run):
    space = load_space("dry_run")
    assert len(dry_run["parents"]) == 1
    parent = dry_run["parents"][0]
    children = dry_run["children"]
    assert len(children) == space.num_samples == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert len({c.data.tags["nsr_tune.trial_id"] for c in children}) == 4
    assert all(r.info.status == "FINISHED" for r in [parent, *children])
    # Both architectures and beta = 0 are covered (the space enqueues them first).
    models = {c.data.params["model.name"] for c in children}
    betas = {float(c.data.params["objective.beta"]) for c in children}
    assert models == {"cnn", "mlp"} and 0.0 in betas
    assert parent.data.tags["data_fingerprint"]
    assert "ray" in parent.data.tags["library_versions"]


def _strict(text: str):
    """JSON as JSON.parse and jq read it: NaN and Infinity are not JSON."""

    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_every_json_the_study_writes_is_strict(dry_run):
    path = dry_run["path"]
    ours = [path / "nsr_tune_study.json", *path.glob("final/*/*.json")]
    assert len(ours) >= 2  # the description and at least one finalist's result
    for f in ours:
        _strict(f.read_text())


def test_children_hold_epochs_objectives_and_test_metrics(dry_run):
    client = dry_run["client"]
    for child in dry_run["children"]:
        history = client.get_metric_history(child.info.run_id, "train_loss")
        assert [m.step for m in history] == [1, 2]  # one point per epoch, none twice
        metrics = child.data.metrics
        for key in (
            "val_balanced_acc",
            "val_robust_balanced_acc_eps_0.05",
            "test_balanced_acc",
            "test_robust_acc_eps_0.1",
        ):
            assert key in metrics, key
        assert (
            metrics["test_robust_acc_eps_0.1"]
            <= metrics["test_robust_acc_eps_0.01"]
            <= metrics["test_clean_acc"]
        )
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"robustness_val.png", "robustness_test.png"} <= artifacts
        # The dry run's protocols run no masking checks: every trial says so, as a tag and a count.
        assert child.data.tags["masking_flags"] == "none"
        assert metrics["val_masking_flags"] == metrics["test_masking_flags"] == 0.0
        # The compute the trial held: one CPU, no GPU, for Tune's wall time of the trial.
        assert metrics["cpu_hours"] > 0 and metrics["gpu_hours"] == 0.0
        assert not any(t.startswith("masking_flag.") for t in child.data.tags)


def _brute_force_front(values: np.ndarray) -> set[int]:
    front = set()
    for i in range(len(values)):
        dominated = any(
            np.all(values[j] >= values[i]) and np.any(values[j] > values[i])
            for j in range(len(values))
            if j != i
        )
        if not dominated:
            front.add(i)
    return front


def test_pareto_tags_match_a_brute_force_check(dry_run):
    children = dry_run["children"]
    objectives = ["val_balanced_acc", "val_robust_balanced_acc_eps_0.05"]
    values = np.array([[c.data.metrics[m] for m in objectives] for c in children])
    expected = _brute_force_front(values)
    tagged = {i for i, c in enumerate(children) if c.data.tags["pareto_optimal"] == "true"}
    assert tagged == expected and tagged
    for i, c in enumerate(children):
        assert (c.data.tags["pareto_rank"] == "0") == (i in expected)


def test_parent_has_front_files_and_hypervolume(dry_run, tmp_path):
    client = dry_run["client"]
    parent = dry_run["parents"][0]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    # The interactive front is a section of report.html: one plotly.js per run, not two.
    assert {"pareto.csv", "pareto.png", "report.html", "search_space.yaml"} <= artifacts
    assert "pareto.html" not in artifacts
    local = client.download_artifacts(parent.info.run_id, "pareto.csv", str(tmp_path))
    rows = list(csv.DictReader(open(local)))
    assert len(rows) == 4
    front = {r["run_id"] for r in rows if r["pareto_rank"] == "0"}
    assert front == {c.info.run_id for c in dry_run["children"] if c.data.tags["pareto_optimal"] == "true"}
    assert {r["masking_flags"] for r in rows} == {"none"}
    # The area the trials' objectives dominate above the worst corner (0, 0), recomputed here: how
    # large it is depends on what training reached, so only its bounds are fixed.
    objectives = ["val_balanced_acc", "val_robust_balanced_acc_eps_0.05"]
    complete = [c for c in dry_run["children"] if c.data.tags["nsr_tune.state"] == "complete"]
    values = [[c.data.metrics[m] for m in objectives] for c in complete]
    reference = json.loads(parent.data.tags["hypervolume_reference"])
    assert reference == [0.0, 0.0]
    area = hypervolume(values, directions=["maximize", "maximize"], reference=reference)
    assert parent.data.metrics["hypervolume"] == pytest.approx(area, abs=1e-12)
    assert 0.0 <= area <= 1.0


def test_pareto_command_prints_the_front(dry_run, tmp_path, capsys):
    out = tmp_path / "front"
    assert main(["pareto", "--mlflow-uri", dry_run["uri"], "--experiment", "dry_run", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "val balanced_acc" in text and "test balanced_acc" in text
    assert "0 flagged for gradient masking" in text
    for child in dry_run["children"]:
        if child.data.tags["pareto_optimal"] == "true":
            assert child.info.run_name in text
    assert (out / "pareto.png").stat().st_size > 10_000 and (out / "pareto.csv").exists()
    # The finalists' table, from MLflow alone: final objectives with their intervals.
    assert "Finalists under the final protocol" in text
    assert re.search(r"final balanced_acc \[95% CI\]", text)
    assert re.search(r"\d\.\d{4} \[\d\.\d{3}, \d\.\d{3}\]", text)
    assert "test beats from 2 records" in text
    assert (out / "final_front.png").stat().st_size > 10_000


def test_a_second_study_of_the_same_name_is_refused(dry_run, capsys):
    argv = [
        "tune",
        "--dry-run",
        "--name",
        "dry",
        "--storage",
        str(dry_run["root"] / "ray"),
        "--mlflow-uri",
        dry_run["uri"],
    ]
    assert main([*argv, "--address", "local"]) == 2
    assert "a study already exists" in capsys.readouterr().err
    assert not ray.is_initialized()


def test_the_seed_reaches_the_searcher_and_every_trial_and_the_parent_run(dry_run):
    parent = dry_run["parents"][0]
    assert parent.data.params["seed"] == "3" and parent.data.params["sampler_seed"] == "3"
    assert {c.data.params["seed"] for c in dry_run["children"]} == {"3"}


def _snapshot(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*")}


def _n_runs(dry_run) -> int:
    client = dry_run["client"]
    return len(client.search_runs([client.get_experiment_by_name("dry_run").experiment_id]))


@pytest.mark.parametrize(
    ("given", "line"),
    [
        (["--num-samples", "7"], "--num-samples: the study at {path} was started with 4, given 7"),
        (["--seed", "4"], "--seed: the study at {path} was started with 3, given 4"),
        (["--name", "other"], "--name: the study at {path} was started with 'dry', given 'other'"),
        (
            ["--data-dir", "bundled"],
            "--data-dir: the study at {path} was started with '{data}', given '{bundled}'",
        ),
        (
            ["--space", "mitbih_wide"],
            "--space: the study at {path} was started with '{dry}', given '{wide}' "
            "(its text differs from the saved one)",
        ),
    ],
)
def test_resume_refuses_an_option_that_differs_from_the_study_and_writes_nothing(
    dry_run, capsys, given, line
):
    path = dry_run["path"]
    before, runs = _snapshot(path), _n_runs(dry_run)
    assert main(["tune", "--resume", str(path), *given]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = line.format(
        path=path,
        data=dry_run["data"],
        bundled=BUNDLED_DIR.resolve(),
        dry=load_space("dry_run").path,
        wide=load_space("mitbih_wide").path,
    )
    assert len(err) == 1 and err[0].startswith(f"nsr-tune: error: {expected}"), err
    assert err[0].endswith("leave it out to continue the study as it was started")
    assert _snapshot(path) == before and _n_runs(dry_run) == runs
    assert not ray.is_initialized()


def test_resume_refuses_other_records_under_the_same_path_and_writes_nothing(dry_run, capsys, tmp_path):
    path, data = dry_run["path"], dry_run["data"]
    before, runs = _snapshot(path), _n_runs(dry_run)
    # Other real records under the same path: record 232 taken away.
    moved = [shutil.move(str(f), tmp_path) for f in data.glob("232.*")]
    records = (data / "RECORDS").read_text()
    (data / "RECORDS").write_text("".join(f"{r}\n" for r in records.split() if r != "232"))
    try:
        assert main(["tune", "--resume", str(path)]) == 2
    finally:
        for f in moved:
            shutil.move(f, data)
        (data / "RECORDS").write_text(records)
    err = capsys.readouterr().err.strip().splitlines()
    saved = dry_run["parents"][0].data.tags["data_fingerprint"]
    assert len(err) == 1 and f"{saved[:16]} when it started" in err[0], err
    assert err[0].startswith(f"nsr-tune: error: --resume: the records in {data} are not the ones")
    assert _snapshot(path) == before and _n_runs(dry_run) == runs
    assert not ray.is_initialized()


# ---------------------------------------------------------------------- the finalists
# These tests read the finalize stage the dry run ran at its end; the last two finalize again
# (under other settings), so they come last.


def _refreshed(dry_run):
    client = dry_run["client"]
    exp = client.get_experiment_by_name("dry_run")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags], next(
        r for r in runs if r.data.tags.get("nsr_tune.role") == "study"
    )


def test_finalists_carry_final_metrics_intervals_and_the_final_front(dry_run, tmp_path):
    client = dry_run["client"]
    children, parent = _refreshed(dry_run)
    settings = load_space("dry_run").final.fingerprint()
    # The finalists are validation ranks 0 and 1 (the dry run's `top_ranks: 2`).
    finalists = [c for c in children if "final_settings" in c.data.tags]
    assert {c.info.run_id for c in finalists} == {
        c.info.run_id for c in children if c.data.tags["pareto_rank"] in ("0", "1")
    }
    by_trial = {c.data.tags["nsr_tune.trial_id"]: c for c in children}
    for c in finalists:
        m, tags = c.data.metrics, c.data.tags
        assert tags["final_settings"] == settings
        assert tags["final_beats"] == "100"  # 25 test beats of each of the 4 classes present
        assert (dry_run["path"] / "final" / settings / f"{tags['nsr_tune.trial_id']}.json").is_file()
        for name in ("final_balanced_acc", "final_robust_balanced_acc_eps_0.05"):
            assert 0.0 <= m[f"{name}_ci_low"] <= m[f"{name}_ci_high"] <= 1.0
        assert m["final_robust_acc_eps_0.1"] <= m["final_robust_acc_eps_0.01"] <= m["final_clean_acc"]
        assert {"final_robust_acc_apgd_ce_eps_0.05", "final_robust_acc_square_eps_0.05"} <= set(m)
        # The transfer attack ran on the study's best CE trial, never on the finalist itself.
        surrogate = tags["final_surrogate"]
        assert surrogate != tags["nsr_tune.trial_id"]
        assert by_trial[surrogate].data.params["objective.name"] == "ce"
        assert "skipped.final.transfer" not in tags
    names = ["final_balanced_acc", "final_robust_balanced_acc_eps_0.05"]
    values = np.array([[c.data.metrics[n] for n in names] for c in finalists])
    expected = _brute_force_front(values)
    for i, c in enumerate(finalists):
        assert (c.data.tags["final_pareto_optimal"] == "true") == (i in expected)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"final_front.png", "final_front.csv"} <= artifacts
    front_names = json.loads(parent.data.tags["final_front"])
    assert sorted(front_names) == sorted(finalists[i].info.run_name for i in expected)
    fell_off = json.loads(parent.data.tags["final_fell_off"])
    assert sorted(fell_off) == sorted(
        c.info.run_name
        for i, c in enumerate(finalists)
        if c.data.tags["pareto_rank"] == "0" and i not in expected
    )


def test_every_complete_trial_logs_its_model_and_evaluate_reads_it_from_mlflow(dry_run, tmp_path, capsys):
    from nsr_tune.checkpoints import load_model_file

    children, parent = _refreshed(dry_run)
    uri = dry_run["uri"]
    for c in children:
        assert c.data.tags["nsr_tune.model"] == "model/model.pt"
    child = children[0]
    out = tmp_path / "metrics.json"
    argv = ["evaluate", f"runs:/{child.info.run_id}", "--mlflow-uri", uri, "--data-dir", str(dry_run["data"])]
    argv += ["--protocol", "quick", "--eps", "0.05", "--pgd-steps", "2", "--eval-beats", "25", "--quiet"]
    assert main([*argv, "--out", str(out)]) == 0
    # The same beats (25 per class, seed 0) as the trial's own test evaluation, and the same
    # weights: the clean accuracy is exactly the one the trial reported.
    assert json.loads(out.read_text())["clean_acc"] == child.data.metrics["test_clean_acc"]
    exported = tmp_path / "model.pt"
    assert main(["export", f"runs:/{child.info.run_id}", str(exported), "--mlflow-uri", uri]) == 0
    config, _ = load_model_file(exported)
    assert config.model.name == child.data.params["model.name"]
    capsys.readouterr()
    assert main(["export", f"runs:/{parent.info.run_id}", str(tmp_path / "x.pt"), "--mlflow-uri", uri]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the run has no model (model/model.pt)" in err[0], err
    assert not (tmp_path / "x.pt").exists()


def _final_history(dry_run):
    client = dry_run["client"]
    children, _ = _refreshed(dry_run)
    return {
        c.info.run_id: len(client.get_metric_history(c.info.run_id, "final_balanced_acc"))
        for c in children
        if "final_settings" in c.data.tags
    }


def test_finalize_a_second_time_evaluates_and_logs_nothing(dry_run, capsys, monkeypatch):
    path = dry_run["path"]
    results = sorted((path / "final").rglob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in results]
    history = _final_history(dry_run)
    assert history and set(history.values()) == {1}
    monkeypatch.chdir(path.parent)
    assert main(["finalize", path.name]) == 0  # a path relative to where the user is
    out = capsys.readouterr().out
    assert f"0 finalists evaluated now, {len(history)} kept from before; 0 written to MLflow" in out
    assert _final_history(dry_run) == history
    assert sorted((path / "final").rglob("*.json")) == results
    assert [p.stat().st_mtime_ns for p in results] == stamps
    assert not ray.is_initialized()  # nothing to evaluate: Ray is not even started


def test_report_takes_a_study_path_relative_to_where_the_user_is(dry_run, tmp_path, monkeypatch, capsys):
    path = dry_run["path"]
    monkeypatch.chdir(path.parent)
    out = tmp_path / "report.html"
    assert main(["report", path.name, "--out", str(out)]) == 0
    assert f"{len(dry_run['children'])} trials" in capsys.readouterr().out
    assert "Validation front and final front" in out.read_text()


def _settled(folder: Path, *, quiet: float = 5.0, timeout: float = 60.0) -> set[str]:
    """The finalists' results in `folder` once no new one has appeared for `quiet` seconds: a Ray
    worker of the killed command lives on until its raylet notices, and may still write one."""
    seen = {p.stem for p in folder.glob("*.json")}
    still = time.monotonic()
    deadline = still + timeout
    while time.monotonic() - still < quiet:
        assert time.monotonic() < deadline, f"results still appearing in {folder}"
        time.sleep(0.2)
        now = {p.stem for p in folder.glob("*.json")}
        if now != seen:
            seen, still = now, time.monotonic()
    return seen


def test_a_killed_finalize_continues_where_it_stopped(dry_run, tmp_path, capsys):
    from nsr_tune.study.finalize import study_final_config
    from nsr_tune.study.results import read_study

    path = dry_run["path"]
    # Other settings (every complete trial a finalist, fewer resamples): a new set of results.
    given = ["--top-ranks", "9", "--bootstrap", "50"]
    settings = study_final_config(read_study(str(path)), top_ranks=9, bootstrap=50).fingerprint()
    folder = path / "final" / settings
    env = {**os.environ, "RAY_ADDRESS": "local", "OMP_NUM_THREADS": "1"}
    # One finalist at a time, so that none finishes in the moment between the first result and
    # the kill.
    proc = subprocess.Popen(
        [sys.executable, "-m", "nsr_tune.cli", "finalize", str(path), *given, "--local-cpus", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not list(folder.glob("*.json")):
        assert proc.poll() is None, "finalize ended before it could be killed"
        assert time.monotonic() < deadline, "no finalist was evaluated within 5 minutes"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and the local Ray it started
    proc.wait()
    done = _settled(folder)
    complete = {c.data.tags["nsr_tune.trial_id"] for c in dry_run["children"]}
    assert done and done <= complete

    capsys.readouterr()
    try:
        assert main(["finalize", str(path), *given, "--address", "local", "--local-cpus", "2"]) == 0
    finally:
        ray.shutdown()
    out = capsys.readouterr().out
    left = len(complete) - len(done)
    assert f"{left} finalists evaluated now, {len(done)} kept from before" in out
    assert {p.stem for p in folder.glob("*.json")} == complete
    children, parent = _refreshed(dry_run)
    assert {c.data.tags["final_settings"] for c in children} == {settings}
    assert parent.data.tags["final_settings"] == settings
