"""Alert deliveries and report schedules in tables of their own

- ``alert_deliveries``: one row per delivery attempt, replacing the log kept in ``alerts.details``
  (``"deliveries"``). Every existing log entry becomes one row carrying its last state, so the history and
  any delivery still waiting survive the upgrade. ``alerts.details`` is left as it was (downgrade keeps it).
- ``report_schedules``: the scheduled report mailings, until now in a JSON file
  (``reports.schedule_file``; the daemon and the web admin import that file once, see
  appliance/reports/schedule_db.py). The three default schedules are created here without recipients,
  so nothing is sent until an admin adds some, as with the file's defaults.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 02:51:08.418066
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

import appliance.db.types


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('report_schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('hour', sa.Integer(), nullable=False),
    sa.Column('minute', sa.Integer(), nullable=False),
    sa.Column('day_of_week', sa.Integer(), nullable=False),
    sa.Column('day_of_month', sa.Integer(), nullable=False),
    sa.Column('formats', sa.JSON(), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('last_run_due', appliance.db.types.UtcDateTime(), nullable=True),
    sa.Column('last_run_at', appliance.db.types.UtcDateTime(), nullable=True),
    sa.Column('last_attempt_at', appliance.db.types.UtcDateTime(), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=False),
    sa.Column('created_at', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_schedules')),
    sa.UniqueConstraint('name', name=op.f('uq_report_schedules_name'))
    )
    op.create_table('alert_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('at', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('outcome', sa.String(length=10), nullable=False),
    sa.Column('error', sa.String(length=300), nullable=False),
    sa.Column('next_attempt_at', appliance.db.types.UtcDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_deliveries_alert_id_alerts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_deliveries'))
    )
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_alert_deliveries_alert', ['alert_id', 'channel', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_deliveries_next_attempt_at'), ['next_attempt_at'], unique=False)

    _seed_schedules()
    _copy_delivery_logs()


# The schedules the JSON store offered when it had no file (appliance/reports/schedule_store.py).
DEFAULT_SCHEDULES = (
    {"name": "daily-summary", "kind": "daily", "hour": 6, "minute": 0, "day_of_week": 0, "day_of_month": 1},
    {"name": "weekly-costs", "kind": "weekly", "hour": 6, "minute": 30, "day_of_week": 0, "day_of_month": 1},
    {"name": "monthly-overview", "kind": "monthly", "hour": 7, "minute": 0, "day_of_week": 0, "day_of_month": 1},
)
SEED_USER = "schema 0005"
OPEN = ("pending", "retry", "sending")


def _seed_schedules() -> None:
    now = datetime.now(timezone.utc)
    table = sa.table(
        "report_schedules", sa.column("name", sa.String), sa.column("kind", sa.String),
        sa.column("hour", sa.Integer), sa.column("minute", sa.Integer), sa.column("day_of_week", sa.Integer),
        sa.column("day_of_month", sa.Integer), sa.column("formats", sa.JSON), sa.column("recipients", sa.JSON),
        sa.column("enabled", sa.Boolean), sa.column("last_error", sa.String),
        sa.column("created_at", appliance.db.types.UtcDateTime()), sa.column("created_by", sa.String),
        sa.column("updated_at", appliance.db.types.UtcDateTime()), sa.column("updated_by", sa.String))
    op.bulk_insert(table, [{**row, "formats": ["csv", "xlsx", "pdf"], "recipients": [], "enabled": True,
                            "last_error": "", "created_at": now, "created_by": SEED_USER, "updated_at": now,
                            "updated_by": SEED_USER} for row in DEFAULT_SCHEDULES])


def _copy_delivery_logs() -> None:
    """``alerts.details["deliveries"][channel]`` -> one ``alert_deliveries`` row with its last state."""
    alerts = sa.table("alerts", sa.column("id", sa.Integer), sa.column("details", sa.JSON),
                      sa.column("created_at", appliance.db.types.UtcDateTime()))
    deliveries = sa.table(
        "alert_deliveries", sa.column("alert_id", sa.Integer), sa.column("channel", sa.String),
        sa.column("target", sa.String), sa.column("attempt", sa.Integer),
        sa.column("at", appliance.db.types.UtcDateTime()), sa.column("outcome", sa.String),
        sa.column("error", sa.String), sa.column("next_attempt_at", appliance.db.types.UtcDateTime()))
    connection = op.get_bind()
    rows = []
    for alert_id, details, created_at in connection.execute(sa.select(alerts.c.id, alerts.c.details,
                                                                      alerts.c.created_at)):
        log = (details or {}).get("deliveries") if isinstance(details, dict) else None
        for channel, entry in (log or {}).items():
            status = str(entry.get("status", "pending"))[:10]
            next_at = entry.get("next_attempt_at")
            delivered = entry.get("delivered_at")
            rows.append({
                "alert_id": alert_id, "channel": str(channel)[:64], "target": "",
                "attempt": int(entry.get("attempts", 0)),
                "at": datetime.fromisoformat(delivered) if delivered else created_at,
                "outcome": status, "error": str(entry.get("last_error", ""))[:300],
                "next_attempt_at": datetime.fromisoformat(next_at) if next_at and status in OPEN else None,
            })
    if rows:
        op.bulk_insert(deliveries, rows)


def downgrade() -> None:
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_deliveries_next_attempt_at'))
        batch_op.drop_index('ix_alert_deliveries_alert')

    op.drop_table('alert_deliveries')
    op.drop_table('report_schedules')
