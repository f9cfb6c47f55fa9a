"""The shape of the package, held: no import circles, configuration as a leaf, a results package
and figures that never need torch, no facades, no function too long to hold in mind.

The import graph and function lengths come from benchmarks/architecture.py, which prints them.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _architecture():
    spec = importlib.util.spec_from_file_location("architecture", REPO / "benchmarks" / "architecture.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


arch = _architecture()
GRAPH = arch.import_graph()


def _reach(start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for m in GRAPH[todo.pop()]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def test_the_graph_is_read_from_every_module_and_import():
    # The reader finds imports inside functions and under TYPE_CHECKING too.
    assert {"nsr_tune.config", "nsr_tune.trial", "nsr_tune.results.front", "nsr_tune.cli._main"} <= set(GRAPH)
    assert "nsr_tune.checkpoints" in GRAPH["nsr_tune.cli._model"]  # imported inside a command function


def test_no_import_circles():
    assert arch.cycles(GRAPH) == []
    assert arch.cycles(arch.concern_graph(GRAPH)) == []  # nor between subpackages


def _own(package: str) -> set[str]:
    return {m for m in GRAPH if m.startswith(package + ".")}


def test_the_configuration_is_a_leaf():
    assert _reach("nsr_tune.config") - _own("nsr_tune.config") <= {"nsr_tune._checks", "nsr_tune.errors"}


def test_results_and_plots_depend_on_nothing_that_computes():
    allowed = {"nsr_tune._checks", "nsr_tune._io", "nsr_tune.config", "nsr_tune.errors", "nsr_tune.metrics"}
    for package in ("nsr_tune.results", "nsr_tune.plots"):
        for module in (m for m in GRAPH if m == package or m.startswith(package + ".")):
            outside = {
                m
                for m in _reach(module)
                if not m.startswith(("nsr_tune.results", "nsr_tune.plots"))
                and m not in allowed | _own("nsr_tune.config")
            }
            assert not outside, f"{module} depends on {sorted(outside)}"
    # Figures read results, never the other way round.
    assert not any(
        m.startswith("nsr_tune.plots") for r in GRAPH if r.startswith("nsr_tune.results") for m in _reach(r)
    )


def test_results_plots_and_config_import_without_torch():
    code = (
        "import sys\n"
        "import nsr_tune.config, nsr_tune.metrics, nsr_tune.plots\n"
        "import nsr_tune.results.record, nsr_tune.results.pareto, nsr_tune.results.front\n"
        "import nsr_tune.results.flags, nsr_tune.results.finalists, nsr_tune.results.bootstrap\n"
        "import nsr_tune.results.report\n"
        "heavy = ('torch', 'ray', 'mlflow', 'scipy', 'wfdb', 'matplotlib', 'plotly')\n"
        "print(','.join(m for m in heavy if m in sys.modules) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "none"


def test_no_function_is_too_long_to_hold_in_mind():
    long = [f for f in arch.functions() if f.lines > arch.FUNCTION_LIMIT and not f.is_table]
    assert not long, "; ".join(f"{f.path.name}:{f.line} {f.name} ({f.lines} lines)" for f in long)


def _defined(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                elements = target.elts if isinstance(target, ast.Tuple) else [target]
                names.update(t.id for t in elements if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Try):  # a name defined in both branches of a try
            names.update(_defined(ast.Module(body=node.body, type_ignores=[])))
    return names


def _listed(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [ast.literal_eval(e) for e in node.value.elts]
    return []


MODULES = arch.modules()


@pytest.mark.parametrize("module", sorted(m for m, p in MODULES.items() if p.name == "__init__.py"))
def test_a_package_init_lists_its_public_names_and_that_is_all(module):
    tree = ast.parse(MODULES[module].read_text())
    body = tree.body[1:] if tree.body and isinstance(tree.body[0], ast.Expr) else tree.body  # the docstring
    for node in body:
        assert isinstance(node, ast.ImportFrom) or (
            isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__all__"]
        ), f"{module}: line {node.lineno} is neither an import nor __all__"
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            assert node.module.startswith(module + "."), (
                f"{module} imports from {node.module}, outside itself"
            )
    imported = {
        a.asname or a.name
        for n in body
        if isinstance(n, ast.ImportFrom) and n.module != "__future__"
        for a in n.names
    }
    assert imported == set(_listed(tree)), f"{module}: what it imports and what its __all__ lists differ"


@pytest.mark.parametrize("module", sorted(m for m, p in MODULES.items() if p.name != "__init__.py"))
def test_a_module_lists_only_what_it_defines(module):
    tree = ast.parse(MODULES[module].read_text())
    foreign = set(_listed(tree)) - _defined(tree)
    assert not foreign, f"{module} lists {sorted(foreign)} in __all__ but does not define them: a facade"


def test_no_module_reaches_into_another_packages_private_modules():
    for module, targets in GRAPH.items():
        package = module.rsplit(".", 1)[0] if MODULES[module].name != "__init__.py" else module
        for target in targets:
            parent, _, name = target.rpartition(".")
            # A private module is its package's own: nsr_tune._checks serves all of nsr_tune,
            # nsr_tune.data._cpsc only nsr_tune.data.
            inside = package == parent or package.startswith(parent + ".")
            if name.startswith("_") and not name.startswith("__") and not inside:
                pytest.fail(f"{module} imports {target}, a private module of another package")
