"""Bad input on the command line: every case is refused before any work, with its exit code, one
line on stderr that names what the user typed, no traceback, and nothing written where nothing
should be. Each case runs in a fresh working directory whose listing must not change.

A model file for the commands that read one is an untrained model, written outside that
directory: building one trains nothing.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from nsr_tune.checkpoints import save_model_file
from nsr_tune.cli import main
from nsr_tune.config import TrialConfig
from nsr_tune.trial import check_trial, new_model

RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Files the cases read: a model, a foreign torch file, one that needs unpickling, a run already
    in a directory, and a closed local port (a tracking server that is down)."""
    d = tmp_path_factory.mktemp("inputs")
    config = check_trial(TrialConfig())
    save_model_file(d / "model.pt", config=config, model=new_model(config))
    torch.save({"weights": torch.zeros(3)}, d / "foreign.pt")
    torch.save({"format": "nsr-tune/model/1", "obj": object()}, d / "evil.pt")  # needs unpickling
    (d / "done").mkdir()
    (d / "done" / "model.pt").write_bytes((d / "model.pt").read_bytes())
    (d / "a-file").write_text("not a directory")
    with socket.socket() as s:  # a port nothing listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {
        "model": str(d / "model.pt"),
        "foreign": str(d / "foreign.pt"),
        "evil": str(d / "evil.pt"),
        "done": str(d / "done"),
        "a_file": str(d / "a-file"),
        "down": f"http://127.0.0.1:{port}",
        "nstdb": str(Path(__file__).resolve().parents[2] / "shared" / "data" / "nstdb"),
        "mitdb": str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mitdb"),
    }


