"""Alembic environment: migrations run on the connection db.engine hands over."""

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
else:  # `alembic` command line: DATABASE_URL or the default settings
    from core.settings import load_settings

    with create_engine(load_settings().database_url).connect() as conn:
        run_migrations(conn)
        conn.commit()
