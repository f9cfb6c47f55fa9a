"""CPSC2018 end to end: masked models, attacks, NSR, metrics, trials, the CLI and a study, on the
150 real records in ../shared/data (resampled to 100 Hz where speed matters)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
from mlflow.tracking import MlflowClient

from nsr_tune.attacks import PGD, MultiLabelPGD, padding_mask, set_changed
from nsr_tune.cli import main
from nsr_tune.config import DataConfig, ModelConfig, ObjectiveConfig, OptimConfig, TrialConfig
from nsr_tune.data import CPSC_CLASSES, DATASETS, check_data, load_dataset
from nsr_tune.errors import ConfigError, SpaceError
from nsr_tune.evaluation.batching import predict_logits, predict_samples
from nsr_tune.evaluation.run import evaluate
from nsr_tune.evaluation.scores import macro_f1, per_class, per_label
from nsr_tune.models import build_model
from nsr_tune.objectives import nsr_penalty
from nsr_tune.protocol import protocol
from nsr_tune.study.space import load_space, parse_space
from nsr_tune.trial import check_trial, new_model, run_trial
from nsr_tune.trial._run import _batches
from tests.conftest import SHARED_DATA

CPSC = SHARED_DATA / "cpsc2018"
REPO_SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
SMALL = {"width": 8, "blocks": 1}  # the CPU-sized variant, smaller still
DATA = DataConfig(dataset="cpsc2018", sample_rate=100, val_per_class=1, test_per_class=2)


@pytest.fixture(scope="module")
def splits():
    if not (CPSC / "A0001.hea").is_file():
        pytest.fail(f"the real CPSC2018 records are missing: expected {CPSC} (set NSR_TUNE_SHARED_DATA)")
    return load_dataset(DATA, CPSC).splits


def _model(knobs=SMALL, seed=0):
    """A resnet18 whose residual branches are all live: a fresh model starts each branch at zero
    (Fixup), which would hide a leak through them; trained weights are not zero there."""
    torch.manual_seed(seed)
    model = build_model("resnet18", knobs, n_classes=9, in_leads=8).eval()
    for block in model.blocks:
        block.conv2.reset_parameters()
    return model


@pytest.mark.parametrize("knobs", [{}, {"width": 16, "blocks": 1}], ids=["paper", "cpu"])
def test_padding_does_not_change_the_logits(splits, knobs):
    """Every model offered for cpsc2018, on real records: unpadded, padded by 1,000 samples, and
    padded inside a batch with the longest test record give the same logits."""
    assert DATASETS["cpsc2018"].models == ("resnet18",)
    model = _model(knobs)
    test = splits.test
    longest = int(np.argmax(test.length))
    worst = 0.0
    with torch.no_grad():
        for r in (0, 5, 11):
            x, n = test.inputs([r])
            alone = model(torch.from_numpy(x))
            padded = model(torch.nn.functional.pad(torch.from_numpy(x), (0, 1000)))
            xb, _ = test.inputs([r, longest])
            assert xb.shape[-1] > n[0] or r == longest
            in_batch = model(torch.from_numpy(xb))[:1]
            for other in (padded, in_batch):
                worst = max(worst, float((other - alone).abs().max()))
            scale = float(alone.abs().max())
            assert scale > 0.01 and worst <= 1e-5 * scale, (r, worst, scale)


def test_attacks_perturb_every_lead_and_only_the_real_samples(splits):
    model = _model()
    x_np, lengths = splits.test.inputs(np.arange(6))
    x, y = torch.from_numpy(x_np), torch.from_numpy(splits.test.y[:6])
    attack = PGD(model, eps=0.01, steps=3, early_exit=False, restarts=1)
    adv = attack(x, y, lengths=torch.from_numpy(lengths), generator=torch.Generator().manual_seed(0))
    delta = adv.x_adv - x  # (6, 8, L)
    real = padding_mask(x, torch.from_numpy(lengths))  # (6, 1, L)
    assert float(delta.abs().max()) <= 0.01 * (1 + 1e-5)
    assert float((delta * (1 - real)).abs().max()) == 0.0  # the padding is never touched
    # A record the attack does not break comes back as it was; its last PGD iterate shows where
    # the attack went: into every lead, never into the padding.
    last = attack.last_iterate(x, y, mask=real, generator=torch.Generator().manual_seed(0)) - x
    assert float((last * (1 - real)).abs().max()) == 0.0
    moved = (last.abs() > 0).any(dim=2)  # (6, 8): which leads of each record the attack moved
    assert bool(moved.all())


def test_nsr_sums_the_gradient_over_real_samples_only(splits):
    """The batch's NSR term with padding and mask equals each record's term computed unpadded."""
    model = _model().double()
    idx = [0, 3, 7]
    x_np, lengths = splits.test.inputs(idx)
    x = torch.from_numpy(x_np).double()
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # every record "correct", so every one enters the mean
    mask = padding_mask(x, torch.from_numpy(lengths))
    batched, _, correct = nsr_penalty(model, x, y, eps=1.0, mask=mask)
    assert bool(correct.all())
    alone = [
        nsr_penalty(model, x[i : i + 1, :, : lengths[i]], y[i : i + 1], eps=1.0)[0] for i in range(len(idx))
    ]
    assert batched.item() == pytest.approx(torch.stack(alone).mean().item(), rel=1e-9)


def test_macro_f1_is_the_mean_f1_of_the_classes_present():
    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    f1 = {c: m.f1 for c, m in per_class(pred, y, ("a", "b", "c", "d")).items()}
    assert f1["a"] == pytest.approx(0.5) and f1["b"] == pytest.approx(0.8) and f1["c"] == 0.0
    assert np.isnan(f1["d"])  # no records of the class: no F1, and not in the mean
    assert macro_f1(pred, y, ("a", "b", "c", "d")) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_evaluate_on_records_reports_f1_microvolts_and_what_it_skipped(splits):
    model = _model()
    config = protocol(
        "strong",
        "cpsc2018",
        eps=(0.003, 0.03),
        apgd_steps=3,
        square_queries=10,
        sap_steps=3,
        bisect_steps=0,
        per_class_cap=None,
    )
    result = evaluate(model, splits.test, config=config, split=DATA.split)
    test = splits.test
    assert result.n == len(test) == 18
    pred = predict_samples(model, test, device="cpu")
    assert result.macro_f1 == pytest.approx(macro_f1(pred, test.y, CPSC_CLASSES))
    assert tuple(result.per_class) == CPSC_CLASSES and result.balanced_classes == CPSC_CLASSES
    for e in (0.003, 0.03):
        assert 0.0 <= result.robust_macro_f1[e] <= 1.0
        assert result.eps_uv[e] == pytest.approx(float(np.median(e * test.amp_mv * 1000.0)), rel=1e-6)
        assert result.eps_uv[e] == pytest.approx(e * result.uv_per_unit[1], rel=1e-6)
    low, mid, high = result.uv_per_unit
    assert 0 < low <= mid <= high  # one unit of a max-abs-scaled record is its peak: a few mV
    assert "noise_stress" in result.skipped and "transfer" in result.skipped
    assert set(result.flat_metrics("val")) >= {"val_macro_f1", "val_robust_macro_f1_eps_0.03", "val_f1_AF"}


def test_length_buckets_cover_the_epoch_once_each_batch_sorted(splits):
    lengths = splits.train.length
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0))
    batches = _batches(order, lengths, 8, torch.Generator().manual_seed(1))
    flat = torch.cat(batches).tolist()
    assert sorted(flat) == sorted(order.tolist())
    assert all(np.all(np.diff(lengths[b.numpy()]) >= 0) for b in batches)


@pytest.mark.slow
@pytest.mark.parametrize(
    "objective",
    [
        ObjectiveConfig(name="ce"),
        ObjectiveConfig(name="nsr", beta=0.3, nsr_eps=0.01),
        ObjectiveConfig(name="jacobian", beta=0.01),
        ObjectiveConfig(name="pgd_at", at_eps=0.01, at_steps=2),
    ],
    ids=lambda o: o.name,
)
def test_a_trial_trains_on_records_and_reports_f1(splits, objective):
    config = TrialConfig(
        data=DATA,
        model=ModelConfig(name="resnet18", knobs=SMALL),
        objective=objective,
        optim=OptimConfig(epochs=1, batch_size=16),
        val_eval=protocol("quick", "cpsc2018", steps=2),
        test_eval=None,
    )
    (last,) = list(run_trial(config, splits))
    assert last.final and not last.diverged
    assert last.val.eps == DATASETS["cpsc2018"].quick_eps
    assert np.isfinite(last.metrics["train_loss"]) and 0.0 <= last.val.macro_f1 <= 1.0


def test_settings_of_another_dataset_and_models_it_does_not_offer_are_refused():
    with pytest.raises(ConfigError, match="val_fraction: is a setting of mitbih, not of cpsc2018"):
        check_data(DataConfig(dataset="cpsc2018", val_fraction=0.3))
    with pytest.raises(ConfigError, match="split: must be one of records"):
        check_data(DataConfig(dataset="cpsc2018", split="inter"))
    with pytest.raises(ConfigError, match="model: 'cnn' is not offered for cpsc2018; choose one of resnet18"):
        check_trial(TrialConfig(data=DataConfig(dataset="cpsc2018"), model=ModelConfig(name="cnn")))
    text = (REPO_SPACES / "cpsc2018_dry_run.yaml").read_text().replace("resnet18:", "cnn:", 1)
    with pytest.raises(SpaceError, match=r"model\.families\.cnn: not offered for cpsc2018"):
        parse_space(text, where="cpsc.yaml")


def test_the_shipped_cpsc_spaces_parse_with_the_dataset_grid():
    full, dry = load_space("cpsc2018"), load_space("cpsc2018_dry_run")
    assert full.data["dataset"] == dry.data["dataset"] == "cpsc2018"
    assert full.test_eval.eps == DATASETS["cpsc2018"].eps == (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
    assert full.objectives == (("val_macro_f1", "max"), ("val_robust_macro_f1_eps_0.01", "max"))


@pytest.mark.slow
def test_train_then_evaluate_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "m"
    argv = ["train", "--dataset", "cpsc2018", "--data-dir", str(CPSC), "--sample-rate", "100"]
    argv += ["--val-per-class", "1", "--test-per-class", "2", "--knob", "width=8", "--knob", "blocks=1"]
    argv += ["--epochs", "1", "--batch-size", "16", "--pgd-steps", "2", "--eps", "0.01", "-q"]
    assert main([*argv, "--out", str(out)]) == 0
    trained = json.loads((out / "metrics.json").read_text())
    assert trained["config"]["data"]["dataset"] == "cpsc2018"
    again = tmp_path / "again.json"
    ev = ["evaluate", str(out / "model.pt"), "--data-dir", str(CPSC), "--pgd-steps", "2", "--eps", "0.01"]
    assert main([*ev, "-q", "--out", str(again)]) == 0
    assert json.loads(again.read_text())["macro_f1"] == trained["macro_f1"]
    assert "macro F1" in capsys.readouterr().out
    assert main([*ev, "--dataset", "mitbih"]) == 2
    assert "--dataset: the model was trained on cpsc2018" in capsys.readouterr().err


@pytest.mark.slow
def test_a_cpsc2018_study_runs_finalizes_and_fills_mlflow(tmp_path, capsys):
    """The shipped cpsc2018 dry run on the shared records, two trials: front, finalists, report."""
    data = shutil.copytree(CPSC, tmp_path / "cpsc2018")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["tune", "--space", "cpsc2018_dry_run", "--name", "cpsc", "--storage", str(tmp_path / "ray")]
    argv += ["--mlflow-uri", uri, "--data-dir", str(data), "--num-samples", "2"]
    try:
        assert main([*argv, "--address", "local", "--local-cpus", "2"]) == 0
    finally:
        ray.shutdown()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cpsc2018_dry_run")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parent = next(r for r in runs if r.data.tags.get("nsr_tune.role") == "study")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and parent.data.params["dataset"] == "cpsc2018"
    for child in children:
        assert child.data.params["data.dataset"] == "cpsc2018"
        assert child.data.params["model.name"] == "resnet18"
        for metric in ("val_macro_f1", "val_robust_macro_f1_eps_0.01", "test_macro_f1"):
            assert 0.0 <= child.data.metrics[metric] <= 1.0
        assert child.data.tags["pareto_optimal"] in ("true", "false")
    finalists = [c for c in children if "final_macro_f1" in c.data.metrics]
    assert finalists and all("final_robust_macro_f1_eps_0.01" in c.data.metrics for c in finalists)
    for c in finalists:  # intervals that resample records, for the F1 objectives too
        m = c.data.metrics
        assert 0.0 <= m["final_macro_f1_ci_low"] <= m["final_macro_f1_ci_high"] <= 1.0
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto.png", "pareto.csv", "report.html"} <= artifacts
    out = tmp_path / "front"
    pareto = ["pareto", "--mlflow-uri", uri, "--experiment", "cpsc2018_dry_run", "--out", str(out)]
    assert main(pareto) == 0
    assert "val_robust_macro_f1_eps_0.01" in (out / "pareto.csv").read_text().splitlines()[0]
    assert main(["report", str(tmp_path / "ray" / "cpsc"), "--out", str(tmp_path / "report.html")]) == 0
    # Resuming the finished study (from its saved space and data) adds no trial and no run.
    resume = ["tune", "--resume", str(tmp_path / "ray" / "cpsc"), "--mlflow-uri", uri]
    try:
        assert main([*resume, "--address", "local", "--local-cpus", "2"]) == 0
    finally:
        ray.shutdown()
    assert len(client.search_runs([exp.experiment_id], max_results=100)) == len(runs)


# Multi-label mode: the records with several labels kept, sigmoid outputs, BCE, label sets.
MULTI = dataclasses.replace(DATA, multi_label=True)


@pytest.fixture(scope="module")
def multi_splits():
    return load_dataset(MULTI, CPSC).splits


def test_label_set_metrics_count_each_class_column():
    targets = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=bool)
    pred = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 1]], dtype=bool)
    m = per_label(pred, targets, ("a", "b", "c"))
    assert (m["a"].f1, m["b"].f1, m["c"].f1) == (1.0, 0.0, pytest.approx(2 / 3))
    assert (m["a"].support, m["b"].support, m["c"].support) == (2, 1, 1)


def test_multi_label_data_keep_every_record_and_train_with_bce_only(multi_splits):
    parts = (multi_splits.train, multi_splits.val, multi_splits.test)
    assert sum(len(p) for p in parts) == 150  # the 4 records with two labels stay
    assert max(int(p.targets.sum(axis=1).max()) for p in parts) == 2
    with pytest.raises(ConfigError, match="objective: multi_label data train with `bce`"):
        TrialConfig(data=MULTI, model=ModelConfig(name="resnet18"), objective=ObjectiveConfig(name="nsr"))
    with pytest.raises(ConfigError, match=r"test_eval\.attacks: multi-label models run the pgd attack only"):
        TrialConfig(
            data=MULTI,
            model=ModelConfig(name="resnet18"),
            objective=ObjectiveConfig(name="bce"),
            test_eval=protocol("strong", "cpsc2018"),
        )


def test_multi_label_pgd_changes_a_set_and_leaves_the_padding(multi_splits):
    model = _model()
    test = multi_splits.test
    x_np, lengths = test.inputs(np.arange(len(test)))
    x, t = torch.from_numpy(x_np), torch.from_numpy(test.targets)
    attack = MultiLabelPGD(model, eps=0.3, steps=10)
    res = attack(x, t, lengths=torch.from_numpy(lengths), generator=torch.Generator().manual_seed(0))
    real = padding_mask(x, torch.from_numpy(lengths))
    delta = res.x_adv - x
    assert float(delta.abs().max()) <= 0.3 * (1 + 1e-5) and float((delta * (1 - real)).abs().max()) == 0
    with torch.no_grad():
        changed = set_changed(model(res.x_adv), t)
    assert bool(res.broken.any()) and bool((changed == res.broken).all())


@pytest.mark.slow
def test_a_multi_label_trial_reports_set_f1_under_attack(multi_splits):
    config = TrialConfig(
        data=MULTI,
        model=ModelConfig(name="resnet18", knobs=SMALL),
        objective=ObjectiveConfig(name="bce"),
        optim=OptimConfig(epochs=2, batch_size=16),
        test_eval=protocol("standard", "cpsc2018", eps=(0.01, 0.1), steps=3, per_class_cap=None),
    )
    *_, last = run_trial(config, multi_splits)
    result = last.test
    model = new_model(config)
    model.load_state_dict(last.checkpoint["model_state"])
    sets = predict_logits(model.eval(), multi_splits.test, device="cpu") > 0
    truth = multi_splits.test.targets.astype(bool)
    assert result.clean_acc == pytest.approx((sets == truth).all(axis=1).mean())
    expected = [m.f1 for m in per_label(sets, truth, CPSC_CLASSES).values() if m.support]
    assert result.macro_f1 == pytest.approx(np.mean(expected))
    assert result.robust_acc[0.1] <= result.robust_acc[0.01] <= result.clean_acc
    assert "median_adv_eps" in result.skipped


@pytest.mark.slow
def test_a_multi_label_study_runs_and_finalizes(tmp_path):
    import yaml

    space = yaml.safe_load((REPO_SPACES / "cpsc2018_dry_run.yaml").read_text())
    space["name"] = "cpsc2018_multi"
    space["data"]["multi_label"] = True
    space["objective"] = {"choices": {"bce": {}}}
    space["optim"]["epochs"] = 2
    space["evaluation"]["final"] = {"eps": [0.003, 0.01, 0.03], "steps": 3, "bootstrap": 50}
    space["search"] = {"sampler": "random", "num_samples": 1, "max_concurrent": 1}
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump(space))
    assert load_space(path).final.evaluation.attacks == ("pgd",)  # finalists: standard, not strong
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["tune", "--space", str(path), "--name", "multi", "--storage", str(tmp_path / "ray")]
    argv += ["--mlflow-uri", uri, "--data-dir", str(CPSC)]
    try:
        assert main([*argv, "--address", "local", "--local-cpus", "2"]) == 0
    finally:
        ray.shutdown()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cpsc2018_multi")
    (child,) = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert child.data.params["data.multi_label"] == "True" and child.data.params["objective.name"] == "bce"
    for metric in ("val_macro_f1", "test_robust_macro_f1_eps_0.01", "final_macro_f1"):
        assert 0.0 <= child.data.metrics[metric] <= 1.0
