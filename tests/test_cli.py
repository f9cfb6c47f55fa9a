"""The `nsr-tune` command end to end on the bundled real records."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nsr_tune._io import numbers
from nsr_tune.cli import main
from tests.conftest import SHARED_DATA

QUICK = [
    "--epochs",
    "1",
    "--max-train-beats",
    "1200",
    "--eval-beats",
    "10",
    "--eps",
    "0.01,0.05",
    "--pgd-steps",
    "3",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    argv = ["train", "--data-dir", "bundled", "--model", "cnn", "--objective", "nsr", "--beta", "0.3", "-q"]
    assert main([*argv, *QUICK, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_train_writes_metrics_and_model(trained):
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    # Strict JSON, as JSON.parse and jq read it: no NaN, no Infinity.
    metrics = json.loads((trained / "metrics.json").read_text(), parse_constant=refuse)
    for key in ("clean_acc", "balanced_acc", "robust_acc", "noise_acc", "robust_auc", "per_class"):
        assert key in metrics, key
    assert set(metrics["robust_acc"]) == {"0.01", "0.05"}
    assert metrics["robust_acc"]["0.05"] <= metrics["robust_acc"]["0.01"] <= metrics["clean_acc"]
    assert metrics["config"]["objective"] == {
        "name": "nsr",
        "beta": 0.3,
        "nsr_eps": 1.0,
        "at_eps": 0.05,
        "at_steps": 10,
        "focal_gamma": 2.0,
        "params": {},
    }
    state = torch.load(trained / "model.pt", weights_only=True)
    assert state["format"] == "nsr-tune/model/1"


@pytest.mark.slow
def test_evaluate_reproduces_the_training_evaluation(trained, tmp_path, capsys):
    out = tmp_path / "again.json"
    argv = ["evaluate", str(trained / "model.pt"), "--data-dir", "bundled", "-q", "--out", str(out)]
    assert main([*argv, "--eval-beats", "10", "--eps", "0.01,0.05", "--pgd-steps", "3"]) == 0
    first = json.loads((trained / "metrics.json").read_text())
    again = json.loads(out.read_text())
    for key in ("clean_acc", "balanced_acc", "robust_acc", "noise_acc", "robust_auc"):
        assert again[key] == first[key], key
    assert "robust" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_under_the_strong_protocol_writes_the_cascade_and_each_attacks_accuracy(trained, tmp_path):
    out = tmp_path / "strong.json"
    argv = ["evaluate", str(trained / "model.pt"), "--data-dir", "bundled", "-q", "--out", str(out)]
    argv += [
        "--protocol",
        "strong",
        "--eval-beats",
        "4",
        "--eps",
        "0.05",
        "--attacks",
        "apgd_ce,square,transfer",
    ]
    # The surrogate is the same weights, loaded again: a separate model, as the transfer attack needs.
    argv += ["--surrogate", str(trained / "model.pt"), "--nstdb", str(SHARED_DATA / "nstdb"), "--each-attack"]
    assert main(argv) == 0
    result = numbers(json.loads(out.read_text()))  # strict JSON: "inf" where most beats survive
    assert result["attack"].startswith("APGD-CE-100 -> Square-1000q -> transfer(PGD-20 CE on a surrogate)")
    by = result["robust_acc_by_attack"]
    assert list(by) == list(result["robust_acc_alone"]) == ["apgd_ce", "square", "transfer"]
    final, after_apgd = by["transfer"]["0.05"], by["apgd_ce"]["0.05"]
    assert result["robust_acc"]["0.05"] == final <= after_apgd <= result["clean_acc"]
    assert result["skipped"] == {}
    assert {"bw_snr_6db", "ma_100uv", "powerline_60hz_snr_0db", "white_500uv"} <= set(result["noise_stress"])
    assert set(result["robust_acc_by_class"]) <= set("NSVFQ")
    assert result["median_adv_eps"] > 0


@pytest.mark.slow
def test_a_surrogate_needs_a_protocol_with_the_transfer_attack(trained, capsys):
    argv = ["evaluate", str(trained / "model.pt"), "--data-dir", "bundled", "-q"]
    assert main([*argv, "--surrogate", str(trained / "model.pt")]) == 2
    assert "--surrogate: the protocol runs no transfer attack (pgd)" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_from_a_finished_checkpoint_trains_nothing(trained, tmp_path):
    argv = ["train", "--data-dir", "bundled", "--objective", "nsr", "--beta", "0.3", "-q", *QUICK]
    assert main([*argv, "--out", str(tmp_path / "r"), "--resume", str(trained / "checkpoint.pt")]) == 0
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_data_summary_json_on_bundled_records():
    proc = subprocess.run(
        [sys.executable, "-m", "nsr_tune.cli", "data", "summary", "--data-dir", "bundled", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(proc.stdout)
    assert summary["records"] == [208, 209, 213, 223, 232]
    assert all(summary["all"][c] > 0 for c in "NSVFQ")
    assert set(summary["splits"]) == {"inter", "intra"}


def test_a_foreign_checkpoint_is_refused(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3)}, bad)
    assert main(["evaluate", str(bad), "--data-dir", "bundled"]) == 2
    assert "expected an nsr-tune file" in capsys.readouterr().err
    pickled = tmp_path / "evil.pt"
    torch.save({"format": "nsr-tune/model/1", "obj": object()}, pickled)  # needs unpickling: refused
    assert main(["evaluate", str(pickled), "--data-dir", "bundled"]) == 2
    assert "not an nsr-tune file, or damaged" in capsys.readouterr().err


def test_tune_refuses_a_resume_path_without_a_study(tmp_path, capsys):
    assert main(["tune", "--dry-run", "--resume", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "--resume:" in err and "holds no Tune study" in err


def test_tune_refuses_a_bad_space_before_starting_anything(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: {families: {vgg: {}}}\n")
    assert main(["tune", "--space", str(bad), "--storage", str(tmp_path / "ray")]) == 2
    assert "model.families.vgg: unknown model" in capsys.readouterr().err
    assert not (tmp_path / "ray").exists()


def test_tune_refuses_a_storage_path_that_cannot_be_written(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    argv = [
        "tune",
        "--dry-run",
        "--storage",
        str(blocker / "ray"),
        "--mlflow-uri",
        f"sqlite:///{tmp_path / 'm.db'}",
    ]
    assert main([*argv, "--address", "local", "--local-cpus", "1"]) == 2
    err = capsys.readouterr().err
    assert "--storage:" in err and "cannot be written" in err
    assert not (tmp_path / "m.db").exists()  # refused before MLflow was touched


@pytest.mark.slow
def test_the_inter_patient_table_counts_every_ds2_beat(trained, tmp_path):
    # benchmarks/mitbih_inter_table.py on the bundled records, whose DS2 part is 213 and 232.
    out = tmp_path / "table.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "mitbih_inter_table.py"
    argv = [sys.executable, str(script), f"quick={trained / 'model.pt'}", "--data-dir", "bundled"]
    printed = subprocess.run([*argv, "--out", str(out)], capture_output=True, text=True, check=True).stdout
    row = json.loads(out.read_text())["models"][0]
    confusion = np.array(row["confusion"])
    assert confusion.sum() == row["n_beats"]
    assert [int(n) for n in confusion.sum(axis=1)[:4]] == [row["support"][c] for c in "NSVF"]
    assert row["acc"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert "| quick |" in printed and "annotated (rows) against predicted (columns)" in printed


@pytest.mark.slow
def test_the_inter_patient_table_refuses_one_name_for_two_models_of_one_seed(trained):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "mitbih_inter_table.py"
    model = f"quick={trained / 'model.pt'}"
    argv = [sys.executable, str(script), model, model, "--data-dir", "bundled"]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 2
    assert "'quick' names two models of seed 0" in done.stderr


def test_the_inter_patient_table_spreads_a_name_over_its_seeds():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "mitbih_inter_table.py"
    spec = importlib.util.spec_from_file_location("mitbih_inter_table", path)
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)

    def row(name, seed, f, acc):
        se = {"N": 0.9, "S": 0.8, "V": 0.7, "F": f}
        return {"name": name, "seed": seed, "se": se, "mean_se": sum(se.values()) / 4, "acc": acc}

    rows = [row("a", 0, 0.5, 0.75), row("b", 0, 0.1, 0.5), row("a", 1, 0.7, 0.25)]
    rows.append(row("a", 2, float("nan"), 0.5))
    (spread,) = table._over_seeds(rows)  # "b" has one run: no spread
    assert spread["name"] == "a" and spread["seeds"] == [0, 1, 2]
    assert spread["acc"] == {"mean": 0.5, "min": 0.25, "max": 0.75}
    assert spread["se"]["N"] == {"mean": 0.9, "min": 0.9, "max": 0.9}
    assert spread["se"]["F"] is None  # seed 2 has no F beats
    assert table._spread(spread["acc"]) == "0.500 (0.250-0.750)"


def _leaf_parsers(parser=None, name="nsr-tune"):
    """Every command's parser (data summary, train, ...), by its command line."""
    import argparse

    from nsr_tune.cli import build_parser

    parser = parser or build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield name, parser
        return
    for command, child in subs[0].choices.items():
        yield from _leaf_parsers(child, f"{name} {command}")


