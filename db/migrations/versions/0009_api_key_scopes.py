"""API key scopes: the runs a key may call (null: every run) and whether it may only list runs

Revision 0009, after 0008; 2026-12-02.
"""

from alembic import op
import sqlalchemy as sa

revision, down_revision = "0009", "0008"  # no branch labels, no depends_on


def upgrade() -> None:
    # Keys made before scopes existed keep what they could do: every run, predictions included.
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_ids", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("read_only", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("read_only")
        batch_op.drop_column("run_ids")
