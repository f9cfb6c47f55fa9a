"""The Pareto front as users see it: a real study, a real `mlflow server` and `optuna-dashboard`,
headless Chromium.

`python tune.py --dry-run` writes its study into an SQLite store; `mlflow server` serves that
store on 127.0.0.1; Playwright drives Debian's Chromium (/usr/bin/chromium, never a downloaded
browser) through the MLflow UI exactly as the study's closing lines tell a user to: open the
printed link, tick the objectives and the tag under "Columns", open the parent run's
pareto.png. The same study's Optuna journal is opened with optuna-dashboard, as the README says.
Screenshots are kept under test-output/mlflow-ui/ and test-output/optuna-dashboard/ for a person
to look at.

Under CI (CI=true) a missing browser or Playwright is a failure, not a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from nsr_tune.results.pareto import pareto_analysis
from nsr_tune.study.space import load_space
from nsr_tune.tracking import front_view_url
from tests._helpers import free_port, need, start_mlflow_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO / "test-output" / "mlflow-ui"
# Debian's Chromium as root in a container, on a machine with no route out: no sandbox (root),
# and none of the background calls to Google that a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _need(what: str, ok: bool) -> None:
    need(ok, f"{what} is needed for the MLflow UI test")


@pytest.fixture(scope="module")
def browser():
    _need(f"Chromium at {CHROMIUM} (Debian package chromium)", CHROMIUM.is_file())
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("the Python package playwright (the project's dev extra)", False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The README's main job, `python tune.py --dry-run`, into a private directory."""
    root = tmp_path_factory.mktemp("ui-study")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cmd = [sys.executable, str(REPO / "tune.py"), "--dry-run", "--storage", str(root / "ray")]
    cmd += ["--mlflow-uri", uri, "--local-cpus", "2"]
    env = {**os.environ, "RAY_ADDRESS": "local"}
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("dry_run")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get("nsr_tune.role") == "study")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return {
        "root": root,
        "uri": uri,
        "stdout": out.stdout,
        "exp": exp,
        "parent": parent,
        "children": children,
    }


@pytest.fixture(scope="module")
def server(study):
    """`mlflow server` on 127.0.0.1:<free port> against the study's store."""
    port = free_port()
    proc = start_mlflow_server(study["uri"], port=port, cwd=study["root"])
    yield f"http://127.0.0.1:{port}"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def shots() -> Path:
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    return SHOTS


def _page(browser, *, height: int = 1000):
    page = browser.new_page(viewport={"width": 1600, "height": height})
    page.set_default_timeout(90_000)  # the first page load compiles a large bundle on 2 cores
    return page


def _close_assistant(page) -> None:
    # MLflow 3 opens a chat side panel by default; it is not part of what we look at.
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close.count():
        close.first.click()


def _tick_column(page, name: str) -> None:
    """Tick `name` in the "Columns" menu, found through its search box as a user would."""
    page.get_by_placeholder("Search columns").fill(name)
    title = page.locator(".du-bois-light-tree-title", has_text=re.compile("^" + re.escape(name) + "$"))
    node = page.locator(".du-bois-light-tree-treenode", has=title)
    node.first.locator(".du-bois-light-tree-checkbox").click()


def test_tune_prints_the_link_to_the_front(study):
    objectives = [m for m, _ in load_space("dry_run").objectives]
    link = front_view_url("http://127.0.0.1:5000", study["exp"].experiment_id, objectives)
    lines = study["stdout"].splitlines()
    assert f"  mlflow ui --backend-store-uri {study['uri']}" in lines
    assert f"  {link}" in lines
    assert any(all(o in line for o in [*objectives, "pareto_optimal", "Columns"]) for line in lines)


def test_ui_lists_exactly_the_pareto_optimal_trials_with_objectives_and_tag(study, server, browser, shots):
    space = load_space("dry_run")
    objectives = [m for m, _ in space.objectives]
    children = study["children"]
    values = np.array([[c.data.metrics[o] for o in objectives] for c in children])
    ids = [c.info.run_id for c in children]
    truth = pareto_analysis(
        ids, values, names=objectives, directions=[d + "imize" for _, d in space.objectives]
    )
    expected = {rid for rid, on in zip(truth.ids, truth.mask, strict=True) if on}
    assert expected == {c.info.run_id for c in children if c.data.tags["pareto_optimal"] == "true"}
    # Some trial is always on the front; how many are depends on what training reached on this
    # machine (all of them, at times). The filter leaves out the study's parent run in any case.
    assert expected

    page = _page(browser)
    page.goto(front_view_url(server, study["exp"].experiment_id, objectives))
    page.locator("[row-id]").first.wait_for()
    _close_assistant(page)
    page.get_by_role("button", name="Columns").click()
    for name in [*objectives, "pareto_optimal"]:
        _tick_column(page, name)
    for attribute in ("Dataset", "Source", "Models"):  # empty for these runs; room for the values
        _tick_column(page, attribute)
    page.keyboard.press("Escape")
    columns = [f"metrics.`{o}`" for o in objectives] + ["tags.`pareto_optimal`"]
    for col in columns:
        page.locator(f'.ag-header-cell[col-id="{col}"]').wait_for()
    page.wait_for_timeout(500)  # let the grid settle before the picture
    page.screenshot(path=str(shots / "pareto_runs.png"), full_page=True)

    listed = set(page.locator("[row-id]").evaluate_all("rows => rows.map(r => r.getAttribute('row-id'))"))
    assert listed == expected and study["parent"].info.run_id not in listed
    n = len(expected)  # MLflow says "1 matching run", "2 matching runs"
    assert page.get_by_text(re.compile(rf"\b{n} matching {'run' if n == 1 else 'runs'}\b")).is_visible()
    by_id = {c.info.run_id: c for c in children}
    for rid in expected:
        row = page.locator(f'[row-id="{rid}"]')
        assert row.locator('[col-id="tags.`pareto_optimal`"]').inner_text().strip() == "true"
        for o in objectives:
            shown = row.locator(f'[col-id="metrics.`{o}`"]').inner_text().strip()
            assert float(shown) == pytest.approx(by_id[rid].data.metrics[o], abs=1e-9)
        assert row.get_by_text(by_id[rid].info.run_name).is_visible()
    page.close()


