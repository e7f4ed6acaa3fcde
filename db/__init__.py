"""The database layer: models, engine/session setup, migrations and query functions.

Nothing outside db/ opens a connection; callers use `session_scope()` and the
query functions in db.datasets and db.runs, which take the session first.
"""

from db.engine import (
    after_commit,
    dispose_engines,
    get_engine,
    init_db,
    read_scope,
    session_scope,
    set_url_source,
    upgrade_database,
    with_retry,
)
from db.enums import ReviewVerdict, RunStatus, TaskKind
from db.models import Base, Dataset, MetricPoint, Review, Run

__all__ = [
    "Base", "Dataset", "MetricPoint", "Review", "ReviewVerdict", "Run", "RunStatus", "TaskKind",
    "after_commit", "dispose_engines", "get_engine", "init_db", "read_scope", "session_scope", "set_url_source",
    "upgrade_database", "with_retry",
]
