"""The run folder's file names live in ganaug/runs.py only: every other module asks `RunFolder` or its catalog."""

from __future__ import annotations

import ast
from pathlib import Path

from ganaug import runs

ROOT = Path(__file__).resolve().parents[1]


def _catalog_names() -> set[str]:
    names = {value for key, value in vars(runs).items() if key.isupper() and isinstance(value, str) and "." in value}
    names |= set(runs.NAS_STORAGE_FILES.values())
    names |= {runs.DEFAULT_RUNS_ROOT.as_posix(), runs.DEFAULT_CACHE_DIR.as_posix(), runs.DEFAULT_HISTORY.as_posix()}
    return names


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.lineno, node.value) for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_the_catalog_names_the_files_of_every_stage() -> None:
    names = _catalog_names()
    assert {"run.json", "dataset.parquet", "synthetic.parquet", "evaluation.parquet", "report.md", "last.pt", "best.pt",
            "trials.parquet", "best.json", "study.db", "data/runs", "data/history/gan_runs.parquet"} <= names


def test_no_module_but_runs_names_a_run_folder_file() -> None:
    names = _catalog_names()
    found = []
    for path in sorted([*ROOT.glob("ganaug/**/*.py"), *ROOT.glob("flows/**/*.py")]):
        if path == ROOT / "ganaug" / "runs.py":
            continue
        for line, value in _string_constants(path):
            if value in names or any(value.endswith(f"/{name}") for name in names):
                found.append(f"{path.relative_to(ROOT)}:{line}: {value!r}")
    assert found == [], "use ganaug.runs (RunFolder, GanPaths, NasPaths, TunePaths) instead:\n" + "\n".join(found)
