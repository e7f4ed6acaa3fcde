"""data health audits of dataset versions

Revision 0005, after 0004; 2026-11-30.
"""

from alembic import op
import sqlalchemy as sa

revision, down_revision = "0005", "0004"  # no branch labels, no depends_on


def upgrade() -> None:
    op.create_table(
        "data_audits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("zero_label", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("data_audits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_audits_dataset_id"), ["dataset_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("data_audits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_audits_dataset_id"))
    op.drop_table("data_audits")
