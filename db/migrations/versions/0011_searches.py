"""searches and search_trials: hyperparameter searches, a run of runs (issue 27)

Revision 0011, after 0010; 2026-12-02.
"""

from alembic import op
import sqlalchemy as sa

revision, down_revision = "0011", "0010"  # no branch labels, no depends_on


def upgrade() -> None:
    op.create_table(
        "searches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("model_kind", sa.String(length=40), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("space", sa.JSON(), nullable=False),
        sa.Column("metric", sa.String(length=60), nullable=False),
        sa.Column("n_trials", sa.Integer(), nullable=False),
        sa.Column("minutes", sa.Float(), nullable=True),
        sa.Column("parallel", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("status", sa.Enum("queued", "running", "completed", "stopped", "failed", name="searchstatus",
                                    native_enum=False, length=16), nullable=False),
        sa.Column("status_text", sa.String(length=500), nullable=True),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("best_run_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["best_run_id"], ["runs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("searches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_searches_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_searches_status"), ["status"], unique=False)
    op.create_table(
        "search_trials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("search_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.Enum("running", "complete", "pruned", "failed", "stopped", name="trialstate",
                                   native_enum=False, length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["search_id"], ["searches.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("search_id", "number", name="uq_search_trials_number"),
    )
    with op.batch_alter_table("search_trials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_search_trials_search_id"), ["search_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_search_trials_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_table("search_trials")
    op.drop_table("searches")
