"""Ctrl-C: a command ends with exit code 130 and one line that says what was kept and the exact
command that goes on from there; that command does."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _sigint_as_in_a_terminal() -> None:
    # A shell starts background jobs (CI runners among them) with SIGINT ignored, and a child
    # inherits that: give the command the handling it has when a user runs it and presses Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"}
    return subprocess.Popen(
        [sys.executable, "-m", "nsr_tune.cli", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_as_in_a_terminal,
    )


def _interrupt_when(proc: subprocess.Popen, ready, *, timeout: float = 300) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"never got there (exit {proc.returncode}):\n{err[-3000:]}")
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_ctrl_c_during_train_keeps_the_checkpoint_and_says_how_to_resume(tmp_path):
    argv = [
        "train", "--data-dir", "bundled", "--epochs", "30", "--max-train-beats", "400",
        "--eps", "0.01", "--eval-beats", "5", "--pgd-steps", "2", "--out", "run", "-q",
    ]  # fmt: skip
    proc = _start(argv, tmp_path)
    code, err = _interrupt_when(proc, lambda: (tmp_path / "run" / "checkpoint.pt").is_file())
    last = err.strip().splitlines()[-1]
    assert code == 130, err[-3000:]
    assert last.startswith("nsr-tune: interrupted; kept run/checkpoint.pt after epoch "), last
    assert "Traceback" not in err
    command = last.split("continue with: ", 1)[1]
    assert command.endswith("--resume run/checkpoint.pt")
    assert not (tmp_path / "run" / "model.pt").exists()  # nothing of a finished run yet
    # The command it gives goes on from the checkpoint, to the end (with fewer epochs to wait for:
    # the same run, by the same checkpoint, refuses any other config).
    resumed = subprocess.run(
        [sys.executable, "-m", "nsr_tune.cli", *shlex.split(command)[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch" in resumed.stderr
    assert (tmp_path / "run" / "model.pt").is_file() and (tmp_path / "run" / "metrics.json").is_file()


def test_ctrl_c_during_a_study_says_how_to_resume_it(tmp_path):
    argv = ["tune", "--dry-run", "--storage", str(tmp_path / "ray"), "--name", "s", "--local-cpus", "2"]
    proc = _start(argv, tmp_path)
    study = tmp_path / "ray" / "s"
    code, err = _interrupt_when(proc, lambda: any(study.glob("trial_*/checkpoint_*")))
    # Ray's workers may still print after the driver's last line: look for the driver's.
    said = [line for line in err.splitlines() if line.startswith("nsr-tune: interrupted")]
    assert code == 130, err[-3000:]
    assert said == [
        f"nsr-tune: interrupted; the study so far is kept at {study} (finished trials, checkpoints, "
        f"MLflow runs); continue with: nsr-tune tune --resume {study}"
    ]
    assert (study / "tuner.pkl").is_file() and (study / "nsr_tune_study.json").is_file()
