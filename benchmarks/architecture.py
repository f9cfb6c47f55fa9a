"""The shape of the nsr_tune package, read from its source: modules, imports, function lengths.

    python benchmarks/architecture.py            # the tree, the import graph, the longest functions
    python benchmarks/architecture.py --top 20

Every import counts, including those inside functions and under `TYPE_CHECKING`: each is a
dependency of the module that makes it. The graph's depth is the number of modules on its
longest import chain; a cycle is a set of modules that import each other, directly or not. The
same graph between concerns (each subpackage or top-level module of nsr_tune as one node) shows
the layers: what sits on what.
tests/test_architecture.py holds the package to what this reports (no cycle, no function over
FUNCTION_LIMIT lines outside argparse tables).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nsr_tune"
# A function this long no longer reads at a glance; argparse tables are exempt (see is_table).
FUNCTION_LIMIT = 80


@dataclass(frozen=True)
class Function:
    path: Path
    line: int
    name: str
    lines: int
    is_table: bool  # mostly `add_argument` calls: a command-line table, read as a list


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Module name -> file, for every .py file of the package."""
    return {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _imported(node: ast.AST, module: str, is_package: bool, known: dict[str, Path]) -> Iterator[str]:
    """The package's modules that an import statement names (a name imported from a package
    counts as its submodule when there is one of that name)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            here = module.split(".") if is_package else module.split(".")[:-1]
            up = here[: len(here) - (node.level - 1)]
            base = ".".join([*up, base] if base else up)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    else:
        return
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            yield name


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its file."""
    known = modules(root)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            graph[module].update(_imported(node, module, path.name == "__init__.py", known))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found)


def concern_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The import graph between concerns: nsr_tune.data.* as one node nsr_tune.data, and so on."""

    def concern(module: str) -> str:
        return ".".join(module.split(".")[:2])

    out: dict[str, set[str]] = {}
    for a, targets in graph.items():
        out.setdefault(concern(a), set()).update(concern(t) for t in targets if concern(t) != concern(a))
    return out


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest import chain, first importer first. Modules in one cycle count as one."""
    component = {m: m for m in graph}
    for group in cycles(graph):
        for m in group:
            component[m] = group[0]
    edges: dict[str, set[str]] = {c: set() for c in component.values()}
    for a, targets in graph.items():
        edges[component[a]].update(component[b] for b in targets if component[b] != component[a])

    @cache
    def chain(v: str) -> tuple[str, ...]:
        below = max((chain(w) for w in edges[v]), key=len, default=())
        return (v, *below)

    return list(max((chain(v) for v in sorted(edges)), key=len, default=()))


def functions(root: Path = PACKAGE) -> list[Function]:
    """Every function and method of the package, longest first."""
    out = []
    for path in modules(root).values():
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                text = ast.get_source_segment(source, node) or ""
                out.append(Function(path, node.lineno, node.name, n, text.count("add_argument") >= n / 6))
    return sorted(out, key=lambda f: (-f.lines, str(f.path), f.line))


def _tree(root: Path) -> list[str]:
    lines = []
    for module, path in modules(root).items():
        depth = module.count(".") - (0 if path.name == "__init__.py" else 1)
        label = path.name if path.name != "__init__.py" else f"{path.parent.name}/"
        lines.append(f"{len(path.read_text().splitlines()):6d}  {'  ' * depth}{label}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="how many of the longest functions to list")
    parser.add_argument("--root", type=Path, default=PACKAGE, help="the package directory")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    graph = import_graph(root)
    print(f"modules of {root.name} (lines):")
    print("\n".join(_tree(root)))
    chain = longest_chain(graph)
    found = cycles(graph)
    print(f"\nimport graph: {len(graph)} modules, {sum(len(t) for t in graph.values())} imports")
    print(f"depth: {len(chain)} modules on the longest chain: {' -> '.join(chain)}")
    print(f"cycles: {len(found)}" + "".join(f"\n  {' <-> '.join(c)}" for c in found))
    concerns = concern_graph(graph)
    layers = longest_chain(concerns)
    print(f"\nbetween concerns: {len(concerns)} concerns, {len(cycles(concerns))} cycles")
    print(f"depth: {len(layers)} concerns on the longest chain: {' -> '.join(layers)}")
    print(f"\nthe {args.top} longest functions (limit {FUNCTION_LIMIT} lines, argparse tables aside):")
    for f in functions(root)[: args.top]:
        where = f"{f.path.relative_to(root.parent)}:{f.line}"
        print(f"{f.lines:5d}  {where} {f.name}" + ("  (argparse table)" if f.is_table else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
