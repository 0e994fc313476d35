"""Indexes for the call report (period filter and totals, PBX call id, refunds) and the alert cool-down

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 01:58:33.176111
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import appliance.db.types


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_rule'))
        batch_op.create_index('ix_alerts_rule_subject', ['rule', 'subject', 'created_at'], unique=False)

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_pbx_call_id', ['pbx_call_id'], unique=False)
        batch_op.create_index('ix_calls_start_amount', ['start', 'amount', 'duration'], unique=False)

    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.create_index('ix_postings_refunds', ['created_at'], unique=False, sqlite_where=sa.text("kind = 'refund'"), postgresql_where=sa.text("kind = 'refund'"))



def downgrade() -> None:
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.drop_index('ix_postings_refunds', sqlite_where=sa.text("kind = 'refund'"), postgresql_where=sa.text("kind = 'refund'"))

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_start_amount')
        batch_op.drop_index('ix_calls_pbx_call_id')

    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_rule_subject')
        batch_op.create_index(batch_op.f('ix_alerts_rule'), ['rule'], unique=False)

