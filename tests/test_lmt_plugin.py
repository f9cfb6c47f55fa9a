"""The example plugin package, examples/nsr_tune_lipschitz (installed with pip install -e):
found through its entry points, its Lipschitz bound checked against exact spectral norms
(torch.linalg on each layer's dense matrix) and against real beats, and its LMT loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import ray
import torch
import yaml
from mlflow.tracking import MlflowClient
from nsr_tune_lipschitz import LipschitzCNN
from torch.nn import functional as F

from nsr_tune.config import ObjectiveConfig
from nsr_tune.models import build_model, model_spec
from nsr_tune.objectives import objective_fn
from nsr_tune.study.options import StudyOptions
from nsr_tune.study.runner import run_study
from nsr_tune.study.space import parse_space
from tests._helpers import TINY_EVAL, TINY_FINAL


def _dense(layer_fn, shape: tuple[int, int]) -> torch.Tensor:
    """The matrix of a linear map of inputs of `shape`, one basis vector per row."""
    n = shape[0] * shape[1]
    basis = torch.eye(n).reshape(n, *shape)
    return layer_fn(basis).reshape(n, -1)


@pytest.fixture(scope="module")
def model() -> LipschitzCNN:
    torch.manual_seed(0)
    return build_model("lipschitz_cnn", {"width": 16}, n_classes=5, in_leads=1, in_len=187)


def test_the_example_is_found_through_its_entry_points():
    spec = model_spec("lipschitz_cnn")
    assert spec.plugin is not None and spec.plugin.distribution == "nsr-tune-lipschitz"
    assert spec.knobs == {"width": (int, 32, None), "depth": (int, 3, None), "kernel": (int, 7, None)}
    assert objective_fn("lmt").fields == {"c": (float, 0.01), "power_iters": (int, 1)}


def test_the_bound_is_the_product_of_the_exact_spectral_norms(model):
    exact = 1.0
    with torch.no_grad():
        for conv, shape in zip(model.convs, model._shapes, strict=True):
            matrix = _dense(
                lambda u, c=conv: F.conv1d(u, c.weight, stride=c.stride, padding=c.padding), shape
            )
            exact *= torch.linalg.matrix_norm(matrix, ord=2).item()
        exact *= torch.linalg.matrix_norm(model.head.weight, ord=2).item()
        bound = model.lipschitz_bound(iters=3000).item()
    # Power iteration approaches each norm from below; LMT keeps its iterate between steps.
    assert bound == pytest.approx(exact, rel=1e-4)


def test_no_pair_of_real_beats_exceeds_the_bound(model, beats):
    x, _, _ = beats
    a, b = x[:200], x[200:400]
    with torch.no_grad():
        bound = model.lipschitz_bound(iters=300).item()
        ratio = (model(a) - model(b)).norm(dim=1) / (a - b).flatten(1).norm(dim=1)
    assert ratio.max().item() <= bound


def test_lmt_raises_every_wrong_logit_by_the_margin(model, beats):
    x, y, _ = beats
    config = ObjectiveConfig(name="lmt", params={"c": 0.01, "power_iters": 300})
    out = objective_fn("lmt")(model, x[:16], y[:16], config=config, mask=None, generator=None)
    with torch.no_grad():
        bound = model.lipschitz_bound(iters=1).item()
        z = model(x[:16])
    margin = math.sqrt(2) * 0.01 * math.sqrt(187) * bound
    wrong = 1 - F.one_hot(y[:16], 5).float()
    assert out.loss.item() == pytest.approx(F.cross_entropy(z + margin * wrong, y[:16]).item(), rel=1e-5)
    assert out.logs["lipschitz"] == pytest.approx(bound, rel=1e-5)
    with pytest.raises(TypeError, match="the lmt objective needs a model with lipschitz_bound"):
        cnn = build_model("cnn", n_classes=5)
        objective_fn("lmt")(cnn, x[:2], y[:2], config=config, mask=None, generator=None)


EXAMPLE_SPACE = Path(__file__).parents[1] / "examples" / "nsr_tune_lipschitz" / "lmt_dry_run.yaml"


@pytest.mark.slow
def test_the_example_study_runs_ce_nsr_and_lmt_to_a_front(tmp_path):
    """The README's example study, cut to one epoch and the tiny protocols: a smoke test."""
    space = yaml.safe_load(EXAMPLE_SPACE.read_text())
    space["data"]["max_train_beats"] = 600
    space["optim"]["epochs"] = 1
    space["evaluation"] = {"search": TINY_EVAL, "test": TINY_EVAL, "final": {**TINY_FINAL, "top_ranks": 9}}
    space["search"]["num_samples"] = 3  # the three start_with points: ce, nsr, lmt
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        outcome = run_study(
            StudyOptions(
                space=parse_space(yaml.safe_dump(space), where=str(EXAMPLE_SPACE)),
                name="lmt",
                storage=str(tmp_path / "ray"),
                mlflow_uri=uri,
                data_dir="bundled",
                local_cpus=2,
            )
        )
    finally:
        ray.shutdown()  # the local Ray this study started: the next test starts its own
    assert outcome.n_trials == 3 and outcome.n_errors == 0
    client = MlflowClient(uri)
    runs = client.search_runs([outcome.experiment_id])
    children = {r.data.params["objective.name"]: r for r in runs if r.info.run_id != outcome.parent_run_id}
    assert set(children) == {"ce", "nsr", "lmt"}
    assert children["lmt"].data.params["plugins.objective.distribution"] == "nsr-tune-lipschitz"
    assert children["lmt"].data.params["objective.params.c"] == "0.005"
    assert "train_lipschitz" in children["lmt"].data.metrics
    assert outcome.final is not None and len(outcome.final.finals) == 3  # every trial, strong protocol
