"""The database layer on SQLite and on a real PostgreSQL: round-trips, cascades, migrations, concurrency."""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from db import datasets as dataset_queries
from db import dispose_engines, get_engine, init_db, session_scope, upgrade_database, with_retry
from db import runs as run_queries
from db.enums import ReviewVerdict, RunStatus, TaskKind
from db.models import Dataset, MetricPoint, Review, Run


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, protolab_home: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{protolab_home / 'protolab.db'}"
    return request.getfixturevalue("fresh_postgres_url")


def _dataset(name: str = "reviews") -> Dataset:
    return Dataset(name=name, task=TaskKind.CLASSIFICATION, mapping={"text": "body", "label": "stars"},
                   content_hash="ab" * 32, storage_path="/nowhere", row_count=3,
                   split_counts={"train": 2, "test": 1}, stats={"classes": {"pos": 2, "neg": 1}},
                   warnings=["1 empty row dropped"])


def test_models_round_trip(db_url: str) -> None:
    init_db(db_url)
    with session_scope(db_url) as s:
        ds = dataset_queries.add_dataset(s, _dataset())
        run = run_queries.create_run(s, dataset_id=ds.id, task=TaskKind.CLASSIFICATION, model_kind="lstm",
                                     config={"epochs": 2, "lr": 1e-3})
        run_queries.add_metric_points(s, run.id, [{"name": "train_loss", "value": 0.5, "step": 10},
                                                  {"name": "macro_f1", "value": 0.8, "epoch": 1.0,
                                                   "split": "validation"}])
        run_queries.add_review(s, run.id, reviewer="Ada", verdict=ReviewVerdict.APPROVE, comment="ship it")
        run_id, ds_id = run.id, ds.id
    dispose_engines()
    with session_scope(db_url) as s:
        ds = dataset_queries.get_dataset(s, ds_id)
        assert ds.mapping == {"text": "body", "label": "stars"}
        assert ds.stats["classes"] == {"pos": 2, "neg": 1}
        assert ds.warnings == ["1 empty row dropped"]
        run = run_queries.get_run(s, run_id)
        assert run.status is RunStatus.QUEUED and run.config == {"epochs": 2, "lr": 1e-3}
        assert run.events == []
        assert [(p.name, p.value, p.split) for p in run.metric_points] == [
            ("train_loss", 0.5, "train"), ("macro_f1", 0.8, "validation")]
        assert run.reviews[0].verdict is ReviewVerdict.APPROVE
        assert dataset_queries.find_dataset(s, "reviews").id == ds_id
        assert dataset_queries.find_dataset(s, str(ds_id)).id == ds_id


def test_deleting_a_dataset_cascades_to_runs_points_and_reviews(db_url: str) -> None:
    init_db(db_url)
    with session_scope(db_url) as s:
        ds = dataset_queries.add_dataset(s, _dataset())
        run = run_queries.create_run(s, dataset_id=ds.id, task=TaskKind.CLASSIFICATION, model_kind="tfidf",
                                     config={})
        run_queries.add_metric_points(s, run.id, [{"name": "train_loss", "value": 1.0}])
        run_queries.add_review(s, run.id, reviewer="Bo", verdict=ReviewVerdict.NEEDS_WORK)
        ds_id = ds.id
    with session_scope(db_url) as s:
        dataset_queries.delete_dataset(s, dataset_queries.get_dataset(s, ds_id))
    with session_scope(db_url) as s:
        for model in (Dataset, Run, MetricPoint, Review):
            assert s.scalars(select(model)).all() == []


def test_database_level_cascade_without_the_orm(db_url: str) -> None:
    """Foreign keys are enforced by the database itself (SQLite needs PRAGMA foreign_keys=ON)."""
    init_db(db_url)
    with session_scope(db_url) as s:
        ds = dataset_queries.add_dataset(s, _dataset())
        run_queries.create_run(s, dataset_id=ds.id, task=TaskKind.CLASSIFICATION, model_kind="tfidf", config={})
        ds_id = ds.id
    with session_scope(db_url) as s:
        s.execute(text("DELETE FROM datasets WHERE id = :id"), {"id": ds_id})
    with session_scope(db_url) as s:
        assert s.scalars(select(Run)).all() == []


