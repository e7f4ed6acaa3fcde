"""The layout stays one place per idea: no import cycles, core/ free of UI code, db/ free of core/, modules that
import on their own, and files small enough to be one idea each."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
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


# core's packages, lowest first: a module may import from its own package and from those before it, never from
# one after it (db/ sits below all of core and imports none of it). A new package takes its place here.
PACKAGE_ORDER = ("core", "core.errors", "core.names", "core.metric_keys", "core.formatting", "core.settings",
                 "core.logs", "core.auth", "core.tasks", "core.runs", "core.data", "core.evaluation", "core.charts",
                 "core.text", "core.recs", "core.images", "core.labelling", "core.training", "core.search",
                 "core.health", "core.multilabel", "core.tracking", "core.export", "core.api", "core.cli")


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _order_breaks(graph: dict[str, set[str]], order: tuple[str, ...]) -> list[str]:
    rank = {package: i for i, package in enumerate(order)}
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                  if a.startswith("core") and b.startswith("core") and rank[_package(b)] > rank[_package(a)])


def test_core_packages_import_only_downwards() -> None:
    """No import, at the top or inside a function, points up the declared order: cycles between packages (not only
    between modules) cannot form, and the arrows between packages can be read off one line."""
    graph = {name: (_imports(path) & set(MODULES)) - {name} for name, path in MODULES.items()}
    assert {_package(name) for name in MODULES if name.startswith("core")} == set(PACKAGE_ORDER)
    assert _order_breaks(graph, PACKAGE_ORDER) == []


def test_order_check_finds_an_upward_import() -> None:
    graph = {"core.data.reading": {"core.text.loop", "core.errors"}, "core.text.loop": {"core.data.reading"}}
    assert _order_breaks(graph, ("core.errors", "core.data", "core.text")) == ["core.data.reading -> core.text.loop"]


def _private_uses(tree: ast.AST) -> list[str]:
    """Names with a leading underscore taken from another project module: `from m import _x` or `m._x`."""
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")
                      and not a.name.startswith("__")]
            modules |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.asname and a.name.split(".")[0] in PACKAGES}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    """A leading underscore means "only this module relies on it": a name others need is made public."""
    offenders = {name: uses for name, path in MODULES.items() if (uses := _private_uses(ast.parse(path.read_text())))}
    assert offenders == {}
    assert _private_uses(ast.parse("from db import runs as q\nfrom core.x import _y\nq._aware(1)")) == [
        "core.x._y", "q._aware"]


def test_core_never_imports_streamlit_pages_or_ui() -> None:
    offenders = {name: sorted(i for i in _imports(path) if i.split(".")[0] in ("streamlit", "pages", "ui"))
                 for name, path in MODULES.items() if name.startswith("core")}
    assert {k: v for k, v in offenders.items() if v} == {}


def _internal_streamlit(imports: set[str]) -> list[str]:
    """The Streamlit modules among `imports` that are not its public API (st.*, components.v1, testing)."""
    public = ("streamlit.components.v1", "streamlit.testing", "streamlit.column_config")
    return sorted(i for i in imports if i.startswith("streamlit.") and not i.startswith(public)
                  and i.count(".") > 1 or i.startswith(("streamlit.runtime", "streamlit.web", "streamlit.elements")))


def test_the_app_uses_only_streamlits_public_api() -> None:
    """Streamlit's internals (streamlit.runtime, ...) change without notice: app, pages and ui use st.* only."""
    files = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *(p for n, p in MODULES.items() if n[:2] == "ui")]
    offenders = {f.name: _internal_streamlit(_imports(f)) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert _internal_streamlit({"streamlit", "streamlit.runtime.pages_manager", "streamlit.runtime.pages_manager."
                                "PagesManager", "streamlit.components.v1", "streamlit.components.v1.html"}) == [
        "streamlit.runtime.pages_manager", "streamlit.runtime.pages_manager.PagesManager"]


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


# Run in a fresh interpreter: import only the heavy third-party libraries (never a project module), then fork one
# child per project module and import it there. Each child starts from the same project-free state that
# `python -c "import name"` would, without paying torch's and transformers' start-up once per module.
def _third_party_imported_on_import() -> tuple[str, ...]:
    """The third-party modules that project modules import at their top level (`mlflow.pyfunc`,
    `plotly.graph_objects`, ...): importing any project module runs those imports anyway, so loading them once
    before the fork takes nothing from what each child checks (its project imports start from nothing) and spares
    every child that reaches them their start-up."""
    found: set[str] = set()
    for path in MODULES.values():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return tuple(sorted(m for m in found if m.split(".")[0] not in (*PACKAGES, *sys.stdlib_module_names)
                        and m != "__future__"))


THIRD_PARTY_PRELOAD = ("numpy", "pandas", "pyarrow", "scipy", "sqlalchemy", "alembic", "sklearn", "torch",
                       "transformers", "streamlit", "plotly", "fastapi", *_third_party_imported_on_import())
_FORK_EACH = """
import importlib, os, sys, traceback
project, heavy, names, jobs = sys.argv[1].split(","), sys.argv[2].split(","), sys.argv[3].split(","), int(sys.argv[4])
for lib in heavy:
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
leaked = sorted(m for m in sys.modules if m.split(".")[0] in project)
assert not leaked, f"a third-party library imported project modules: {leaked}"
running, failures = {}, {}
def reap():
    pid, status = os.wait()
    name, read_end = running.pop(pid)
    with os.fdopen(read_end) as pipe:
        error = pipe.read().strip()
    if status != 0:
        failures[name] = error or f"exit status {status}"
for name in names:
    if len(running) >= jobs:
        reap()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code = 0
        try:
            importlib.import_module(name)
        except BaseException as exc:
            os.write(write_end, traceback.format_exception_only(exc)[-1].encode())
            code = 1
        os._exit(code)
    os.close(write_end)
    running[pid] = (name, read_end)
while running:
    reap()
for name, error in sorted(failures.items()):
    print(f"{name}\t{error}")
"""


def test_every_module_imports_on_its_own() -> None:
    """Each module in a fresh interpreter: an import that only works after another module was imported first is a
    hidden cycle or a missing import."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", _FORK_EACH, ",".join(PACKAGES), ",".join(THIRD_PARTY_PRELOAD),
                           ",".join(sorted(MODULES)), str(os.cpu_count() or 2)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    failures = dict(line.split("\t", 1) for line in proc.stdout.splitlines() if "\t" in line)
    assert failures == {}
