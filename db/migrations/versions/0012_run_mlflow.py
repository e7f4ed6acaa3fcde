"""runs.mlflow_run_id and runs.mlflow_state: where a run went in MLflow, so export-mlflow never sends it twice

Revision 0012, after 0011; 2026-12-02.
"""

from alembic import op
import sqlalchemy as sa

revision, down_revision = "0012", "0011"  # no branch labels, no depends_on


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("mlflow_run_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("mlflow_state", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("mlflow_state")
        batch.drop_column("mlflow_run_id")
