"""Engines, sessions and start-up migrations: the only place a database connection is opened.

SQLite gets WAL, foreign keys and a busy timeout so the app and worker processes
can read and write at once; PostgreSQL is used as it comes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY_OPTION = "protolab_read_only"

_engines: dict[str, Engine] = {}
_sessionmakers: dict[str, sessionmaker[Session]] = {}
_migrated: set[str] = set()
# Where the database URL comes from when a caller names none: db/ knows no settings of its own, so the
# application hands it a source once (core.settings does, on import) and tests can swap it.
_url_source: Callable[[], str] | None = None
_lock = threading.Lock()
# Alembic keeps its `op`/`context` proxies in module globals: two threads migrating at once (a page
# and the watchdog, a worker and its heartbeat) would trample each other, so migrations take turns.
_migration_lock = threading.RLock()

T = TypeVar("T")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API objects are untyped
        # Python's sqlite3 opens its own transactions lazily; let SQLAlchemy decide instead.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            # A reader in WAL mode sees a snapshot and never needs the write lock: a plain
            # (deferred) BEGIN lets pages read while workers write, instead of queueing behind them.
            conn.exec_driver_sql("BEGIN")
        else:
            # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the
            # busy timeout instead of failing with "database is locked" on lock upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def set_url_source(source: Callable[[], str]) -> None:
    """Tell db/ how to find the database URL when a call names none (read again on every call)."""
    global _url_source
    _url_source = source


def resolve_url(url: str | None = None) -> str:
    """The URL given, else the application's source, else DATABASE_URL (a script that imports only db/)."""
    if url:
        return url
    if _url_source is not None:
        return _url_source()
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    raise RuntimeError("no database URL: pass one, set DATABASE_URL, or call db.set_url_source() at start-up")


def get_engine(url: str | None = None) -> Engine:
    """One engine per database URL per process, created on first use."""
    url = resolve_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                db_path = url.split("///", 1)[-1]
                if db_path and db_path != ":memory:":
                    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
                _configure_sqlite(engine)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            _engines[url] = engine
        return engine


def upgrade_database(url: str | None = None, revision: str = "head") -> None:
    """Apply Alembic migrations up to `revision` (idempotent)."""
    from alembic import command
    from alembic.config import Config

    engine = get_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with _migration_lock, engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()


def init_db(url: str | None = None) -> Engine:
    """Engine for `url`, migrated to the latest schema once per process."""
    url = resolve_url(url)
    engine = get_engine(url)
    if url not in _migrated:
        with _migration_lock:
            if url not in _migrated:
                upgrade_database(url)
                _migrated.add(url)
    return engine


def dispose_engines() -> None:
    """Forget every engine (tests switch databases; a forked worker must not share sockets)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _sessionmakers.clear()
        _migrated.clear()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session in one transaction that may write: committed on success, rolled back on error."""
    with _sessionmaker(url, read_only=False).begin() as session:
        yield session


@contextmanager
def read_scope(url: str | None = None) -> Iterator[Session]:
    """A session for reading only (pages, listings): it never waits for a writer's lock on SQLite.

    Objects stay usable after the block, as with session_scope; a flush (any write) raises.
    """
    session = _sessionmaker(url, read_only=True)()
    event.listen(session, "before_flush", _refuse_writes)
    try:
        with session.begin():
            yield session
    finally:
        session.close()


def _sessionmaker(url: str | None, *, read_only: bool) -> sessionmaker[Session]:
    """One sessionmaker per database and mode, made on first use (after the database is migrated)."""
    url = resolve_url(url)
    key = f"{'r' if read_only else 'w'}:{url}"
    factory = _sessionmakers.get(key)
    if factory is None:
        engine = init_db(url)
        if read_only:
            engine = engine.execution_options(**{READ_ONLY_OPTION: True})
        with _lock:
            factory = _sessionmakers.setdefault(
                key, sessionmaker(engine, expire_on_commit=False, autoflush=not read_only))
    return factory


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` once the caller's transaction commits (never on rollback): files, processes, anything
    that must not happen for a row that was never stored."""
    event.listen(session, "after_commit", lambda _s: action(), once=True)


def _refuse_writes(session: Session, _context, _instances) -> None:  # noqa: ANN001
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("read_scope() is read-only: use session_scope() to change the database")


def with_retry(fn: Callable[[], T], attempts: int = 5, delay_s: float = 0.2) -> T:
    """Run `fn` again when SQLite reports a lock that outlasted the busy timeout."""
    for attempt in range(attempts):
        try:
            return fn()
        except OperationalError as exc:
            if "locked" not in str(exc).lower() or attempt == attempts - 1:
                raise
            # Routine under write contention; only the last failure (raised) is the caller's to report.
            log.debug("the database is locked (attempt %d of %d); trying again in %.1f s", attempt + 1, attempts,
                      delay_s * (2**attempt))
            time.sleep(delay_s * (2**attempt))
    raise AssertionError("unreachable")