def test_parent_run_shows_the_pareto_figure(study, server, browser, shots):
    parent = study["parent"]
    local = MlflowClient(study["uri"]).download_artifacts(
        parent.info.run_id, "pareto.png", str(study["root"])
    )
    width, height = struct.unpack(">II", Path(local).read_bytes()[16:24])  # the PNG's IHDR

    # Tall enough that the artifact pane shows the whole figure, x axis included.
    page = _page(browser, height=1400)
    page.goto(
        f"{server}/#/experiments/{study['exp'].experiment_id}/runs/{parent.info.run_id}/artifacts/pareto.png"
    )
    image = page.locator('img[alt="pareto.png"]').first
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [width, height]
    _close_assistant(page)
    page.screenshot(path=str(shots / "pareto_figure.png"), full_page=True)
    page.close()


def test_the_study_report_opens_offline_in_chromium_without_errors(study, browser, shots):
    """report.html, as the study logged it to its parent run: every figure drawn, no console
    error, and no request leaves the file (the page is cut off from every network)."""
    parent = study["parent"]
    local = Path(
        MlflowClient(study["uri"]).download_artifacts(parent.info.run_id, "report.html", str(study["root"]))
    )
    page = _page(browser, height=1000)
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def refuse(route) -> None:
        outside.append(route.request.url)
        route.abort()

    page.route(re.compile(r"^(?!file:).*"), refuse)
    page.goto(local.as_uri())
    page.wait_for_selector("#front .main-svg")
    # The front, the curves by attack and by class, the hypervolume and the cost per trial.
    assert page.locator(".js-plotly-plot").count() == 5
    text = page.inner_text("body")
    finalists = [c for c in study["children"] if "final_settings" in c.data.tags]
    assert finalists
    for child in finalists:
        assert child.info.run_name in text
    for heading in ("Finalists", "Noise stress test", "Gradient-masking flags", "Search space"):
        assert heading in text
    page.screenshot(path=str(shots / "report.png"), full_page=True)
    page.close()
    assert errors == [] and outside == []


def _start_optuna_dashboard(journal: Path, port: int, cwd: Path) -> subprocess.Popen:
    """`optuna-dashboard JOURNAL` on 127.0.0.1:``port``, returned once it answers."""
    import time
    import urllib.request

    exe = Path(sys.executable).parent / "optuna-dashboard"
    need(exe.is_file(), "optuna-dashboard (the project's dev extra) is needed for the dashboard test")
    log = (cwd / "optuna-dashboard.log").open("a")
    proc = subprocess.Popen(
        [str(exe), str(journal), "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                raise AssertionError(
                    f"optuna-dashboard did not answer: {(cwd / 'optuna-dashboard.log').read_text()}"
                ) from None
            time.sleep(0.5)


def test_optuna_dashboard_shows_every_trial_and_the_pareto_front(study, browser):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from nsr_tune.study.startup import OPTUNA_JOURNAL

    journal = next(study["root"].glob(f"ray/*/{OPTUNA_JOURNAL}"))
    ot = optuna.load_study(
        study_name=journal.parent.name, storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    objectives = [m for m, _ in load_space("dry_run").objectives]
    assert ot.metric_names == objectives
    finished = [t for t in ot.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == len(study["children"])  # every trial the study ran, finished
    shots = REPO / "test-output" / "optuna-dashboard"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    port = free_port()
    proc = _start_optuna_dashboard(journal, port, study["root"])
    try:
        page = _page(browser)
        page.goto(f"http://127.0.0.1:{port}/dashboard/studies/0")
        page.get_by_text("Pareto Front").first.wait_for()
        page.wait_for_function("() => document.querySelector('#graph-pareto-front .scatterlayer')")
        page.wait_for_timeout(1000)  # let plotly draw before the picture
        page.screenshot(path=str(shots / "study.png"), full_page=True)
        text = page.inner_text("body")
        assert all(name in text for name in objectives)  # the axes are named after the objectives
        # The Pareto-front view holds one point per finished trial, the best ones its front.
        per_trace = page.evaluate(
            "() => document.getElementById('graph-pareto-front').data.map(t => (t.x || []).length)"
        )
        assert sum(per_trace) == len(finished)
        page.goto(f"http://127.0.0.1:{port}/dashboard/studies/0/trials")
        page.get_by_text(f"{len(ot.trials)} Trials").wait_for()
        listed = page.locator("text=/^Trial \\d+$/").all_inner_texts()
        assert sorted(set(listed)) == sorted(f"Trial {t.number}" for t in ot.trials)
        page.screenshot(path=str(shots / "trials.png"), full_page=True)
        page.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
