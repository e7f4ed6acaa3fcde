"""run lineage (resume/retrain parent) and run events (OOM retries, resumes)

Revision 0002, after 0001; 2026-11-25.
"""

from alembic import op
import sqlalchemy as sa

revision, down_revision = "0002", "0001"  # no branch labels, no depends_on


def upgrade() -> None:
    # One batch per change: with two new columns in one batch, SQLite's batch mode sometimes sorts
    # them into a cycle (CircularDependencyError, depending on hash order; a known Alembic pitfall).
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("events", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_run_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_foreign_key("fk_runs_parent_run_id", "runs", ["parent_run_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_runs_parent_run_id", type_="foreignkey")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("parent_run_id")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("events")
