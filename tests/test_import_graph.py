"""The package's module-level imports form no cycle, and point the documented way (README Layout).

Read from the source with ``ast`` (nothing is imported): every module of ``lnn_control`` with the
package-dir folders mapped in (``envs/`` → ``lnn_control.envs``, ``policies/`` →
``lnn_control.policies``). Imports inside functions are lazy by design and not edges here.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"lnn_control": "lnn_control", "lnn_control.envs": "envs", "lnn_control.policies": "policies"}


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package, folder in ROOTS.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if package == "lnn_control" and parts and parts[0] in ("envs", "policies"):
                continue
            modules[".".join([package, *parts])] = path
    return modules


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_level_import_cycles():
    modules = _modules()
    assert len(modules) > 150, f"found only {len(modules)} modules: the package layout changed?"
    cycles = _cycles(_edges(modules))
    assert not cycles, f"module-level import cycles (make one side import lazily or move code): {cycles}"


def test_envs_and_nn_stay_below_the_pipeline():
    """envs never import torch-side packages or policies; nn never imports envs (README Layout)."""
    graph = _edges(_modules())
    for name, targets in graph.items():
        if name.startswith("lnn_control.envs"):
            bad = sorted(t for t in targets if t.startswith(("lnn_control.policies", "lnn_control.nn", "lnn_control.train")))
            assert not bad, f"{name} imports {bad}"
        if name.startswith("lnn_control.nn"):
            bad = sorted(t for t in targets if t.startswith("lnn_control.envs"))
            assert not bad, f"{name} imports {bad}"
