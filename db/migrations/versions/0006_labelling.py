"""labelling unlabelled datasets: label sets and the labels given

Revision 0006, after 0005; 2026-11-30.
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0006", "0005"  # no branch labels, no depends_on


def upgrade() -> None:
    op.create_table(
        "label_classes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("label_classes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_label_classes_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index("ux_label_classes_dataset_name", ["dataset_id", "name"], unique=True)
    op.create_table(
        "label_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("row_index", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("label_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_label_events_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index("ix_label_events_dataset_row", ["dataset_id", "row_index"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("label_events", schema=None) as batch_op:
        batch_op.drop_index("ix_label_events_dataset_row")
        batch_op.drop_index(batch_op.f("ix_label_events_dataset_id"))
    op.drop_table("label_events")
    with op.batch_alter_table("label_classes", schema=None) as batch_op:
        batch_op.drop_index("ux_label_classes_dataset_name")
        batch_op.drop_index(batch_op.f("ix_label_classes_dataset_id"))
    op.drop_table("label_classes")