def test_migrations_upgrade_a_database_created_at_the_first_revision(db_url: str) -> None:
    upgrade_database(db_url, "0001")
    engine = get_engine(db_url)
    columns = {c["name"] for c in inspect(engine).get_columns("runs")}
    assert "events" not in columns and "reviews" not in inspect(engine).get_table_names()
    with engine.begin() as conn:  # a user's data from the old version
        conn.execute(text("INSERT INTO datasets (name, task, mapping, content_hash, row_count, split_counts, stats, "
                          "warnings, storage_path, changes, created_at) VALUES ('old', 'classification', '{}', 'h', "
                          "1, '{}', '{}', '[]', '/x', '{}', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO runs (dataset_id, task, model_kind, config, status, progress, "
                          "cancel_requested, metrics, created_at) SELECT id, 'classification', 'tfidf', '{}', "
                          "'completed', 1.0, false, '{\"macro_f1\": 0.7}', CURRENT_TIMESTAMP FROM datasets"))
    dispose_engines()
    init_db(db_url)
    engine = get_engine(db_url)
    assert {"events", "parent_run_id", "pinned"} <= {c["name"] for c in inspect(engine).get_columns("runs")}
    assert "reviews" in inspect(engine).get_table_names()
    with session_scope(db_url) as s:
        run = s.scalars(select(Run)).one()
        assert run.metrics == {"macro_f1": 0.7} and run.events == [] and run.status is RunStatus.COMPLETED
        assert run.pinned is False  # 0010: an old run is not pinned for demos


def test_sqlite_runs_in_wal_mode_with_foreign_keys(protolab_home: Path) -> None:
    engine = init_db()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def _write_points(url: str, run_id: int, worker: int, n: int, ready, start, errors) -> None:  # noqa: ANN001
    try:
        os.environ["DATABASE_URL"] = url
        dispose_engines()
        init_db(url)  # connected and migrated before the start line, so the writes themselves overlap
        ready.set()
        start.wait()  # the parent says go once both are ready (it stops waiting on a child that died)
        for i in range(n):
            # As the worker writes: a lock held past the busy timeout by a descheduled writer is retried.
            with_retry(lambda i=i: _write_point(url, run_id, worker, i, n))
    except BaseException:
        errors.put(f"writer {worker}: {traceback.format_exc()}")
        raise


def _write_point(url: str, run_id: int, worker: int, i: int, n: int) -> None:
    with session_scope(url) as s:
        run_queries.add_metric_points(s, run_id, [{"name": f"w{worker}", "value": float(i), "step": i}])
        run = run_queries.get_run(s, run_id)
        run.progress = i / n  # both processes update the same row too


def test_two_processes_write_at_once(db_url: str) -> None:
    init_db(db_url)
    with session_scope(db_url) as s:
        ds = dataset_queries.add_dataset(s, _dataset())
        run_id = run_queries.create_run(s, dataset_id=ds.id, task=TaskKind.CLASSIFICATION, model_kind="lstm",
                                        config={}).id
    dispose_engines()
    ctx = multiprocessing.get_context("spawn")
    # Both start writing together, whenever each has started up (which a busy machine can make slow): the
    # writes overlap on every run. No child waits on a clock: the parent releases them once both are ready, and
    # gives up only when a child died first (a barrier with a timeout broke for both under load: exit 1, 1).
    ready, start, errors = [ctx.Event() for _ in (1, 2)], ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_write_points, args=(db_url, run_id, w, 150, ready[w - 1], start, errors))
             for w in (1, 2)]
    for p in procs:
        p.start()
    while not all(e.is_set() for e in ready) and all(p.is_alive() for p in procs):
        time.sleep(0.05)
    start.set()
    for p in procs:
        p.join(600)
    failures = []
    while not errors.empty():
        failures.append(errors.get(timeout=5))
    assert [p.exitcode for p in procs] == [0, 0], failures
    with session_scope(db_url) as s:
        names = [p.name for p in run_queries.metric_points(s, run_id)]
    assert names.count("w1") == 150 and names.count("w2") == 150


