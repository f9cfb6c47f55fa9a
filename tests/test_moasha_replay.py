"""The replay benchmark (benchmarks/moasha_replay.py): exact replays of hand-made curves, and the
recorded curves it ships with."""

from __future__ import annotations

import importlib.util
import json

import pytest
from _helpers import REPO

from nsr_tune.study.moasha import RungSettings


@pytest.fixture(scope="module")
def replay_module():
    spec = importlib.util.spec_from_file_location("moasha_replay", REPO / "benchmarks" / "moasha_replay.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def curves(*trials: tuple[str, float, float]) -> dict:
    """Three-epoch trials whose rung scores and final objectives are both (a, b), 1 s per epoch."""
    return {
        "format": "nsr-tune/curves/1",
        "objectives": [["val_balanced_acc", "max"], ["val_robust_balanced_acc_eps_0.05", "max"]],
        "trials": [
            {"trial_id": t, "rung": [[a, b]] * 3, "epoch_seconds": [1.0] * 3, "final": [a, b]}
            for t, a, b in trials
        ],
    }


SETTINGS = RungSettings(grace_epochs=1, reduction_factor=3, max_epochs=3)  # one rung, after epoch 1


def test_fifo_trains_everything(replay_module) -> None:
    data = curves(("A", 0.5, 0.5), ("B", 0.1, 0.1), ("C", 0.6, 0.6))
    done, spent, wall, stopped = replay_module.replay(data, [0, 1, 2], settings=None, workers=2)
    assert (sorted(done), spent, wall, stopped) == ([0, 1, 2], 9, 6.0, {})
    assert replay_module.front_hypervolume(data, done) == pytest.approx(0.36)


@pytest.mark.parametrize(("workers", "wall"), [(1, 7.0), (2, 4.0)])
def test_moasha_stops_the_dominated_trial(replay_module, workers: int, wall: float) -> None:
    # A reaches the rung alone and goes on; B, dominated, is second of two: stopped after one
    # epoch; C dominates both: first of three, goes on. With two workers C starts when B stops.
    data = curves(("A", 0.5, 0.5), ("B", 0.1, 0.1), ("C", 0.6, 0.6))
    done, spent, got_wall, stopped = replay_module.replay(data, [0, 1, 2], settings=SETTINGS, workers=workers)
    assert (sorted(done), spent, got_wall, stopped) == ([0, 2], 7, wall, {"B": 1})
    assert replay_module.front_hypervolume(data, done) == pytest.approx(0.36)


def test_the_shipped_curves_replay(replay_module, capsys) -> None:
    data = json.loads((REPO / "benchmarks" / "moasha_curves.json").read_text())
    assert data["format"] == "nsr-tune/curves/1" and len(data["trials"]) >= 24
    assert all(len(t["rung"]) == len(t["epoch_seconds"]) == 9 for t in data["trials"])
    assert replay_module.main(["--orders", "20"]) == 0
    out = capsys.readouterr().out
    fifo_epochs = sum(len(t["rung"]) for t in data["trials"])
    assert f"| FIFO | {fifo_epochs} |" in out
    assert "hypervolume" in out and "MO-ASHA / FIFO" in out
