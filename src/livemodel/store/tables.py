"""Tables of the metadata database (SQLAlchemy Core).

The Alembic migrations under ``store/migrations`` create exactly these; a test compares
the two so they cannot drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

#: JSON on SQLite, JSONB on PostgreSQL.
Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY, PostgreSQL wants BIGINT for event logs.
EventId = BigInteger().with_variant(Integer(), "sqlite")

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("description", Text, nullable=True),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("description", Text, nullable=True),
    Column("artifact", Json, nullable=False),
    Column("signature", Json, nullable=False),
    Column("reference", Json, nullable=False),
    Column("lineage", Json, nullable=False),
    Column("metrics", Json, nullable=False),
    Column("tags", Json, nullable=False),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("model", String(128), nullable=False, index=True),
    Column("action", String(64), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("alias", String(64), nullable=True),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("reason", Text, nullable=True),
    Column("details", Json, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("scopes", Json, nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Monitoring results: one row per number of a calculator on a window (and segment).
# Re-running a window deletes its rows (model, version, window, window_start) and inserts
# the new ones in one transaction; the unique key forbids duplicates.
monitor_results = Table(
    "monitor_results",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("window", String(32), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("segment", Text, nullable=False),
    Column("calculator", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("column_name", Text, nullable=False),
    Column("value", Float, nullable=True),
    Column("lower", Float, nullable=True),
    Column("upper", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("alert", Boolean, nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("reason", Text, nullable=True),
    Column("details", Json, nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint(
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
    Index("ix_monitor_results_model_start", "model", "window_start"),
)

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model", String(128), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("state", Json, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Alerts: every alert a check raised, notified or not. ``key`` (rule|model|subject) is what
# deduplication and cooldowns look up; ``state`` is sent, failed or suppressed.
alerts = Table(
    "alerts",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("model", String(128), nullable=False, index=True),
    Column("version", Integer, nullable=True),
    Column("rule", String(128), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("subject", Text, nullable=False),
    Column("key", String(512), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("message", Text, nullable=False),
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Column("cooldown_s", Float, nullable=False),
    Column("details", Json, nullable=False),
    Index("ix_alerts_key_at", "key", "at"),
)
