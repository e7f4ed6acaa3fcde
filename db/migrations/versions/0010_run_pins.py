"""runs.pinned: the run chosen on purpose for demos (issue 24)

Revision 0010, after 0009; 2026-12-02.
"""

from alembic import op
import sqlalchemy as sa

revision, down_revision = "0010", "0009"  # no branch labels, no depends_on


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("pinned")
