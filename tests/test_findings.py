"""The findings page's command, benchmarks/findings.py: its quick mode on the bundled records end
to end (runs, JSON, figures, page), its incremental rebuild, its refusals, and the interval it
puts on every headline (a bootstrap over records shared by the seeds), on exact values.

The quick mode measures nothing (one epoch, a few beats, the cheap protocol): it checks that the
page can be rebuilt, not what the page says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nsr_tune.results.bootstrap import BeatOutcomes

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "findings.py"
sys.path.insert(0, str(REPO / "benchmarks"))

from _findings.stats import seed_mean  # noqa: E402

WITH_NUMBERS = ("intra_curves", "paper_number", "inter_table", "inter_strong", "moasha", "qrs")
ORDER = ("intra_curves", "paper_number", "inter_table", "inter_strong", "cpsc", "study", "moasha", "qrs")
WITH_FIGURE = ("intra_curves", "inter_table", "inter_strong", "moasha")
NOT_IN_QUICK = ("cpsc", "study")  # no bundled CPSC2018 records; the dry run is the quick study


def _build(out: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, str(SCRIPT), "--quick", "--out", str(out), "--runs", str(out / "runs"), *extra]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("findings")
    return out, _build(out)


@pytest.mark.slow
def test_quick_mode_writes_every_finding_its_figure_and_the_page(built) -> None:
    out, done = built
    assert done.returncode == 0, done.stderr[-3000:]
    page = (out / "results.md").read_text()
    assert [line for line in page.splitlines() if re.match(r"## \d+\. ", line)] == [
        f"## {k}. {json.loads((out / 'results' / f'{n}.json').read_text())['title']}"
        for k, n in enumerate(ORDER, 1)
    ]
    for name in WITH_NUMBERS:
        result = json.loads((out / "results" / f"{name}.json").read_text())
        assert result["numbers"]["verdict"] in page
        assert result["missing"] == [] and result["runs"], name
        assert all(r["seconds"] > 0 and r["threads"] == 1 for r in result["runs"])
    for name in WITH_FIGURE:
        assert (out / "results" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](results/{name}.png)" in page
    for name in NOT_IN_QUICK:
        result = json.loads((out / "results" / f"{name}.json").read_text())
        assert result["numbers"] is None and result["runs"] == []
    assert page.count("**Not run yet**") == len(NOT_IN_QUICK)
    assert "## What holds of the paper's claims" in page


@pytest.mark.slow
def test_a_second_build_runs_nothing_and_one_changed_run_rebuilds_only_its_finding(built) -> None:
    out, first = built
    assert first.returncode == 0, first.stderr[-3000:]
    before = {p.name: p.read_bytes() for p in (out / "results").iterdir()}
    again = _build(out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert " start " not in again.stderr
    assert {p.name: p.read_bytes() for p in (out / "results").iterdir()} == before
    (out / "runs" / "moasha" / "run.json").unlink()
    third = _build(out, "--only", "moasha")
    assert third.returncode == 0, third.stderr[-3000:]
    assert [ln.split(" start ")[1].split(":")[0] for ln in third.stderr.splitlines() if " start " in ln] == [
        "moasha"
    ]
    for name in WITH_NUMBERS:
        changed = (out / "results" / f"{name}.json").read_bytes() != before[f"{name}.json"]
        assert changed == (name == "moasha"), name


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--only", "intra,moasha"], "--only: unknown finding(s) intra"),
        (["--jobs", "0"], "--jobs: must be at least 1, got 0"),
        (["--data", "/nonexistent"], "--data: /nonexistent holds no mitdb/RECORDS"),
        (["--quick", "--skip", "intra-ce-s9"], "--skip: no run named intra-ce-s9 in these findings"),
    ],
)
def test_bad_arguments_are_refused_in_one_line_before_any_run(tmp_path: Path, argv, says) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--runs", str(tmp_path / "runs"), *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert says in done.stderr.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []


def test_the_plan_lists_every_run_of_a_finding_and_runs_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--plan", "--only", "paper_number", "--runs", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "paper_number:"
    # NSR and CE, seed 0: two models, each evaluated twice at the paper's eps.
    assert sum("] intra-" in ln for ln in lines) == 2
    assert sum("-paper-" in ln and "--eps 0.1 " in ln for ln in lines) == 4
    assert list(tmp_path.iterdir()) == []


def _outcomes(record: list[str], y: list[int], correct: list[bool]) -> tuple[BeatOutcomes, tuple[float, ...]]:
    hit = np.array(correct)
    beats = BeatOutcomes(
        record=np.array(record), y=np.array(y), clean_correct=hit, survived=hit[None, :] & False
    )
    return beats, (0.05,)


def test_the_seed_mean_and_its_record_bootstrap_on_exact_values() -> None:
    # Seed 1: record a 1 of 2 right, b 2 of 2 (0.75). Seed 2: a 1 of 1, b 0 of 1 (0.5).
    one = _outcomes(["a", "a", "b", "b"], [0, 0, 0, 0], [True, False, True, True])
    two = _outcomes(["a", "b"], [0, 0], [True, False])
    est = seed_mean([one, two], eps=None)
    assert est.seeds == (0.75, 0.5)
    assert est.value == 0.625
    # Three resamples exist: {a, a} -> (0.5 + 1.0) / 2, {b, b} -> (1.0 + 0.0) / 2, {a, b} -> 0.625,
    # drawn 1/4, 1/4, 1/2 of the time: the 95% interval runs from the one to the other.
    assert (est.low, est.high) == (0.5, 0.75)
    robust = seed_mean([one, two], eps=0.05)
    assert (robust.value, robust.low, robust.high) == (0.0, 0.0, 0.0)


def test_balanced_accuracy_averages_the_recall_of_the_classes_present() -> None:
    # Class 0: 1 of 2 right, class 1: 1 of 1: balanced 0.75, where plain accuracy is 2/3.
    one = _outcomes(["a", "a", "a"], [0, 0, 1], [True, False, True])
    assert seed_mean([one], eps=None, balanced=("N", "S")).value == 0.75
    assert seed_mean([one], eps=None).value == pytest.approx(2 / 3)


def test_beat_outcomes_survive_the_npz_file(tmp_path: Path) -> None:
    beats = BeatOutcomes(
        record=np.array([100, 100, 232]),
        y=np.array([0, 1, 1]),
        clean_correct=np.array([True, True, False]),
        survived=np.array([[True, False, False], [False, False, False]]),
        pred=np.array([0, 1, 0]),
        robust_pred=np.array([[0, 0, 0], [2, 0, 0]]),
    )
    np.savez(tmp_path / "b.npz", **beats.to_arrays(eps=(0.01, 0.05)))
    with np.load(tmp_path / "b.npz") as arrays:
        back, eps = BeatOutcomes.from_arrays(dict(arrays))
    assert eps == (0.01, 0.05)
    assert back.record.tolist() == ["100", "100", "232"] and back.classes == beats.classes
    for field in ("y", "clean_correct", "survived", "pred", "robust_pred"):
        np.testing.assert_array_equal(getattr(back, field), getattr(beats, field))
