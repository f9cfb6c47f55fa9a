"""Search-space validation: every error names the file, the key and what is wrong."""

from __future__ import annotations

import optuna
import pytest

from nsr_tune.config import TrialConfig
from nsr_tune.errors import SpaceError
from nsr_tune.study.shipped import SPACES_DIR, resolve_space_path
from nsr_tune.study.space import load_space, parse_space
from tests._helpers import tiny_space

BASE = """
name: t
model:
  families:
    cnn: {}
    resnet1d: {width: {choice: [8, 16]}, stages: {int: [2, 3]}}
objective:
  choices:
    ce: {}
    nsr: {beta: {float: [0.01, 1.0], log: true, include_zero: true}}
optim: {lr: {float: [0.0001, 0.01], log: true}, epochs: 1}
evaluation:
  search: {eps: [0.01, 0.05], steps: 3, per_class_cap: 5}
  test: {eps: [0.01, 0.05], steps: 3, per_class_cap: 5}
search: {num_samples: 3, sampler: random, seed: 1}
"""


@pytest.mark.parametrize(
    "name", ["dry_run", "mitbih_paper", "mitbih_rhythm", "mitbih_rr", "mitbih_rr30", "mitbih_wide"]
)
def test_shipped_spaces_validate_and_sample(name):
    space = load_space(name)
    assert space.metrics == ["val_balanced_acc", "val_robust_balanced_acc_eps_0.05"]
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=space.sampler_instance())
    for _ in range(5):
        config = TrialConfig.from_dict(space.define_by_run(study.ask())["trial_config"])
        assert config.model.name in space.models
        assert config.val_eval == space.search_eval


def test_rr30_space_fixes_its_input_and_knob():
    # mitbih_rr30 searches only the objective: every trial is rrcnn on lookback30 with F by shape.
    space = load_space("mitbih_rr30")
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=space.sampler_instance())
    for _ in range(5):
        trial = study.ask()
        config = TrialConfig.from_dict(space.define_by_run(trial)["trial_config"])
        assert (config.data.input, config.model.name) == ("lookback30", "rrcnn")
        assert config.model.knobs == {"fusion_by_shape": 1}
        assert not any("fusion_by_shape" in p for p in trial.params)


def test_space_names_resolve_to_shipped_files(tmp_path, monkeypatch):
    assert resolve_space_path("mitbih_wide") == SPACES_DIR / "mitbih_wide.yaml"
    assert resolve_space_path("search_spaces/mitbih_wide.yaml").name == "mitbih_wide.yaml"
    monkeypatch.chdir(tmp_path)  # away from the repo: the shipped copy is still found by name
    assert resolve_space_path("search_spaces/dry_run.yaml") == SPACES_DIR / "dry_run.yaml"
    with pytest.raises(SpaceError, match="--space: nope: no such file, and not a shipped space"):
        resolve_space_path("nope")


