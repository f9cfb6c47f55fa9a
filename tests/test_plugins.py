"""Plugins: models and objectives from a package that exists only in a temporary directory,
found through entry points or as package.module:attribute, their contracts checked at load with
one-line refusals, their provenance in every trial config, and a changed plugin refused."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

from nsr_tune.cli import main
from nsr_tune.config import DataConfig, ModelConfig, ObjectiveConfig, TrialConfig
from nsr_tune.data import check_data, load_dataset
from nsr_tune.errors import ConfigError, PluginError, SpaceError
from nsr_tune.models import build_model, model_spec
from nsr_tune.objectives import check_objective, objective_fn
from nsr_tune.plugins import add_plugin_path, entry_point_names, load_plugin, plugin_modules
from nsr_tune.study.space import parse_space
from nsr_tune.trial import check_trial
from tests._helpers import tiny_space
from tests._plugin_source import forget_plugin, write_plugin


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """tmpplug/ and its distribution metadata on the import path, for this test only."""
    root = write_plugin(tmp_path / "site", entry_points=True)
    forget_plugin()
    monkeypatch.syspath_prepend(str(root))
    yield root
    forget_plugin()


def _package_hash(root: Path) -> str:
    h = hashlib.sha256()
    for name in ("__init__.py", "data.py", "reg.py"):  # sorted relative paths
        h.update(name.encode() + b"\0" + (root / "tmpplug" / name).read_bytes() + b"\0")
    return h.hexdigest()


def test_entry_points_and_references_find_the_same_code(plugin_dir):
    assert "logit_penalty" in entry_point_names("objective")
    assert "tiny" in entry_point_names("model")
    by_name = load_plugin("objective", "logit_penalty")
    by_ref = load_plugin("objective", "tmpplug.reg:logit_penalty")
    assert by_name.obj is by_ref.obj
    assert by_name.provenance() == {
        "name": "logit_penalty",
        "target": "tmpplug.reg:logit_penalty",
        "distribution": "tmpplug-ep",
        "version": "0.1",
        "sha256": _package_hash(plugin_dir),
    }


def test_a_plugin_model_is_built_with_typed_knobs(plugin_dir):
    spec = model_spec("tiny")
    assert spec.knobs == {"hidden": (int, 16, None), "scale": (float, 1.0, None)}
    assert spec.description == "A one-hidden-layer MLP over the flattened input."
    model = build_model("tiny", {"hidden": 8, "scale": 2}, n_classes=5, in_leads=1, in_len=187)
    assert model.net[1].weight.shape == (8, 187) and model.scale == 2
    assert model(torch.zeros(3, 1, 187)).shape == (3, 5)
    with pytest.raises(ConfigError, match=r"^model\.hidden: must be a int, got 1\.5$"):
        build_model("tiny", {"hidden": 1.5}, in_len=187)
    with pytest.raises(
        ConfigError, match=r"^model\.depth: not a knob of 'tiny'; its knobs are hidden, scale$"
    ):
        build_model("tiny", {"depth": 2}, in_len=187)


BROKEN_MODELS = [
    (
        "tmpplug.reg:NoShape",
        "model 'tmpplug.reg:NoShape': tmpplug.reg:NoShape must take the keyword arguments in_leads, "
        "length, n_classes; in_leads, length missing",
    ),
    (
        "tmpplug.reg:NoDefault",
        "model 'tmpplug.reg:NoDefault': knob 'width' of tmpplug.reg:NoDefault needs a default of type int, "
        "float, bool or str, got none",
    ),
    (
        "tmpplug.reg:NotAModule",
        "model 'tmpplug.reg:NotAModule': tmpplug.reg:NotAModule is a class but not a torch.nn.Module",
    ),
    ("tmpplug.reg:Missing", "model 'tmpplug.reg:Missing': tmpplug.reg has no attribute 'Missing'"),
    (
        "nopkg.nets:Wide",
        "model 'nopkg.nets:Wide': cannot import nopkg.nets (No module named 'nopkg'); install its "
        "package, or give --plugin-path DIR for a local one",
    ),
]


@pytest.mark.parametrize(("name", "message"), BROKEN_MODELS)
def test_a_broken_model_plugin_is_refused_naming_what_is_missing(plugin_dir, name, message):
    with pytest.raises(PluginError) as e:
        model_spec(name)
    assert str(e.value) == message


def test_a_model_that_gives_the_wrong_shape_is_refused_when_built(plugin_dir):
    with pytest.raises(PluginError) as e:
        build_model("tmpplug.reg:WrongOutput", n_classes=5, in_len=187)
    assert str(e.value) == (
        "model 'tmpplug.reg:WrongOutput': returns (2, 3) for inputs of shape (2, 1, 187); "
        "the contract is logits (B, n_classes) = (2, 5)"
    )


BROKEN_OBJECTIVES = [
    (
        "tmpplug.reg:untyped",
        "objective 'tmpplug.reg:untyped': the config parameter of tmpplug.reg:untyped must be annotated "
        "with a frozen dataclass, got None",
    ),
    (
        "tmpplug.reg:mutable_config",
        "objective 'tmpplug.reg:mutable_config': its config Mutable must be a frozen dataclass",
    ),
    (
        "tmpplug.reg:no_generator",
        "objective 'tmpplug.reg:no_generator': tmpplug.reg:no_generator must take "
        "(model, x, y, *, config, mask, generator); generator missing",
    ),
    (
        "nsr_plus",
        "objective: unknown objective 'nsr_plus'; choose one of ce, nsr, nsr_ce, jacobian, pgd_at, bce, "
        "mse, mse_margin, focal, an installed plugin (nsr_tune.objectives: ",
    ),
]


@pytest.mark.parametrize(("name", "message"), BROKEN_OBJECTIVES)
def test_a_broken_objective_plugin_is_refused_naming_what_is_missing(plugin_dir, name, message):
    with pytest.raises(PluginError) as e:
        objective_fn(name)
    assert str(e.value).startswith(message)


def test_a_plugin_objective_runs_on_its_own_config(plugin_dir, beats):
    x, y, _ = beats
    model = build_model("cnn", n_classes=5)
    fn = objective_fn("logit_penalty")
    config = ObjectiveConfig(name="logit_penalty", params={"gamma": 0.5})
    out = fn(model, x[:8], y[:8], config=config, mask=torch.ones(8, 1, 187), generator=torch.Generator())
    z = model(x[:8])
    ce = torch.nn.functional.cross_entropy(z, y[:8])
    assert out.loss.item() == pytest.approx((ce + 0.5 * z.pow(2).mean()).item(), rel=1e-6)
    assert out.logits.shape == (8, 5) and set(out.logs) == {"ce"}
    bad = objective_fn("tmpplug.reg:returns_none")
    with pytest.raises(
        PluginError, match=r"returned NoneType; the contract is \(loss, logs\) or ObjectiveOutput"
    ):
        bad(model, x[:2], y[:2], config=ObjectiveConfig(name="x"), mask=None, generator=None)


def test_plugin_settings_are_checked_by_the_plugin_and_builtin_ones_refused(plugin_dir):
    with pytest.raises(
        ConfigError, match=r"^objective\.beta2: not a setting of 'logit_penalty'; its settings are gamma$"
    ):
        check_objective(ObjectiveConfig(name="logit_penalty", params={"beta2": 1.0}))
    with pytest.raises(ConfigError, match=r"^objective 'logit_penalty': gamma: must be >= 0, got -1$"):
        check_objective(ObjectiveConfig(name="logit_penalty", params={"gamma": -1}))
    with pytest.raises(ConfigError, match=r"^objective\.beta: is a setting of the built-in objectives"):
        check_objective(ObjectiveConfig(name="logit_penalty", beta=0.3))
    with pytest.raises(ConfigError, match=r"^objective\.params: the built-in 'nsr' takes no params$"):
        check_objective(ObjectiveConfig(name="nsr", params={"gamma": 1.0}))


def _trial(**objective) -> TrialConfig:
    return TrialConfig(
        data=DataConfig(max_train_beats=100),
        model=ModelConfig(name="tiny", knobs={"hidden": 8}),
        objective=ObjectiveConfig(name="logit_penalty", **objective),
    )


def test_a_trial_config_records_the_plugins_and_refuses_changed_code(plugin_dir):
    config = check_trial(_trial(params={"gamma": 0.1}))
    assert set(config.plugins) == {"model", "objective"}
    assert config.plugins["objective"]["sha256"] == _package_hash(plugin_dir)
    again = TrialConfig.from_dict(config.to_dict())
    assert check_trial(again) == again  # the same code: nothing to fill in, nothing refused
    old = config.plugins["objective"]["sha256"]
    (plugin_dir / "tmpplug" / "reg.py").write_text(
        (plugin_dir / "tmpplug" / "reg.py").read_text() + "\n# edited\n"
    )
    new = _package_hash(plugin_dir)
    with pytest.raises(PluginError) as e:
        check_trial(again)
    assert str(e.value) == (
        "plugin code changed since this trial's config was made: "
        f"model 'tiny' (tmpplug.reg:TinyNet) source sha256 {old[:12]} then, {new[:12]} now; "
        "objective 'logit_penalty' (tmpplug.reg:logit_penalty) "
        f"source sha256 {old[:12]} then, {new[:12]} now; "
        "restore the code it ran, or start anew"
    )


def test_a_space_searches_plugin_settings_and_refuses_unknown_ones(plugin_dir):
    text = tiny_space(
        "plugins",
        models=("tiny",),
        losses={"ce": {}, "logit_penalty": {"gamma": {"float": [0.001, 0.1], "log": True}}},
        extra={"model": {"families": {"tiny": {"hidden": {"choice": [8, 16]}}}}},
    )
    space = parse_space(text, where="plugins.yaml")
    assert set(space.objectives_space) == {"ce", "logit_penalty"}
    assert space.objectives_space["logit_penalty"]["gamma"].log
    bad = text.replace("gamma:", "gamm:")
    with pytest.raises(
        SpaceError, match=r"objective\.choices\.logit_penalty\.gamm: unknown key; expected one of gamma"
    ):
        parse_space(bad, where="plugins.yaml")
    negative = tiny_space("plugins", losses={"logit_penalty": {"gamma": {"choice": [-1.0, 0.1]}}})
    with pytest.raises(SpaceError, match=r"gamma: must be >= 0, got -1\.0"):
        parse_space(negative, where="plugins.yaml")


def test_plugin_path_ships_packages_and_modules(tmp_path):
    root = write_plugin(tmp_path / "plugins")
    (root / "single.py").write_text("X = 1\n")
    (root / "notes.txt").write_text("not a module\n")
    assert plugin_modules(root) == [str(root / "single.py"), str(root / "tmpplug")]
    forget_plugin()
    try:
        assert add_plugin_path(root) == root.resolve() and sys.path[0] == str(root.resolve())
        assert load_plugin("model", "tmpplug.reg:TinyNet").distribution == ""
    finally:
        sys.path.remove(str(root.resolve()))
        forget_plugin()
    with pytest.raises(ConfigError, match=r"^--plugin-path: .*/none is not a directory$"):
        add_plugin_path(tmp_path / "none")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--model", "tmpplug.reg:NoShape"],
            "nsr-tune: error: model 'tmpplug.reg:NoShape': tmpplug.reg:NoShape must take the keyword "
            "arguments in_leads, length, n_classes; in_leads, length missing",
        ),
        (
            ["--objective", "tmpplug.reg:logit_penalty", "--beta", "0.3"],
            "nsr-tune: error: --beta: applies to the built-in objectives; give tmpplug.reg:logit_penalty's "
            "own settings with --objective-param KEY=VALUE",
        ),
        (
            ["--objective", "nsr", "--objective-param", "gamma=1"],
            "nsr-tune: error: --objective-param: sets a plugin objective's config; the built-in nsr takes "
            "--beta, --nsr-eps or --focal-gamma",
        ),
        (
            ["--objective", "tmpplug.reg:logit_penalty", "--objective-param", "gamma=-2"],
            "nsr-tune: error: objective 'tmpplug.reg:logit_penalty': gamma: must be >= 0, got -2",
        ),
    ],
)
def test_the_cli_refuses_a_broken_plugin_in_one_line(tmp_path, monkeypatch, capsys, args, line):
    root = write_plugin(tmp_path / "plugins")
    forget_plugin()
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        code = main(["train", "--data-dir", "bundled", "--out", "run", "--plugin-path", str(root), *args])
    finally:
        if str(root.resolve()) in sys.path:
            sys.path.remove(str(root.resolve()))
        forget_plugin()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [line]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_a_plugin_model_file_is_evaluated_under_the_strong_protocol(plugin_dir, tmp_path, capsys):
    from nsr_tune.checkpoints import save_model_file
    from nsr_tune.trial import new_model

    config = check_trial(
        TrialConfig(
            data=DataConfig(split="intra"),
            model=ModelConfig(name="tiny"),
            objective=ObjectiveConfig(name="logit_penalty", params={"gamma": 0.1}),
        )
    )
    torch.manual_seed(0)
    save_model_file(tmp_path / "model.pt", config=config, model=new_model(config))
    code = main(
        [
            "evaluate",
            str(tmp_path / "model.pt"),
            "--data-dir",
            "bundled",
            "--protocol",
            "strong",
            "--eps",
            "0.01",
            "--eval-beats",
            "5",
            "--out",
            str(tmp_path / "eval.json"),
            "--quiet",
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    # The same cascade and masking checks as for a built-in model (no surrogate: no transfer).
    assert set(result["robust_acc_by_attack"]) == {"apgd_ce", "apgd_t", "square", "sap"}
    assert "masking_checks" in result["timings"]


def test_a_dataset_plugin_gives_the_built_in_split_structure(plugin_dir):
    config = DataConfig(dataset="mitbih_again", split="intra")
    loaded = load_dataset(config, "bundled")
    built_in = load_dataset(DataConfig(split="intra"), "bundled")
    assert loaded.splits.test.x.shape == built_in.splits.test.x.shape
    assert (loaded.splits.test.x == built_in.splits.test.x).all()
    trial = check_trial(TrialConfig(data=config))
    assert trial.plugins["dataset"]["target"] == "tmpplug.data:mitbih_again"
    with pytest.raises(PluginError) as e:
        load_dataset(DataConfig(dataset="tmpplug.data:wrong_classes", split="intra"), "bundled")
    assert str(e.value) == (
        "dataset 'tmpplug.data:wrong_classes': its train split has classes ['N', 'S', 'V', 'F', 'Q'], "
        "the dataset says ['N', 'S', 'V', 'F']"
    )
    with pytest.raises(PluginError) as e:
        check_data(DataConfig(dataset="tmpplug.data:not_a_dataset"))
    assert str(e.value) == (
        "dataset 'tmpplug.data:not_a_dataset': tmpplug.data:not_a_dataset is a dict, not an "
        "nsr_tune.data.Dataset (or a function that returns one)"
    )
