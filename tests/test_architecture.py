"""The layout stays one place per idea: no import cycles, core/ free of UI code, db/ free of core/, modules that
import on their own, and files small enough to be one idea each."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "db", "ui")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if relative.parts[:2] == ("db", "migrations") or relative.stem == "__main__":
                continue  # Alembic loads migrations itself; a __main__ runs its program when imported
            found[".".join(relative.with_suffix("").parts).removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every project module `path` imports, at the top or inside a function (a cycle hidden in a function is
    still a cycle)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_there_are_no_import_cycles() -> None:
    graph = {name: (_imports(path) & set(MODULES)) - {name} for name, path in MODULES.items()}
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_core_never_imports_streamlit_pages_or_ui() -> None:
    offenders = {name: sorted(i for i in _imports(path) if i.split(".")[0] in ("streamlit", "pages", "ui"))
                 for name, path in MODULES.items() if name.startswith("core")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_db_never_imports_core() -> None:
    offenders = {name: sorted(i for i in _imports(path) if i.split(".")[0] == "core")
                 for name, path in MODULES.items() if name.startswith("db")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_sql_outside_db() -> None:
    """db/ owns every query: nothing else builds a SELECT or opens a connection."""
    offenders = []
    for name, path in MODULES.items():
        if name.startswith("db"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy":
                offenders += [f"{name}: {a.name}" for a in node.names if a.name in ("select", "update", "delete",
                                                                                   "insert", "text", "create_engine")]
    assert offenders == []


def test_core_modules_stay_one_idea_each() -> None:
    too_long = {str(p.relative_to(ROOT)): n for p in (ROOT / "core").rglob("*.py")
                if (n := len(p.read_text().splitlines())) > 500}
    assert too_long == {}


def test_every_module_imports_on_its_own() -> None:
    """Each module in a fresh interpreter: an import that only works after another module was imported first is a
    hidden cycle or a missing import."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def load(name: str) -> tuple[str, str]:
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=ROOT,
                              env=env, timeout=120)
        return name, proc.stderr.strip().splitlines()[-1] if proc.returncode else ""

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        failures = {name: error for name, error in pool.map(load, sorted(MODULES)) if error}
    assert failures == {}
