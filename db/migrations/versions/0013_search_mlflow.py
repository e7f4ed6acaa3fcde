"""searches.mlflow_run_id: a search's parent run in MLflow, which its trials' runs name as their parent and a resumed
driver reopens

Revision 0013, after 0012; 2026-12-03.
"""

from alembic import op
import sqlalchemy as sa

revision, down_revision = "0013", "0012"  # no branch labels, no depends_on


def upgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("mlflow_run_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.drop_column("mlflow_run_id")
