"""``calls.charge_state`` follows the call's charge posting, by the triggers of migration 0008, on SQLite
and PostgreSQL: through the posting's insert, every state change (ORM and Core statements, as the outbox
writes them), a delete, and the backfill; a downgrade removes the triggers and the column."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import inspect, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from appliance.db.models import Call, Posting
from appliance.db.session import alembic_config, make_engine, upgrade
from tests.webadmin.conftest import make_call, make_posting
from webadmin.report_query import STATES

TRIGGERS = {"trg_postings_charge_state_insert", "trg_postings_charge_state_update",
            "trg_postings_charge_state_delete"}


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


def charge_state(engine: Engine, call_id: int) -> str | None:
    with engine.connect() as connection:
        return connection.execute(select(Call.charge_state).where(Call.id == call_id)).scalar_one()


def triggers(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            names = connection.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars()
        else:
            names = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars()
        return set(names) & TRIGGERS


def test_follows_the_charge_through_every_state(engine: Engine) -> None:
    with Session(engine) as session:
        charged = make_call(session)
        uncharged = make_call(session, disposition="incoming", amount=0)
        session.commit()
        assert charge_state(engine, charged.id) is None
        posting = make_posting(session, charged, state="open")
        session.commit()
        assert charge_state(engine, charged.id) == "open"
        # Every state, by the ORM (the web admin's refunds and re-posts) ...
        for state in STATES:
            posting.state = state
            session.commit()
            assert charge_state(engine, charged.id) == state
        # ... and by Core UPDATE statements (the outbox's claims and answers).
        for state in reversed(STATES):
            session.execute(update(Posting).where(Posting.id == posting.id).values(state=state))
            session.commit()
            assert charge_state(engine, charged.id) == state
        # Other columns of the posting leave it alone; so does a refund posting for the same call.
        session.execute(update(Posting).where(Posting.id == posting.id).values(attempts=3, reason="x"))
        refund = make_posting(session, charged, kind="refund", state="failed", amount=-1)
        session.execute(update(Posting).where(Posting.id == refund.id).values(state="ok"))
        session.commit()
        assert charge_state(engine, charged.id) == STATES[0]
        assert charge_state(engine, uncharged.id) is None
        # A charge deleted (not something the appliance does, but the column must not lie).
        session.delete(refund)
        session.delete(posting)
        session.commit()
        assert charge_state(engine, charged.id) is None


def test_backfill_and_downgrade(migrated_url: str, engine: Engine) -> None:
    assert triggers(engine) == TRIGGERS
    command.downgrade(alembic_config(migrated_url), "0007")
    assert triggers(engine) == set()
    assert "charge_state" not in {column["name"] for column in inspect(engine).get_columns("calls")}
    # Without the column, postings are written as before (no trigger left behind to fail).
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO calls (link, dedup_key, received_at, start, duration, extension, trunk, dialled, "
            "caller, direction, answered, account_code, pbx_call_id, transfer, raw, category, room, "
            "call_class, destination, amount, currency, rating, disposition, reason) VALUES ('pbx1', 'k1', "
            "'2026-01-01 10:00:00', '2026-01-01 10:00:00', 60, '2412', '', '', '', 'outgoing', :yes, '', '', "
            "'', :raw, 'guest', '0412', 'local', '', 120, 'USD', '{}', 'charge', '')"),
            {"yes": True, "raw": b"raw"})
        call_id = connection.execute(text("SELECT id FROM calls WHERE dedup_key = 'k1'")).scalar_one()
        connection.execute(text(
            "INSERT INTO postings (call_id, kind, link, room, amount, currency, destination, state, reason, "
            "attempts, answer_code, answer_text, created_at, created_by, updated_at, note) VALUES (:call, "
            "'charge', 'pms', '0412', 120, 'USD', '', 'failed', '', 0, '', '', '2026-01-01 10:00:00', "
            "'daemon', '2026-01-01 10:00:00', '')"), {"call": call_id})
    upgrade(migrated_url)
    assert triggers(engine) == TRIGGERS
    assert charge_state(engine, call_id) == "failed"
