"""Alerts: every alert raised, with its delivery state.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from livemodel.store.tables import EventId, Json

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", EventId, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cooldown_s", sa.Float, nullable=False),
        sa.Column("details", Json, nullable=False),
    )
    op.create_index("ix_alerts_model", "alerts", ["model"])
    op.create_index("ix_alerts_key_at", "alerts", ["key", "at"])


def downgrade() -> None:
    op.drop_index("ix_alerts_key_at", "alerts")
    op.drop_index("ix_alerts_model", "alerts")
    op.drop_table("alerts")
