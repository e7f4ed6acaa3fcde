"""stakeholder reviews of runs

Revision 0003, after 0002; 2026-11-25.
"""

from alembic import op
import sqlalchemy as sa

revision, down_revision = "0003", "0002"  # no branch labels, no depends_on


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=120), nullable=False),
        sa.Column("verdict", sa.Enum("approve", "needs_work", name="reviewverdict", native_enum=False, length=16),
                  nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("compared_run_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reviews_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviews_run_id"))
    op.drop_table("reviews")