TRAIN = ["train", "--data-dir", "bundled", "--epochs", "1"]
# (argv with {placeholders} from `files`, the exit code, what the one line must say)
CASES = [
    # The cases found by hand.
    ([*TRAIN, "--out", "/proc/x"], 2, "--out: /proc/x cannot be written"),
    (["evaluate", "{model}", "--out", "/proc/x/s.json"], 2, "--out: /proc/x/s.json cannot be written"),
    ([*TRAIN, "--out", "o", "--device", "cuda"], 2, "--device: cuda is not available here"),
    ([*TRAIN, "--out", "{done}"], 2, "--out: {done} holds a run already (model.pt)"),
    (["evaluate", "runs:/../../etc"], 2, "runs:/../../etc: '..' is not an MLflow run id"),
    (["pareto", "--experiment", "dry_run"], 2, "--mlflow-uri: there is no MLflow store at"),
    (["export", f"runs:/{RUN_ID}/../../../../etc/passwd", "m.pt"], 2, "leaves the run"),
    (["export", f"runs:/{RUN_ID}", "m.pt", "--mlflow-uri", "{down}"], 2, "cannot be reached"),
    (["evaluate", "{evil}"], 2, "MODEL_FILE: {evil}: not an nsr-tune file, or damaged (UnpicklingError)"),
    (
        [*TRAIN, "--out", "o", "--objective", "ce", "--beta", "5"],
        2,
        "--beta: the ce objective has no regulariser",
    ),
    ([*TRAIN, "--out", "o", "--eval-beats", "0"], 2, "--eval-beats: must be a positive integer, got 0"),
    # More of the same kinds.
    (["evaluate", "{foreign}"], 2, "MODEL_FILE: {foreign}: expected an nsr-tune file"),
    (["evaluate", "not-a-model.pt"], 2, "MODEL_FILE: not-a-model.pt: no such model file"),
    ([*TRAIN, "--out", "o", "--nsr-eps", "0.1"], 2, "--nsr-eps: the ce objective has no NSR term"),
    ([*TRAIN, "--out", "o", "--focal-gamma", "1"], 2, "--focal-gamma: applies to focal, not to ce"),
    ([*TRAIN, "--out", "o", "--objective", "nsr", "--beta", "-1"], 2, "--beta: must be >= 0.0"),
    ([*TRAIN, "--out", "o", "--epochs", "0"], 2, "--epochs: must be a positive integer"),
    ([*TRAIN, "--out", "o", "--knob", "depth=2"], 2, "--knob depth: not a knob of 'cnn'"),
    ([*TRAIN, "--out", "o", "--leads", "all"], 2, "--leads: is a setting of cpsc2018, not of mitbih"),
    ([*TRAIN, "--out", "o", "--model", "resnet18"], 2, "--model: 'resnet18' is not offered for mitbih"),
    ([*TRAIN, "--out", "o", "--eps", "0.01,abc"], 2, "argument --eps: expected noise levels"),
    # Datasets named by a path, and plugins (more in tests/test_plugins.py).
    (
        [*TRAIN, "--out", "o", "--dataset", "csv:missing.csv"],
        2,
        "--dataset: csv:{cwd}/missing.csv: no such file",
    ),
    (
        [*TRAIN, "--out", "o", "--dataset", "wfdb:{mitdb}", "--lead", "V1"],
        2,
        "--lead: record 100 in {mitdb} has no signal 'V1'; its signals are MLII, V5",
    ),
    ([*TRAIN, "--out", "o", "--lead", "V1"], 2, "--lead: is a setting of wfdb:, not of mitbih"),
    (
        [*TRAIN, "--out", "o", "--model", "mypkg.nets:WideCNN"],
        2,
        "model 'mypkg.nets:WideCNN': cannot import mypkg.nets (No module named 'mypkg')",
    ),
    ([*TRAIN, "--out", "o", "--plugin-path", "nowhere"], 2, "--plugin-path: nowhere is not a directory"),
    (
        [*TRAIN, "--out", "o", "--protocol", "strong", "--pgd-steps", "5"],
        2,
        "--pgd-steps: configures the pgd",
    ),
    (
        [*TRAIN, "--out", "o", "--surrogate", "{model}"],
        2,
        "--surrogate: the protocol runs no transfer attack",
    ),
    ([*TRAIN, "--out", "o", "--nstdb", "{nstdb}"], 2, "--nstdb: the standard protocol runs no noise stress"),
    ([*TRAIN, "--out", "o", "--resume", "{foreign}"], 2, "--resume: {foreign}: expected an nsr-tune file"),
    ([*TRAIN, "--out", "{a_file}"], 2, "--out: {a_file} exists and is not a directory"),
    (["evaluate", "{model}", "--dataset", "cpsc2018"], 2, "--dataset: the model was trained on mitbih"),
    (["evaluate", "{model}", "--split", "records"], 2, "--split: must be one of inter, intra"),
    (["evaluate", "{model}", "--beats", "beats.json"], 2, "--beats: beats.json must end in .npz"),
    (["evaluate", "{model}", "--beats", "/proc/x/b.npz"], 2, "--beats: /proc/x/b.npz cannot be written"),
    (["export", "{model}", "."], 2, "OUT: . is a directory"),
    (["tune", "--space", "nope"], 2, "--space: nope: no such file, and not a shipped space"),
    (["tune", "--time-budget", "-5"], 2, "argument --time-budget: expected a duration"),
    (["finalize", "/nonexistent/study"], 2, "/nonexistent/study: no nsr-tune study here"),
    (["report"], 2, "EXPERIMENT_PATH: name the study by its path"),
    (["report", "--experiment", "dry_run"], 2, "--mlflow-uri: there is no MLflow store at"),
    (["report", "/some/study", "--experiment", "dry_run"], 2, "--experiment: name the study by its path or"),
    (["data", "summary", "--data-dir", "/nonexistent/mitdb"], 2, "/nonexistent/mitdb"),
    (["finalize", "/nonexistent/study", "--protocol", "thorough"], 2, "argument --protocol: invalid choice"),
]


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    ("argv", "code", "says"), CASES, ids=[" ".join(c[0][:3]) + f" {i}" for i, c in enumerate(CASES)]
)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(
    argv, code, says, files, tmp_path, monkeypatch, capsys
):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    files = {**files, "cwd": str(work)}
    argv = [a.format(**files) for a in argv]
    around = {Path(f) for key, f in files.items() if key in ("done",)}
    before = _listing(work), {p: _listing(p) for p in around}
    try:
        returned = main(argv)
    except SystemExit as e:  # argparse's own refusals exit
        returned = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert returned == code, err
    assert len(lines) == 1, err
    assert says.format(**files) in lines[0]
    assert lines[0].startswith("nsr-tune"), lines[0]
    assert "Traceback" not in err and "weights_only" not in err
    assert (_listing(work), {p: _listing(p) for p in around}) == before
