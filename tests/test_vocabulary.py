"""The shared vocabulary is spelled once: metric lists and the display K, devices, audit thresholds, run statuses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.metric_keys import DISPLAY_K, RANKING_METRICS, at_k, compared_keys, ranking_keys
from core.runs.device import DEVICES, is_device
from core.tasks import get_task
from db.enums import TaskKind

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("core", "ui", "pages", "db") for p in (ROOT / d).rglob("*.py")
                 if "migrations/versions" not in p.as_posix()) + [ROOT / "app.py"]  # migrations are history


def _files_matching(pattern: str, *allowed: str) -> list[str]:
    found = re.compile(pattern)
    return [p.relative_to(ROOT).as_posix() for p in SOURCES
            if p.relative_to(ROOT).as_posix() not in allowed and found.search(p.read_text(encoding="utf-8"))]


@pytest.mark.parametrize(("what", "pattern", "home"), [
    ("a metric key at a literal K", r"""["'][a-z_]+@\d+["']|@10\b""", ("core/metric_keys.py",)),
    ("the ranking metric list", r"""["']ndcg["'],\s*["']precision["']""", ("core/metric_keys.py",)),
    ("the classification metric list", r"""["']macro_precision["'],\s*["']macro_recall["']""",
     ("core/metric_keys.py",)),
    ("the device list", r"""["']cpu["'],\s*["']cuda["'],\s*["']mps["']""", ("core/runs/device.py",)),
    ("a run status as a literal",
     r"""(==|!=|\bin|get\()\s*\(?["'](queued|running|completed|failed|cancelled)["']""", ()),
])
def test_spelled_once(what: str, pattern: str, home: tuple[str, ...]) -> None:
    assert _files_matching(pattern, *home) == [], f"{what}: look it up instead"


def test_the_keys_read_as_runs_store_them() -> None:
    assert ranking_keys() == [f"{name}@{DISPLAY_K}" for name in RANKING_METRICS[:-1]] + ["coverage"]
    assert at_k("recall", 5) == "recall@5" and at_k("coverage", 5) == "coverage"
    assert compared_keys(ranking=True)[0] == get_task(TaskKind.INTERACTIONS).headline.key
    assert get_task(TaskKind.CLASSIFICATION).headline.key in compared_keys(ranking=False)
    assert list(get_task(TaskKind.INTERACTIONS).metrics) == compared_keys(ranking=True)


def test_devices() -> None:
    assert DEVICES[0] == "auto"
    assert all(is_device(d) for d in (*DEVICES, "cuda:3", "CPU"))
    assert not any(is_device(d) for d in ("gpu", "cuda:", "cuda:x", "tpu", ""))
