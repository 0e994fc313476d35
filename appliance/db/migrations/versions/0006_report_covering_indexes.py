"""Indexes for the call report over millions of calls: the period read from one covering index, calls by
disposition and period, charges by state

- ``ix_calls_report`` replaces ``ix_calls_start_amount`` (start, amount, duration): the same leading
  columns plus every column the report filters or sorts a period on (disposition, room, extension,
  account code, direction, dialled and caller numbers), so a period's totals, its number and account
  filters and its sorts read the index alone, not the call rows (which carry the raw record and the
  rating breakdown).
- ``ix_calls_disposition_start``: calls without a charge in one state (excluded, internal, incoming) in
  a period, with what their totals add up.
- ``ix_postings_charge_state`` (partial, charges only): the calls whose charge is in a rare state (open,
  retry, failed, refunded) found from their charges instead of by reading every call of the period.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 03:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

REPORT_COLUMNS = ['start', 'amount', 'duration', 'disposition', 'room', 'extension', 'account_code',
                  'direction', 'dialled', 'caller']


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_report', REPORT_COLUMNS, unique=False)
        batch_op.create_index('ix_calls_disposition_start', ['disposition', 'start', 'amount', 'duration'],
                              unique=False)
        batch_op.drop_index('ix_calls_start_amount')

    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.create_index('ix_postings_charge_state', ['state', 'call_id'], unique=False,
                              sqlite_where=sa.text("kind = 'charge'"),
                              postgresql_where=sa.text("kind = 'charge'"))


def downgrade() -> None:
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.drop_index('ix_postings_charge_state', sqlite_where=sa.text("kind = 'charge'"),
                            postgresql_where=sa.text("kind = 'charge'"))

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_start_amount', ['start', 'amount', 'duration'], unique=False)
        batch_op.drop_index('ix_calls_disposition_start')
        batch_op.drop_index('ix_calls_report')
