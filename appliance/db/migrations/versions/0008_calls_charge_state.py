"""The state of a call's charge kept on the call (``calls.charge_state``), for the call report (issue 6)

A call's report state is its charge posting's state, or its disposition when it has no charge. Filtering
or sorting a period by state used to join every call of the period to its charge. This revision copies
the charge's state onto the call:

- ``calls.charge_state``: the state of the call's charge posting, NULL when the call has none.
- Triggers on ``postings`` (AFTER INSERT, AFTER UPDATE OF state, AFTER DELETE, charges only) keep it
  equal to the posting's state. A trigger rather than application code: the outbox changes posting
  states with Core UPDATE statements in several places, and not one of them may be missed.
- ``ix_calls_charge_state_start`` (charge_state, start, amount, duration, disposition, id): the calls
  whose charge is in one state over a period, with what their totals add up, read from the index alone;
  and a period's calls in state order (the charged by state, the uncharged from the NULL range with
  their disposition). The id is there for PostgreSQL, whose index-only scans return indexed columns only.
- The column is filled from the postings (backfill) before the index is built.
- ``ix_calls_report`` (0006) gains a trailing ``id``: a page sorted by a column of that index picks its ids
  from the index alone on PostgreSQL too (a bitmap heap scan of the period's call rows before: 0.4-1.3 s
  for a month sorted by number over 2,000,000 calls with a cold cache). SQLite indexes hold the rowid
  already; the column costs it little.

SQLite triggers: https://sqlite.org/lang_createtrigger.html; PostgreSQL: CREATE TRIGGER with a PL/pgSQL
trigger function (https://www.postgresql.org/docs/current/plpgsql-trigger.html).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 04:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

INDEX_COLUMNS = ['charge_state', 'start', 'amount', 'duration', 'disposition', 'id']
REPORT_COLUMNS = ['start', 'amount', 'duration', 'disposition', 'room', 'extension', 'account_code',
                  'direction', 'dialled', 'caller']

SQLITE_TRIGGERS = [
    """CREATE TRIGGER trg_postings_charge_state_insert AFTER INSERT ON postings
       WHEN NEW.kind = 'charge' AND NEW.call_id IS NOT NULL
       BEGIN UPDATE calls SET charge_state = NEW.state WHERE id = NEW.call_id; END""",
    # OF state: a posting's other columns change on every send and answer; only a state change matters.
    """CREATE TRIGGER trg_postings_charge_state_update AFTER UPDATE OF state ON postings
       WHEN NEW.kind = 'charge' AND NEW.call_id IS NOT NULL AND NEW.state IS NOT OLD.state
       BEGIN UPDATE calls SET charge_state = NEW.state WHERE id = NEW.call_id; END""",
    """CREATE TRIGGER trg_postings_charge_state_delete AFTER DELETE ON postings
       WHEN OLD.kind = 'charge' AND OLD.call_id IS NOT NULL
       BEGIN UPDATE calls SET charge_state = NULL WHERE id = OLD.call_id; END""",
]
SQLITE_DROP = ['DROP TRIGGER IF EXISTS trg_postings_charge_state_insert',
               'DROP TRIGGER IF EXISTS trg_postings_charge_state_update',
               'DROP TRIGGER IF EXISTS trg_postings_charge_state_delete']

POSTGRESQL_TRIGGERS = [
    """CREATE FUNCTION calls_charge_state_sync() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP = 'DELETE' THEN
           UPDATE calls SET charge_state = NULL WHERE id = OLD.call_id;
         ELSE
           UPDATE calls SET charge_state = NEW.state WHERE id = NEW.call_id;
         END IF;
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER trg_postings_charge_state_insert AFTER INSERT ON postings FOR EACH ROW
       WHEN (NEW.kind = 'charge' AND NEW.call_id IS NOT NULL) EXECUTE FUNCTION calls_charge_state_sync()""",
    """CREATE TRIGGER trg_postings_charge_state_update AFTER UPDATE OF state ON postings FOR EACH ROW
       WHEN (NEW.kind = 'charge' AND NEW.call_id IS NOT NULL AND NEW.state IS DISTINCT FROM OLD.state)
       EXECUTE FUNCTION calls_charge_state_sync()""",
    """CREATE TRIGGER trg_postings_charge_state_delete AFTER DELETE ON postings FOR EACH ROW
       WHEN (OLD.kind = 'charge' AND OLD.call_id IS NOT NULL) EXECUTE FUNCTION calls_charge_state_sync()""",
]
POSTGRESQL_DROP = ['DROP TRIGGER IF EXISTS trg_postings_charge_state_insert ON postings',
                   'DROP TRIGGER IF EXISTS trg_postings_charge_state_update ON postings',
                   'DROP TRIGGER IF EXISTS trg_postings_charge_state_delete ON postings',
                   'DROP FUNCTION IF EXISTS calls_charge_state_sync()']


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # A plain ADD COLUMN (no batch): SQLite adds a nullable column without copying the table.
    op.add_column('calls', sa.Column('charge_state', sa.String(length=10), nullable=True))
    if dialect == 'postgresql':
        op.execute("UPDATE calls SET charge_state = p.state FROM postings p "
                   "WHERE p.call_id = calls.id AND p.kind = 'charge'")
    else:
        op.execute("UPDATE calls SET charge_state = (SELECT p.state FROM postings p "
                   "WHERE p.call_id = calls.id AND p.kind = 'charge') "
                   "WHERE id IN (SELECT call_id FROM postings WHERE kind = 'charge')")
    for statement in POSTGRESQL_TRIGGERS if dialect == 'postgresql' else SQLITE_TRIGGERS:
        op.execute(statement)
    op.create_index('ix_calls_charge_state_start', 'calls', INDEX_COLUMNS, unique=False)
    op.drop_index('ix_calls_report', table_name='calls')
    op.create_index('ix_calls_report', 'calls', REPORT_COLUMNS + ['id'], unique=False)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in POSTGRESQL_DROP if dialect == 'postgresql' else SQLITE_DROP:
        op.execute(statement)
    op.drop_index('ix_calls_charge_state_start', table_name='calls')
    op.drop_index('ix_calls_report', table_name='calls')
    op.create_index('ix_calls_report', 'calls', REPORT_COLUMNS, unique=False)
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('charge_state')
