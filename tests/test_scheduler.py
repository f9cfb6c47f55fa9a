"""MO-ASHA in a study: the space's `search.scheduler`, the rung scores a trial reports, the searcher
told of stopped trials, and a real Ray study whose scheduler stops the dominated trial."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import ray
from _helpers import tiny_space
from mlflow.tracking import MlflowClient

from nsr_tune.cli import main
from nsr_tune.config import DataConfig, EvalConfig, ModelConfig, OptimConfig, TrialConfig
from nsr_tune.data import BUNDLED_DIR, load_mitbih, make_splits
from nsr_tune.errors import ConfigError, SpaceError
from nsr_tune.study.moasha import Rungs
from nsr_tune.study.results import read_rungs, read_study
from nsr_tune.study.scheduler import StudySearch
from nsr_tune.study.space import parse_space
from nsr_tune.trial import run_trial

MOASHA = {"name": "moasha", "grace_epochs": 1, "reduction_factor": 3}


def test_the_space_sets_rungs_and_their_cheap_protocol() -> None:
    text = tiny_space("s", epochs=10, extra={"search": {"scheduler": {**MOASHA, "rung_beats": 7}}})
    space = parse_space(text)
    assert space.scheduler.epochs == (1, 3, 9)
    ev = space.rung_eval
    # The default objectives (balanced accuracy and robust balanced accuracy at 0.05): PGD at 0.05
    # only, on 7 beats per class, with no extras.
    assert (ev.eps, ev.attacks, ev.per_class_cap, ev.steps) == ((0.05,), ("pgd",), 7, 2)
    assert (ev.bisect_steps, ev.check_masking, ev.noise_stress) == (0, False, False)
    config = TrialConfig.from_dict(space.define_by_run(optuna.trial.FixedTrial({}))["trial_config"])
    assert config.rung_epochs == (1, 3, 9) and config.rung_eval == ev
    # Without a scheduler a trial has no rungs.
    plain = parse_space(tiny_space("p", epochs=10))
    assert plain.scheduler is None
    assert (
        TrialConfig.from_dict(plain.define_by_run(optuna.trial.FixedTrial({}))["trial_config"]).rung_epochs
        == ()
    )


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ({"name": "asha"}, r"search\.scheduler\.name: must be one of none, moasha, got 'asha'"),
        (
            {**MOASHA, "max_epochs": 4},
            r"search\.scheduler\.max_epochs: is 4, but every trial trains optim\.epochs = 10",
        ),
        ({**MOASHA, "reduction_factor": 1}, r"scheduler\.reduction_factor: must be >= 2, got 1"),
        ({**MOASHA, "patience": 2}, r"search\.scheduler"),
        ({"name": "none", "grace_epochs": 2}, r"search\.scheduler\.grace_epochs: is a setting of moasha"),
        ({**MOASHA, "rung_beats": 0}, r"search\.scheduler\.rung_beats"),
    ],
)
def test_a_bad_scheduler_is_refused_naming_the_key(scheduler: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        parse_space(tiny_space("s", epochs=10, extra={"search": {"scheduler": scheduler}}))


@pytest.mark.slow
def test_rung_scores_are_reported_at_rung_epochs_only() -> None:
    beats, _ = load_mitbih(BUNDLED_DIR)
    data = make_splits(beats, split="inter")
    rung_eval = EvalConfig(eps=(0.05,), steps=2, per_class_cap=5, bisect_steps=0)
    config = TrialConfig(
        data=DataConfig(split="inter", max_train_beats=300),
        model=ModelConfig(name="mlp"),
        optim=OptimConfig(epochs=3, batch_size=64),
        test_eval=None,
        rung_epochs=(1, 2),
        rung_eval=rung_eval,
    )
    results = list(run_trial(config, data))
    rung_keys = [sorted(k for k in r.metrics if k.startswith("rung_")) for r in results]
    assert "rung_balanced_acc" in rung_keys[0] and "rung_robust_balanced_acc_eps_0.05" in rung_keys[0]
    assert rung_keys[0] == rung_keys[1] and rung_keys[2] == []
    # None of them is a final objective: those come from val_eval after the last epoch alone.
    assert not any(k.startswith("val_") for r in results for k in r.metrics)
    with pytest.raises(ConfigError, match="rung_eval: is needed exactly when there are rung_epochs"):
        TrialConfig(rung_epochs=(1,))
    with pytest.raises(ConfigError, match="rung_epochs: must be a list of epochs >= 1"):
        TrialConfig(rung_epochs=(0,), rung_eval=rung_eval)


def test_the_searcher_hears_of_a_stopped_trial_as_pruned() -> None:
    searcher = StudySearch(
        space={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
        metric=["a", "b"],
        mode=["max", "max"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    for trial_id in ("stopped", "done", "broken"):
        assert searcher.suggest(trial_id) is not None
    searcher.on_trial_complete("stopped", result={"epoch": 1, "rung_a": 0.1, "done": True})
    searcher.on_trial_complete("done", result={"a": 0.5, "b": 0.4})
    searcher.on_trial_complete("broken", result={"epoch": 1}, error=True)
    states = [t.state for t in searcher._ot_study.trials]
    assert states == [
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.FAIL,
    ]
    searcher.stop_suggesting = True
    assert searcher.suggest("later") == StudySearch.FINISHED


@pytest.mark.slow
def test_a_study_stops_the_dominated_trial_at_its_rung(tmp_path: Path) -> None:
    """Three trials one at a time: trained, untrained (lr 1e-9), trained again (the same config,
    so the same scores). Validation beats come from the training records (`intra`), so one epoch
    of training beats the untrained model on both objectives. At the rung after epoch 1 the
    untrained trial, dominated and second of two, is outside the top third: stopped. The third
    ties the first on the front and is second of three: it goes on."""
    good, bad = {"optim.lr": 0.01}, {"optim.lr": 1e-9}
    text = tiny_space(
        "sched",
        models=("mlp",),
        epochs=2,
        max_train_beats=2000,
        num_samples=3,
        max_concurrent=1,
        extra={
            "data": {"split": "intra"},
            "optim": {"lr": {"choice": [0.01, 1e-9]}},
            "search": {
                "scheduler": {**MOASHA, "rung_beats": 20},
                "objectives": [
                    {"metric": "val_balanced_acc", "mode": "max"},
                    {"metric": "val_macro_f1", "mode": "max"},
                ],
                "start_with": [good, bad, good],
            },
        },
    )
    space = tmp_path / "sched.yaml"
    space.write_text(text)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["tune", "--space", str(space), "--name", "sched", "--storage", str(tmp_path / "ray")]
    argv += ["--mlflow-uri", uri, "--data-dir", "bundled", "--address", "local", "--local-cpus", "2"]
    try:
        assert main(argv) == 0
    finally:
        ray.shutdown()

    path = str(tmp_path / "ray" / "sched")
    record = read_study(path)
    trials = sorted(record.trials, key=lambda t: t.results[0]["timestamp"])  # in the order they ran
    assert [t.config["optim"]["lr"] for t in trials] == [0.01, 1e-9, 0.01]
    names = ("rung_balanced_acc", "rung_macro_f1")
    rung = [tuple(t.results[0][k] for k in names) for t in trials]
    # The premise, from the scores the trials reported: the untrained one is dominated.
    assert all(a > b for a, b in zip(rung[0], rung[1], strict=True)), rung
    assert rung[2] == rung[0]
    assert [t.state for t in trials] == ["complete", "stopped_early", "complete"]
    assert trials[1].stopped_at == 1 and len(trials[1].results) == 1
    # The rung record beside the study holds all three, and it decides as the scheduler did.
    saved = Rungs.from_dict(read_rungs(path))
    assert list(saved.recorded[1]) == [t.trial_id for t in trials]
    assert saved.stopped == {trials[1].trial_id: 1}
    assert json.loads((Path(path) / "moasha_rungs.jsonl").read_text())["format"] == "nsr-tune/moasha/1"

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("sched").experiment_id])
    children = {r.data.tags["nsr_tune.trial_id"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    stopped = children[trials[1].trial_id]
    assert stopped.data.tags["nsr_tune.state"] == "stopped_early"
    assert stopped.data.tags["stopped_at_epoch"] == "1"
    assert "val_balanced_acc" not in stopped.data.metrics  # no partly trained objective
    assert stopped.data.tags.get("pareto_optimal") != "true"
    for run in children.values():
        assert run.data.metrics["cpu_hours"] > 0 and run.data.metrics["gpu_hours"] == 0
    for t in (trials[0], trials[2]):
        assert children[t.trial_id].data.tags["nsr_tune.state"] == "complete"


@pytest.mark.slow
def test_a_time_budget_starts_no_trial_after_it(tmp_path: Path) -> None:
    text = tiny_space("budget", models=("mlp",), num_samples=4, max_concurrent=1)
    space = tmp_path / "budget.yaml"
    space.write_text(text)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["tune", "--space", str(space), "--name", "budget", "--storage", str(tmp_path / "ray")]
    argv += ["--mlflow-uri", uri, "--data-dir", "bundled", "--address", "local", "--local-cpus", "2"]
    try:
        # One second: the first trial starts at once; it takes longer than that, so no other does.
        assert main([*argv, "--time-budget", "1s"]) == 0
    finally:
        ray.shutdown()
    record = read_study(str(tmp_path / "ray" / "budget"))
    assert [t.state for t in record.trials] == ["complete"]


def test_a_bad_time_budget_is_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["tune", "--dry-run", "--time-budget", "soon"])
    assert (
        "--time-budget: expected a duration such as 2h, 90m or 3600s, got 'soon'" in capsys.readouterr().err
    )


def test_a_restarted_driver_judges_against_the_saved_rungs(tmp_path: Path) -> None:
    """The scheduler a resumed study unpickles starts empty; it reads the rung record the driver
    left before it decides, so a trial is judged against the trials that reached the rung before
    the restart."""
    from types import SimpleNamespace

    from nsr_tune.study.moasha import RungSettings
    from nsr_tune.study.results import write_rungs
    from nsr_tune.study.scheduler import MOASHAScheduler

    objectives = ["val_balanced_acc", "val_robust_balanced_acc_eps_0.05"]
    before = Rungs(settings=RungSettings(max_epochs=9), modes=("max", "max"))
    before.decide("early", 1, (0.8, 0.4))
    write_rungs(str(tmp_path), before.to_dict())
    fresh = MOASHAScheduler(
        rungs=Rungs(settings=RungSettings(max_epochs=9), modes=("max", "max")),
        objectives=objectives,
        experiment_path=str(tmp_path),
    )
    report = {"epoch": 1, "rung_balanced_acc": 0.5, "rung_robust_balanced_acc_eps_0.05": 0.2}
    # Dominated by the trial recorded before the restart, second of two: stopped.
    assert fresh.on_trial_result(None, SimpleNamespace(trial_id="late"), report) == "STOP"
    assert read_rungs(str(tmp_path))["stopped"] == {"late": 1}
    # Epochs that are not rungs, and the final report, are never judged.
    assert fresh.on_trial_result(None, SimpleNamespace(trial_id="x"), {**report, "epoch": 2}) == "CONTINUE"
    assert fresh.on_trial_result(None, SimpleNamespace(trial_id="y"), {**report, "final": True}) == "CONTINUE"


@pytest.mark.slow
def test_the_rung_record_survives_a_killed_driver(tmp_path: Path) -> None:
    """The driver (and its Ray) killed once two trials have passed the first rung; `--resume`
    restores the record and judges the later trials against those two, and the record kept
    beside the study ends up holding every trial (Tune restores and re-uploads the experiment's
    .json files on resume, so a record kept as .json would be put back to what it was at the kill)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from _helpers import REPO

    text = tiny_space(
        "rs",
        models=("mlp",),
        epochs=3,
        max_train_beats=2000,
        num_samples=5,
        max_concurrent=1,
        extra={
            "data": {"split": "intra"},
            "optim": {"lr": {"float": [1e-6, 1e-2], "log": True}},
            "search": {
                "scheduler": {"name": "moasha", "grace_epochs": 1, "reduction_factor": 2, "rung_beats": 20}
            },
        },
    )
    space = tmp_path / "rs.yaml"
    space.write_text(text)
    experiment = tmp_path / "ray" / "rs"
    start = [
        sys.executable,
        str(REPO / "tune.py"),
        "--space",
        str(space),
        "--data-dir",
        "bundled",
        "--name",
        "rs",
    ]
    start += ["--storage", str(tmp_path / "ray"), "--mlflow-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    env = {**os.environ, "RAY_ADDRESS": "local", "TUNE_RESULT_BUFFER_LENGTH": "1"}
    driver = subprocess.Popen(
        [*start, "--local-cpus", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    try:
        while len((read_rungs(str(experiment)) or {"recorded": {}})["recorded"].get("1", {})) < 2:
            assert driver.poll() is None, "the study ended before it could be killed"
            assert time.monotonic() < deadline, "no two trials reached the first rung within 10 minutes"
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
        driver.wait()
    before = list(read_rungs(str(experiment))["recorded"]["1"])
    assert 2 <= len(before) < 5

    resumed = subprocess.run(
        [sys.executable, str(REPO / "tune.py"), "--resume", str(experiment)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "MO-ASHA: rung record restored" in resumed.stderr
    record = read_study(str(experiment))
    after = Rungs.from_dict(read_rungs(str(experiment)))
    # Every trial is at the first rung, the ones judged before the kill first, in their order.
    assert list(after.recorded[1])[: len(before)] == before
    assert set(after.recorded[1]) == {t.trial_id for t in record.trials}
    assert {t.trial_id: t.stopped_at for t in record.trials if t.stopped_at} == after.stopped
