"""the Label page's retrains get their own job kind: SetFit runs on datasets still being labelled become label_retrain

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

datasets = sa.table("datasets", sa.column("id", sa.Integer), sa.column("mapping", sa.JSON))
runs = sa.table("runs", sa.column("dataset_id", sa.Integer), sa.column("model_kind", sa.String))


def _unlabelled_ids() -> list[int]:
    # Read in Python, not with a JSON operator: SQLite and Postgres spell those differently.
    rows = op.get_bind().execute(sa.select(datasets.c.id, datasets.c.mapping)).all()
    return [row.id for row in rows if isinstance(row.mapping, dict) and row.mapping.get("unlabelled")]


def _rename(old: str, new: str) -> None:
    ids = _unlabelled_ids()
    if ids:
        op.execute(runs.update().where(runs.c.model_kind == old, runs.c.dataset_id.in_(ids)).values(model_kind=new))


def upgrade() -> None:
    _rename("setfit", "label_retrain")


def downgrade() -> None:
    _rename("label_retrain", "setfit")
