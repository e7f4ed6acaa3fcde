"""app_settings: settings saved from the app (the MLflow tracking URI and experiment), one row a key

Revision 0014, after 0013; 2026-12-04.
"""

from alembic import op
import sqlalchemy as sa

revision, down_revision = "0014", "0013"  # no branch labels, no depends_on


def upgrade() -> None:
    op.create_table(
        "app_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("app_settings")
