"""label_sets: whether a pool's label set gives one label per text or several tags (the task its labels make), and
label_events.label widened to hold a tag set (a JSON list of up to 50 names)

Revision 0015, after 0014; 2026-12-04.
"""

from alembic import op
import sqlalchemy as sa

revision, down_revision = "0015", "0014"  # no branch labels, no depends_on


def upgrade() -> None:
    op.create_table(
        "label_sets",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id"),
    )
    with op.batch_alter_table("label_events", schema=None) as batch_op:
        batch_op.alter_column("label", existing_type=sa.String(length=100), type_=sa.Text(), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("label_events", schema=None) as batch_op:
        batch_op.alter_column("label", existing_type=sa.Text(), type_=sa.String(length=100), existing_nullable=True)
    op.drop_table("label_sets")