@pytest.mark.parametrize("hash_seed", range(3))
def test_upgrade_from_the_first_revision_is_stable_whatever_the_hash_order(tmp_path: Path, hash_seed: int) -> None:
    """Batch migrations on SQLite can sort columns into a cycle depending on PYTHONHASHSEED."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'old.db'}"
    code = ("from db import upgrade_database as up; "
            f"up({url!r}, '0001'); up({url!r}, 'head'); up({url!r}, '0001'); up({url!r}, 'head')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_threads_starting_up_at_once_migrate_once(protolab_home: Path) -> None:
    """A page thread and the watchdog thread both open the database first thing after start-up."""
    from concurrent.futures import ThreadPoolExecutor

    url = f"sqlite:///{protolab_home / 'threads.db'}"
    with ThreadPoolExecutor(8) as pool:
        engines = list(pool.map(lambda _: init_db(url), range(8)))
    assert len({id(e) for e in engines}) == 1
    assert "reviews" in inspect(engines[0]).get_table_names()


def test_a_script_that_imports_only_db_finds_the_database_in_database_url(tmp_path) -> None:  # noqa: ANN001
    """db/ takes its URL from its caller: the application (core.settings), or a script's DATABASE_URL."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    script = "import db\nwith db.session_scope() as s:\n    print(s.bind.url.database)"
    env = {**os.environ, "PYTHONPATH": str(root), "DATABASE_URL": f"sqlite:///{tmp_path / 'alone.db'}"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "alone.db")


def test_migration_0008_moves_setfit_runs_of_datasets_being_labelled_to_the_retrain_kind(tmp_path) -> None:  # noqa: ANN001
    """Retrains were stored as SetFit runs before they had a job kind; SetFit runs on labelled datasets stay."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade_database(url, "0007")
    engine = create_engine(url)
    # Plain SQL with the 0007 columns only: today's models have columns later revisions add (runs.pinned).
    with engine.begin() as conn:
        for name, mapping in (("pool", '{"unlabelled": true}'), ("labelled", '{"text": "text"}')):
            conn.execute(text("INSERT INTO datasets (name, task, mapping, content_hash, row_count, split_counts, "
                              "stats, warnings, storage_path, changes, created_at) VALUES (:name, 'classification', "
                              ":mapping, 'x', 0, '{}', '{}', '[]', :name, '{}', CURRENT_TIMESTAMP)"),
                         {"name": name, "mapping": mapping})
            conn.execute(text("INSERT INTO runs (dataset_id, task, model_kind, config, status, progress, "
                              "cancel_requested, metrics, events, created_at) SELECT id, 'classification', 'setfit', "
                              "'{}', 'queued', 0.0, false, '{}', '[]', CURRENT_TIMESTAMP FROM datasets "
                              "WHERE name = :name"), {"name": name})
    upgrade_database(url, "head")
    with Session(engine) as s:
        kinds = {run.dataset.name: run.model_kind for run in s.scalars(select(Run))}
    assert kinds == {"pool": "label_retrain", "labelled": "setfit"}


def test_app_settings_are_saved_replaced_and_cleared_by_key(db_url: str) -> None:
    """0014's app_settings on a database at 0013 (SQLite and PostgreSQL): the upsert replaces, a clear removes."""
    from db import app_settings
    from db.enums import AppSettingKey

    upgrade_database(db_url, "0013")
    assert "app_settings" not in inspect(get_engine(db_url)).get_table_names()
    dispose_engines()
    init_db(db_url)
    uri, experiment = AppSettingKey.MLFLOW_TRACKING_URI, AppSettingKey.MLFLOW_EXPERIMENT
    with session_scope(db_url) as s:
        assert app_settings.get_setting(s, uri) is None and app_settings.saved_settings(s) == {}
        app_settings.set_setting(s, uri, "http://a:5000")
    with session_scope(db_url) as s:
        app_settings.set_setting(s, uri, "http://b:5000")  # the row exists: replaced, not a second insert
        app_settings.set_setting(s, experiment, "team")
    with session_scope(db_url) as s:
        assert app_settings.saved_settings(s) == {uri: "http://b:5000", experiment: "team"}
        assert app_settings.clear_setting(s, uri) is True and app_settings.clear_setting(s, uri) is False
        with pytest.raises(ValueError):
            app_settings.set_setting(s, uri, "  ")
    with session_scope(db_url) as s:
        assert app_settings.get_setting(s, uri) is None and app_settings.get_setting(s, experiment) == "team"
