"""Alembic environment: migrations run on the connection db.engine hands over."""

import os

from alembic import context
from sqlalchemy import create_engine

from db.models import Base

target_metadata = Base.metadata


def run_migrations(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:  # `alembic` command line: the database named by DATABASE_URL
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("set DATABASE_URL to the database to migrate (e.g. sqlite:///data/protolab.db)")
    with create_engine(url).connect() as conn:
        run_migrations(conn)
        conn.commit()
