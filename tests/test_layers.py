"""The layering of DESIGN.md, checked over the import graph of ganaug/ and flows/ (every import, top level or not).

Lowest first: store/runs/errors -> data, classifier -> gan, generate, evaluate, nas, tune -> report -> runner ->
cli, flows. No import runs upward and no two packages import each other (directly or around a loop).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    {"configbase", "errors", "faults", "store", "runs", "runlock", "device", "executor", "watchdog"},
    {"data", "classifier"},
    {"gan", "generate", "evaluate", "nas", "tune", "study", "samplers", "pruning", "cache"},
    {"report"},
    {"runner", "pipeline", "config"},
    {"cli", "flows", "__main__"},
]


def _unit(module: str) -> str | None:
    """The package (or top-level module) of ganaug an import names; flows is one unit."""
    parts = module.split(".")
    if parts[0] == "flows":
        return "flows"
    return parts[1] if parts[0] == "ganaug" and len(parts) > 1 else None


def import_graph() -> dict[str, dict[str, str]]:
    """unit -> {imported unit: a file that imports it}."""
    graph: dict[str, dict[str, str]] = defaultdict(dict)
    for path in sorted([*ROOT.glob("ganaug/**/*.py"), *ROOT.glob("flows/**/*.py")]):
        relative = path.relative_to(ROOT)
        source = _unit(".".join(relative.with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                target = _unit(module)
                if source and target and target != source:
                    graph[source].setdefault(target, str(relative))
    return graph


def _level(unit: str) -> int:
    found = [index for index, layer in enumerate(LAYERS) if unit in layer]
    assert found, f"ganaug/{unit} has no layer: add it to LAYERS (and to DESIGN.md's layering)"
    return found[0]


def test_no_import_runs_upward() -> None:
    upward = [f"{source} -> {target} ({where})" for source, targets in import_graph().items()
              for target, where in targets.items()
              if _level(target) > _level(source)]
    assert upward == []


def test_no_two_packages_import_each_other() -> None:
    graph = import_graph()

    def reaches(start: str) -> set[str]:
        seen, frontier = set(), [start]
        while frontier:
            for target in graph.get(frontier.pop(), {}):
                if target not in seen:
                    seen.add(target)
                    frontier.append(target)
        return seen

    cycles = sorted({tuple(sorted((unit, other))) for unit in graph for other in graph[unit] if unit in reaches(other)})
    assert cycles == []


def test_the_check_sees_the_imports_inside_functions() -> None:
    graph = import_graph()
    assert "report" in graph["runner"]  # imported inside run_evaluate only
    assert "report" not in graph["evaluate"]  # the runner hands the evaluation stage its report writer
    assert "tune" not in graph.get("gan", {})  # the GAN stage records its run history through a runner callback
