"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 00:07:58.528135
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import appliance.db.types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=128), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('extensions',
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('room', sa.String(length=16), nullable=False),
    sa.Column('description', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('number', name=op.f('pk_extensions'))
    )
    op.create_table('journal',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('link', sa.String(length=32), nullable=False),
    sa.Column('received_at', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('processed', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal'))
    )
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.create_index('ix_journal_pending', ['processed', 'id'], unique=False)

    op.create_table('link_status',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('since', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=False),
    sa.Column('last_record_at', appliance.db.types.UtcDateTime(), nullable=True),
    sa.Column('last_answer_at', appliance.db.types.UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_link_status'))
    )
    op.create_table('pms_counters',
    sa.Column('link', sa.String(length=32), nullable=False),
    sa.Column('next_sequence', sa.Integer(), nullable=False),
    sa.Column('resync_wanted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('link', name=op.f('pk_pms_counters'))
    )
    op.create_table('stays',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('room', sa.String(length=16), nullable=False),
    sa.Column('guest_id', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('share', sa.Boolean(), nullable=False),
    sa.Column('checked_in_at', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('checked_out_at', appliance.db.types.UtcDateTime(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stays'))
    )
    with op.batch_alter_table('stays', schema=None) as batch_op:
        batch_op.create_index('ix_stays_room_in', ['room', 'checked_in_at'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('must_change_password', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', appliance.db.types.UtcDateTime(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('last_login_at', appliance.db.types.UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('calls',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('journal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('link', sa.String(length=32), nullable=False),
    sa.Column('dedup_key', sa.String(length=64), nullable=False),
    sa.Column('received_at', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('start', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('duration', sa.Integer(), nullable=False),
    sa.Column('ring', sa.Integer(), nullable=True),
    sa.Column('extension', sa.String(length=32), nullable=False),
    sa.Column('trunk', sa.String(length=32), nullable=False),
    sa.Column('dialled', sa.String(length=64), nullable=False),
    sa.Column('caller', sa.String(length=64), nullable=False),
    sa.Column('direction', sa.String(length=10), nullable=False),
    sa.Column('answered', sa.Boolean(), nullable=False),
    sa.Column('account_code', sa.String(length=32), nullable=False),
    sa.Column('pbx_call_id', sa.String(length=64), nullable=False),
    sa.Column('transfer', sa.String(length=64), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('room', sa.String(length=16), nullable=False),
    sa.Column('stay_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('call_class', sa.String(length=16), nullable=False),
    sa.Column('destination', sa.String(length=64), nullable=False),
    sa.Column('amount', appliance.db.types.Money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('rating', sa.JSON(), nullable=False),
    sa.Column('disposition', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['journal_id'], ['journal.id'], name=op.f('fk_calls_journal_id_journal')),
    sa.ForeignKeyConstraint(['stay_id'], ['stays.id'], name=op.f('fk_calls_stay_id_stays')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calls')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_calls_dedup_key')),
    sa.UniqueConstraint('journal_id', name=op.f('uq_calls_journal_id'))
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calls_dialled'), ['dialled'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_disposition'), ['disposition'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_extension'), ['extension'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_room'), ['room'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_start'), ['start'], unique=False)

    op.create_table('quarantine',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('journal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('link', sa.String(length=32), nullable=False),
    sa.Column('received_at', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['journal_id'], ['journal.id'], name=op.f('fk_quarantine_journal_id_journal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine'))
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantine_journal_id'), ['journal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quarantine_received_at'), ['received_at'], unique=False)

    op.create_table('postings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('call_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('refund_of_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('link', sa.String(length=32), nullable=False),
    sa.Column('room', sa.String(length=16), nullable=False),
    sa.Column('stay_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('amount', appliance.db.types.Money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('destination', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', appliance.db.types.UtcDateTime(), nullable=True),
    sa.Column('sent_at', appliance.db.types.UtcDateTime(), nullable=True),
    sa.Column('answered_at', appliance.db.types.UtcDateTime(), nullable=True),
    sa.Column('answer_code', sa.String(length=4), nullable=False),
    sa.Column('answer_text', sa.String(length=300), nullable=False),
    sa.Column('created_at', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', appliance.db.types.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_postings_call_id_calls')),
    sa.ForeignKeyConstraint(['refund_of_id'], ['postings.id'], name=op.f('fk_postings_refund_of_id_postings')),
    sa.ForeignKeyConstraint(['stay_id'], ['stays.id'], name=op.f('fk_postings_stay_id_stays')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_postings'))
    )
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_postings_call_id'), ['call_id'], unique=False)
        batch_op.create_index('ix_postings_queue', ['link', 'state', 'next_attempt_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_postings_room'), ['room'], unique=False)
        batch_op.create_index('uq_postings_one_charge_per_call', ['call_id'], unique=True, sqlite_where=sa.text("kind = 'charge'"), postgresql_where=sa.text("kind = 'charge'"))

    op.create_table('posting_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('posting_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', appliance.db.types.UtcDateTime(), nullable=False),
    sa.Column('from_state', sa.String(length=10), nullable=False),
    sa.Column('to_state', sa.String(length=10), nullable=False),
    sa.Column('cause', sa.String(length=300), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=True),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['posting_id'], ['postings.id'], name=op.f('fk_posting_events_posting_id_postings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_posting_events'))
    )
    with op.batch_alter_table('posting_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_posting_events_posting_id'), ['posting_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('posting_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_posting_events_posting_id'))

    op.drop_table('posting_events')
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.drop_index('uq_postings_one_charge_per_call', sqlite_where=sa.text("kind = 'charge'"), postgresql_where=sa.text("kind = 'charge'"))
        batch_op.drop_index(batch_op.f('ix_postings_room'))
        batch_op.drop_index('ix_postings_queue')
        batch_op.drop_index(batch_op.f('ix_postings_call_id'))

    op.drop_table('postings')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantine_received_at'))
        batch_op.drop_index(batch_op.f('ix_quarantine_journal_id'))

    op.drop_table('quarantine')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_start'))
        batch_op.drop_index(batch_op.f('ix_calls_room'))
        batch_op.drop_index(batch_op.f('ix_calls_extension'))
        batch_op.drop_index(batch_op.f('ix_calls_disposition'))
        batch_op.drop_index(batch_op.f('ix_calls_dialled'))

    op.drop_table('calls')
    op.drop_table('users')
    with op.batch_alter_table('stays', schema=None) as batch_op:
        batch_op.drop_index('ix_stays_room_in')

    op.drop_table('stays')
    op.drop_table('pms_counters')
    op.drop_table('link_status')
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.drop_index('ix_journal_pending')

    op.drop_table('journal')
    op.drop_table('extensions')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