def test_conditional_knobs_exist_only_for_their_family():
    space = parse_space(BASE)
    study = optuna.create_study(
        directions=["maximize", "maximize"], sampler=optuna.samplers.RandomSampler(seed=0)
    )
    seen = set()
    for _ in range(30):
        trial = study.ask()
        config = TrialConfig.from_dict(space.define_by_run(trial)["trial_config"])
        params = trial.params
        if config.model.name == "cnn":
            assert not any(k.startswith("model.resnet1d.") for k in params)
        else:
            assert {"model.resnet1d.width", "model.resnet1d.stages"} <= set(params)
        if config.objective.name == "ce":
            assert config.objective.beta == 0.0 and "objective.nsr.beta" not in params
        seen.add((config.model.name, config.objective.name, config.objective.beta == 0.0))
    assert ("cnn", "nsr", True) in seen or ("resnet1d", "nsr", True) in seen  # beta = 0 is reachable


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("name: t", "name: t\nmodle: {}", "modle: unknown key"),
        ("cnn: {}", "vgg: {}", "model.families.vgg: unknown model"),
        ("stages: {int: [2, 3]}", "stages: {int: [3, 2]}", "model.families.resnet1d.stages: low 3 > high 2"),
        (
            "width: {choice: [8, 16]}",
            "width: {choice: []}",
            "model.families.resnet1d.width: choice: empty list",
        ),
        (
            "width: {choice: [8, 16]}",
            "width: {choice: [8, '16']}",
            "model.families.resnet1d.width: expected an integer",
        ),
        ("width: {choice: [8, 16]}", "depth: 3", "model.families.resnet1d.depth: unknown key"),
        (
            "nsr: {beta: {float: [0.01, 1.0], log: true, include_zero: true}}",
            "nsr: {beta: -0.5}",
            "objective.choices.nsr.beta: beta: must be >= 0.0, got -0.5",
        ),
        (
            "nsr: {beta: {float: [0.01, 1.0], log: true, include_zero: true}}",
            "nsr: {beta: {float: [-1, 1]}}",
            "objective.choices.nsr.beta: beta: must be >= 0.0, got -1",
        ),
        ("ce: {}", "ce: {beta: 0.3}", "objective.choices.ce.beta: unknown key"),
        ("ce: {}", "hinge: {}", "objective.choices.hinge: unknown objective"),
        ("lr: {float: [0.0001, 0.01], log: true}", "lr: fast", "optim.lr: expected a number"),
        (
            "lr: {float: [0.0001, 0.01], log: true}",
            "lr: {float: [0, 0.01], log: true}",
            "optim.lr: a log range needs low > 0",
        ),
        ("epochs: 1", "epochs: 0", "optim.epochs: epochs: must be a positive integer"),
        (
            "search: {eps: [0.01, 0.05]",
            "search: {eps: []",
            "evaluation.search.eps: expected a non-empty list",
        ),
        ("search: {num_samples: 3", "search: {num_samples: three", "search.num_samples: expected an integer"),
        ("sampler: random", "sampler: grid", "search.sampler: must be one of tpe, nsga2, random"),
        (
            "search: {num_samples: 3,",
            "search: {objectives: [{metric: val_robust_acc_eps_0.3}], num_samples: 3,",
            "search.objectives[0].metric: unknown metric 'val_robust_acc_eps_0.3'",
        ),
        ("name: t", "name: t\nmodel: [", "not valid YAML"),
    ],
)
def test_bad_space_is_refused_with_the_key_named(old, new, message):
    assert old in BASE
    with pytest.raises(SpaceError) as err:
        parse_space(BASE.replace(old, new, 1), where="bad.yaml")
    assert str(err.value).startswith("bad.yaml: ")
    assert message in str(err.value)


def test_start_with_points_are_checked():
    text = BASE.replace(
        "seed: 1}", "seed: 1, start_with: [{model: cnn, objective: nsr, objective.nsr.beta: 5.0}]}"
    )
    with pytest.raises(SpaceError, match=r"search.start_with\[0\]: objective.nsr.beta: 5.0 is outside"):
        parse_space(text, where="s.yaml")
    text = BASE.replace("seed: 1}", "seed: 1, start_with: [{model: cnn, lr: 0.1}]}")
    with pytest.raises(SpaceError, match=r"search.start_with\[0\]: lr is not a searched parameter"):
        parse_space(text, where="s.yaml")


def test_the_tests_tiny_space_is_a_valid_space_with_what_was_asked():
    # The slow study tests all build their spaces with this helper.
    text = tiny_space(
        "tiny",
        models=("cnn", "mlp"),
        losses={"ce": {}, "nsr": {"beta": {"choice": [0.0, 0.3]}}},
        epochs=3,
        num_samples=4,
        max_concurrent=1,
        start_with=[{"model": "mlp", "objective": "ce"}],
        extra={
            "optim": {"grad_clip": None},
            "search": {"max_failures": 1},
            "evaluation": {"test": {"steps": 4}},
        },
    )
    space = parse_space(text, where="tiny.yaml")
    assert space.name == "tiny" and space.data == {"split": "inter", "max_train_beats": 600}
    assert list(space.models) == ["cnn", "mlp"] and list(space.objectives_space) == ["ce", "nsr"]
    assert space.optim == {"epochs": 3, "batch_size": 64, "grad_clip": None}
    assert (space.sampler, space.num_samples, space.max_concurrent, space.max_failures) == ("random", 4, 1, 1)
    assert space.start_with == ({"model": "mlp", "objective": "ce"},)
    # `extra` is merged key by key: the test evaluation keeps its other settings.
    assert (space.search_eval.steps, space.test_eval.steps) == (2, 4)
    assert space.search_eval.eps == space.test_eval.eps == (0.01, 0.05)
    assert space.test_eval.per_class_cap == 5
    assert space.resources == {"cpu": 1.0, "gpu": 0.0}