def test_every_option_has_help_and_says_its_default():
    for command, parser in _leaf_parsers():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.dest in ("help", "version"):
                continue
            assert action.help, f"{command} {action.option_strings[0]} has no help"
            text = formatter._get_help_string(action)
            flag = action.nargs == 0  # an on/off switch: off unless given
            assert flag or action.required or "default" in text, (
                f"{command} {action.option_strings[0]}: {text}"
            )


def test_every_command_ends_its_help_with_examples():
    for command, parser in _leaf_parsers():
        assert (parser.epilog or "").startswith("examples:\n  nsr-tune"), command


def test_the_parser_is_built_without_torch_or_scipy():
    code = (
        "import sys\nfrom nsr_tune.cli import build_parser\nbuild_parser()\n"
        "heavy = ('torch', 'scipy', 'ray', 'mlflow', 'wfdb')\n"
        "print(','.join(m for m in heavy if m in sys.modules) or 'none')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none"


def test_version(capsys):
    from nsr_tune import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"nsr-tune {__version__}"


@pytest.mark.parametrize("given", [["0.05,0.01"], ["0.05", "0.01"], ["0.05, 0.01"], ["0.05,", "0.01"]])
def test_eps_lists_take_commas_or_spaces(given):
    from nsr_tune.cli import build_parser

    for command in (["train", "--out", "o"], ["evaluate", "m.pt"], ["finalize", "s"]):
        args = build_parser().parse_args([*command, "--eps", *given])
        assert args.eps == (0.05, 0.01)


def test_the_tracking_store_defaults_to_the_environment_then_to_mlflow_db(tmp_path, monkeypatch):
    from nsr_tune.cli import build_parser
    from nsr_tune.cli._common import tracking_uri

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["pareto", "--experiment", "x"])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(args) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking_uri(args, fallback="sqlite:///study.db") == "sqlite:///study.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking_uri(args, fallback="sqlite:///study.db") == "http://tracking:5000"
    given = build_parser().parse_args(["pareto", "--experiment", "x", "--mlflow-uri", "sqlite:///g.db"])
    assert tracking_uri(given) == "sqlite:///g.db"
