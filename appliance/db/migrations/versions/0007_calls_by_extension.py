"""An index for the alert rules' per-call reads (issue 7): an extension's outgoing calls by start

``ix_calls_extension_usage`` (extension, direction, start, disposition, duration, amount) replaces
``ix_calls_extension`` (its leading column serves every lookup that one did). The burst-dialling count
(extension, direction and a start window, transfer legs left out by disposition), the extension's totals
for one day and its history for the baseline are each one range of this index, read without the call rows
on SQLite and PostgreSQL (index-only), so their cost does not grow with the calls table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 03:40:00
"""

from __future__ import annotations

from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

USAGE_COLUMNS = ['extension', 'direction', 'start', 'disposition', 'duration', 'amount']


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_extension_usage', USAGE_COLUMNS, unique=False)
        batch_op.drop_index('ix_calls_extension')


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_extension', ['extension'], unique=False)
        batch_op.drop_index('ix_calls_extension_usage')
