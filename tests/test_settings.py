"""core/settings.py is the one reader of Protolab's environment variables, and the README's table is its copy."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from core import settings
from core.errors import ProtolabError

ROOT = Path(__file__).resolve().parents[1]
# The product's code and the benchmarks; tests/ has its own knobs (PROTOLAB_REQUIRE_E2E, ...) for the suite only.
SCANNED = [*ROOT.glob("core/**/*.py"), *ROOT.glob("db/**/*.py"), *ROOT.glob("ui/**/*.py"),
           *ROOT.glob("pages/**/*.py"), *ROOT.glob("bench/**/*.py"), *ROOT.glob("scripts/**/*.py"), ROOT / "app.py"]
# Where a direct read is the right thing, and why.
OWN_READERS = {
    "db/engine.py": "db/ never imports core/: without an application to ask, it falls back to DATABASE_URL",
    "db/migrations/env.py": "the `alembic` command line runs db/ alone",
    "scripts/install_torch.py": "it runs before the project and its dependencies are installed",
}


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_readme_table_is_generated_from_the_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings.readme_with_table(readme) == readme, "regenerate it: python -m core.settings --readme"


def test_no_module_but_settings_reads_a_protolab_variable() -> None:
    readers = {}
    for path in SCANNED:
        name = _relative(path)
        if name == "core/settings.py" or name in OWN_READERS:
            continue
        found = _direct_reads(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            readers[name] = found
    assert readers == {}, "read these through core/settings.py"


def _direct_reads(tree: ast.Module) -> list[str]:
    """Our variables read by their literal name: os.environ.get("X"), os.getenv("X"), os.environ["X"] (loaded)."""
    names = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args \
                and node.func.attr in ("get", "getenv", "pop") and _is_environ_or_os(node.func.value):
            key = node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ_or_os(node.value):
            key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str) \
                and (key.value.startswith("PROTOLAB_") or key.value == "DATABASE_URL"):
            names.append(key.value)
    return names


def _is_environ_or_os(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (isinstance(node, ast.Name)
                                                                             and node.id in ("os", "environ"))


def test_every_variable_the_code_names_is_a_setting() -> None:
    known = {v.name for v in settings.VARIABLES}
    named = {}
    for path in [*SCANNED, ROOT / "README.md", ROOT / "Makefile"]:
        unknown = set(re.findall(r"\bPROTOLAB_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8"))) - known
        if unknown:
            named[_relative(path)] = sorted(unknown)
    assert named == {}, "add each to core/settings.py (then python -m core.settings --readme)"


def test_no_setting_is_read_at_import_time() -> None:
    # A `.get()` of a setting in a module's top-level code would freeze the value when the module is imported.
    # app.py and pages/ are scripts that Streamlit runs again on every rerun, so their top level is not an import.
    frozen = []
    for path in SCANNED:
        name = _relative(path)
        if name == "app.py" or name.startswith(("pages/", "bench/", "scripts/")):
            continue
        body = ast.parse(path.read_text(encoding="utf-8")).body
        if name == "core/settings.py":
            body = [s for s in body if not isinstance(s, ast.If)]  # its `if __name__ == "__main__"` block
        frozen += [f"{name}:{call.lineno}" for call in _import_time_calls(body) if _reads_a_setting(call)]
    assert frozen == []


def _import_time_calls(nodes: list[ast.stmt]) -> list[ast.Call]:
    """The calls that run when the module is imported: all but those inside a function or a lambda."""
    calls, todo = [], list(nodes)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo += [*node.decorator_list] if not isinstance(node, ast.Lambda) else []
            continue
        if isinstance(node, ast.Call):
            calls.append(node)
        todo += list(ast.iter_child_nodes(node))
    return calls


def _reads_a_setting(call: ast.Call) -> bool:
    """`settings.X.get()` or `X.get()` where X is one of core/settings.py's variables."""
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "get"):
        return False
    target = call.func.value
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "settings":
        name = target.attr
    elif isinstance(target, ast.Name):
        name = target.id
    else:
        return False
    return isinstance(getattr(settings, name, None), settings.Variable)


def test_a_setting_is_read_when_asked_typed_with_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROTOLAB_WORKER_POLL_S", raising=False)
    assert settings.WORKER_POLL_S.get() == 0.5
    monkeypatch.setenv("PROTOLAB_WORKER_POLL_S", "2.5")
    assert settings.WORKER_POLL_S.get() == 2.5  # after the import: nothing was read once and kept
    monkeypatch.setenv("PROTOLAB_MAX_RUNS_PER_DEVICE", " 3 ")
    assert settings.MAX_RUNS_PER_DEVICE.get() == 3
    monkeypatch.setenv("PROTOLAB_PRESENTATION", "yes")
    assert settings.PRESENTATION.get() is True
    monkeypatch.setenv("PROTOLAB_ADAPT_THREADS", "0")
    assert settings.ADAPT_THREADS.get() is False
    monkeypatch.setenv("PROTOLAB_TRAIN_PRECISION", "BF16")
    assert settings.TRAIN_PRECISION.get() == "bf16"
    monkeypatch.setenv("PROTOLAB_HOME", "")  # empty is unset
    assert settings.HOME.get() is None and settings.load_settings().home == (Path.cwd() / "data").resolve()


@pytest.mark.parametrize(("name", "value", "says"), [
    ("PROTOLAB_MAX_RUNS_PER_DEVICE", "two", "must be a whole number"),
    ("PROTOLAB_MAX_RUNS_PER_DEVICE", "0", "must be at least 1"),
    ("PROTOLAB_STALE_AFTER_S", "-1", "must be at least 0"),
    ("PROTOLAB_PUBLIC_PRESENTATION", "maybe", "must be 1 or 0"),
    ("PROTOLAB_INFERENCE_PRECISION", "fp16", "must be 'auto', 'fp32' or 'bf16'"),
])
def test_a_value_protolab_cannot_use_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                        says: str) -> None:
    monkeypatch.setenv(name, value)
    variable = next(v for v in settings.VARIABLES if v.name == name)
    with pytest.raises(ProtolabError, match=f"^{name} {re.escape(says)} \\(got '{re.escape(value)}'\\)$"):
        variable.get()


def test_every_setting_has_a_doc_and_a_unique_name() -> None:
    names = [v.name for v in settings.VARIABLES]
    assert len(names) == len(set(names)) and len(names) >= 20
    assert all(v.doc and v.type and v.shown_default for v in settings.VARIABLES)
