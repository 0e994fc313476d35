"""Postings by P#: the answer to a posting is matched by (link, P#)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 01:26:16.774248
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import appliance.db.types


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.create_index('ix_postings_sequence', ['link', 'sequence'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.drop_index('ix_postings_sequence')

