"""the Label page's retrains get their own job kind: SetFit runs on datasets still being labelled become label_retrain

Revision 0008, after 0007; 2026-12-02.
"""

from alembic import op
import sqlalchemy as sa

revision, down_revision = "0008", "0007"  # no branch labels, no depends_on

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
