"""Monitoring results: a time series of calculator outputs per window and segment.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from livemodel.store.tables import EventId, Json

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "monitor_results",
        sa.Column("id", EventId, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("window", sa.String(32), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("segment", sa.Text, nullable=False),
        sa.Column("calculator", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("column_name", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("lower", sa.Float, nullable=True),
        sa.Column("upper", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("alert", sa.Boolean, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("details", Json, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "model",
            "version",
            "window",
            "window_start",
            "segment",
            "calculator",
            "metric",
            "column_name",
            name="uq_monitor_results_key",
        ),
    )
    op.create_index("ix_monitor_results_model_start", "monitor_results", ["model", "window_start"])


def downgrade() -> None:
    op.drop_index("ix_monitor_results_model_start", "monitor_results")
    op.drop_table("monitor_results")
