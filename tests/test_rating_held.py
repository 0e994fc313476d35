"""A call the tariff cannot price is held as ``failed`` with the reason (issue 3), and is charged only once
the tariff is fixed: by a re-post (appliance.actions) or by ``appliance rerate`` (appliance.rerate).

The held call is written into the database the way the pipeline stores it: disposition ``charge``, amount
0, ``rating["rule"] == "not rated"``, its charge posting created directly in ``failed`` (amount 0, reason
"not rated: <problem>", history "" -> failed) and an ``unrated_call`` alert. SQLite and PostgreSQL.

Tariffs (tests/helpers.py make_config): the fixed one prices a local call at 0.10 per started minute,
markup 10 %, 0.50 per call, rounding up to 0.01. The held call lasts 125 s: billed 180 s (first block of
60 s, then started minutes) = 0.30; markup 0.03; surcharge 0.50: 0.83.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance import actions
from appliance.db.models import Alert, AuditEntry, Call, Posting, PostingEvent
from appliance.db.session import make_engine, make_sessionmaker
from appliance.events import GuestCheckedIn, GuestCheckedOut
from appliance.numbering import Classifier, plan_for_site
from appliance.occupancy import apply_guest_event, stay_at
from appliance.outbox import Outbox
from appliance.rating import RatingInput, TariffBook, rate
from appliance.rerate import format_report, rerate
from tests.helpers import make_config

T0 = datetime(2026, 3, 14, 15, 0, tzinfo=timezone.utc)  # Saturday 11:00 in New York
NOW = T0 + timedelta(days=1)
LOCAL = "912125550123"
FIXED = {"name": "fixed", "markup_percent": 10, "surcharge_per_call": "0.50", "grace_seconds": 10,
         "rounding": "0.01", "default": {"per_minute": "0.30"}, "classes": {"local": {"per_minute": "0.10"}}}
# No local rate and no default rate: a local call cannot be priced.
BROKEN = {"name": "broken", "classes": {"international": {"per_minute": "1.20"}}}
PROBLEM = "no rate for local calls and plan main version broken has no default rate"
FREE = {**FIXED, "name": "free", "surcharge_per_call": "0", "classes": {"local": {"per_minute": "0"}}}


@pytest.fixture
def sessions(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def config(url: str, tariff: dict):
    return make_config(url, tariff=tariff)


def hold(session: Session, url: str, *, room: str = "101", start: datetime = T0, checked_out: bool = False,
         duration: int = 125) -> tuple[int, int]:
    """A held call and its failed posting, as the pipeline stores them; returns (call id, posting id)."""
    apply_guest_event(session, GuestCheckedIn(room=room, guest_id=f"G{room}", name="Guest"),
                      start - timedelta(days=1))
    if checked_out:
        apply_guest_event(session, GuestCheckedOut(room=room, guest_id=f"G{room}"), start + timedelta(hours=1))
    stay = stay_at(session, room, start)
    broken = config(url, BROKEN)
    classification = Classifier(plan_for_site(broken.site))(LOCAL)
    rating = rate(RatingInput(classification=classification, duration=duration, start=start),
                  TariffBook(broken.tariff, broken.site.tz))
    assert rating.problem == PROBLEM and rating.breakdown["rule"] == "not rated"
    call = Call(link="pbx", dedup_key=f"held-{room}-{start.isoformat()}", received_at=start, start=start,
                duration=duration, ring=None, extension=room, trunk="1", dialled=LOCAL, caller="",
                direction="outgoing", answered=True, raw=b"raw", category="guest", room=room,
                stay_id=stay.id if stay is not None else None, call_class=classification.call_class,
                destination=classification.country, amount=Decimal("0"), currency="USD",
                rating=rating.breakdown, disposition="charge", reason=rating.reason[:200])
    session.add(call)
    session.flush()
    posting = Posting(call_id=call.id, kind="charge", link="pms", room=room, stay_id=call.stay_id,
                      amount=Decimal("0"), currency="USD", destination=call.destination, state="failed",
                      reason=rating.reason, attempts=0, created_at=start, created_by="daemon",
                      updated_at=start, answer_code="", answer_text="")
    session.add(posting)
    session.flush()
    session.add(PostingEvent(posting_id=posting.id, at=start, from_state="", to_state="failed",
                             cause=rating.reason, actor="daemon"))
    session.add(Alert(rule="unrated_call", severity="warning", subject=room, call_id=call.id, created_at=start,
                      message=f"call {call.id} from {room} could not be rated: {rating.problem}"))
    session.commit()
    return call.id, posting.id


def history(session: Session, posting_id: int) -> list[tuple[str, str, str, str]]:
    return [(e.from_state, e.to_state, e.actor, e.cause) for e in session.scalars(
        select(PostingEvent).where(PostingEvent.posting_id == posting_id).order_by(PostingEvent.id))]


def state(session: Session, call_id: int, posting_id: int) -> tuple:
    session.expire_all()
    call, posting = session.get(Call, call_id), session.get(Posting, posting_id)
    return (call.disposition, call.amount, call.reason, call.rating.get("rule"), posting.state, posting.amount,
            len(history(session, posting_id)))


HELD = ("charge", Decimal("0"), f"not rated: {PROBLEM}", "not rated", "failed", Decimal("0"), 1)


# -- re-post -----------------------------------------------------------------------------------------

def test_repost_rates_the_held_call_and_reopens_its_posting(sessions, migrated_url: str) -> None:
    with sessions() as session:
        call_id, posting_id = hold(session, migrated_url)
        assert state(session, call_id, posting_id) == HELD
        actions.repost(session, posting_id, note="local rate added", actor="it", now=NOW,
                       config=config(migrated_url, FIXED))
        session.commit()
        call, posting = session.get(Call, call_id), session.get(Posting, posting_id)
        assert (call.disposition, call.amount, call.reason, call.call_class) == ("charge", Decimal("0.83"), "",
                                                                                 "local")
        assert (call.rating["rule"], call.rating["amount"], call.rating["version"]) == ("rated", "0.83", "fixed")
        assert call.rating["rerated"]["previous_amount"] == "0.00"
        assert (posting.state, posting.amount, posting.sent_at, posting.note) == ("open", Decimal("0.83"), None,
                                                                                  "local rate added")
        assert history(session, posting_id) == [
            ("", "failed", "daemon", f"not rated: {PROBLEM}"),
            ("failed", "open", "it", "re-rated with the tariff in force at the call: plan main version fixed, "
                                     "0.83; re-posted by it: local rate added")]
        [entry] = session.scalars(select(AuditEntry))
        assert (entry.action, entry.target, entry.username) == ("posting.repost", f"posting:{posting_id}", "it")
        assert (entry.before["amount"], entry.after["amount"], entry.after["state"]) == ("0.00", "0.83", "open")
    command = Outbox(sessions, "pms").claim_next(NOW)
    assert command is not None and (command.room, command.amount_minor) == ("101", 83)


def test_repost_uses_the_version_in_force_at_the_call(sessions, migrated_url: str) -> None:
    # The fix arrives as the tariff of a version from 2026-01-01; a later, dearer version (from the day
    # after the call) must not price it: 0.83, not 180 s x 1.00/60 = 3.00 + 0.30 + 0.50 = 3.80.
    dearer = {**FIXED, "name": "2026-b", "effective_from": "2026-03-15",
              "classes": {"local": {"per_minute": "1.00"}}}
    tariff = {**FIXED, "name": "2026-a", "effective_from": "2026-01-01", "versions": [dearer]}
    with sessions() as session:
        call_id, posting_id = hold(session, migrated_url)
        actions.repost(session, posting_id, note="fixed", actor="it", now=NOW, config=config(migrated_url, tariff))
        session.commit()
        assert session.get(Posting, posting_id).amount == Decimal("0.83")
        assert session.get(Call, call_id).rating["version"] == "2026-a"


@pytest.mark.parametrize(("tariff", "words"), [
    (BROKEN, f"still cannot be rated: {PROBLEM}"),
    (FREE, "is not chargeable (the tariff gives a zero amount); there is nothing to post"),
    (None, "needs the tariff, and this request did not have the configuration"),
])
def test_a_repost_that_cannot_price_the_call_is_refused_and_changes_nothing(
        sessions, migrated_url: str, tariff: dict | None, words: str) -> None:
    with sessions() as session:
        call_id, posting_id = hold(session, migrated_url)
        with pytest.raises(actions.ActionError, match=words.replace("(", r"\(").replace(")", r"\)")):
            actions.repost(session, posting_id, note="try", actor="it", now=NOW,
                           config=config(migrated_url, tariff) if tariff else None)
        session.rollback()
        assert state(session, call_id, posting_id) == HELD
        assert session.scalars(select(AuditEntry)).first() is None


def test_held_postings_cannot_be_marked_posted_but_can_be_written_off(sessions, migrated_url: str) -> None:
    with sessions() as session:
        call_id, posting_id = hold(session, migrated_url)
        with pytest.raises(actions.ActionError, match="was never sent to the PMS"):
            actions.mark_posted(session, posting_id, note="booked by hand", actor="it", now=NOW)
        session.rollback()
        assert state(session, call_id, posting_id) == HELD
        actions.write_off(session, posting_id, note="test call from the installer", actor="it", now=NOW)
        session.commit()
        assert session.get(Posting, posting_id).state == "excluded"
        assert history(session, posting_id)[-1] == ("failed", "excluded", "it",
                                                    "written off by it: test call from the installer")


def test_bulk_repost_reopens_what_rates_and_reports_the_rest(sessions, migrated_url: str) -> None:
    with sessions() as session:
        held_call, held = hold(session, migrated_url, room="101")
        short_call, short = hold(session, migrated_url, room="102", duration=8)  # within the grace time
        result = actions.resolve_failed(session, "repost", [held, short], note="tariff fixed", actor="it",
                                        now=NOW, config=config(migrated_url, FIXED))
        session.commit()
        assert result.done == [held]
        assert result.refused == [(short, f"Posting {short}: re-rated, call {short_call} is not chargeable "
                                          "(8 s is within the grace time of 10 s); there is nothing to post. "
                                          "Write the posting off.")]
        assert state(session, short_call, short)[4:6] == ("failed", Decimal("0"))
        assert state(session, held_call, held)[4:6] == ("open", Decimal("0.83"))


# -- appliance rerate --------------------------------------------------------------------------------

def run(sessions, url: str, tariff: dict, *, dry_run: bool = False):
    with sessions() as session:
        report = rerate(session, config(url, tariff), start=T0 - timedelta(days=1), end=T0 + timedelta(days=1),
                        now=NOW, dry_run=dry_run)
        session.rollback() if dry_run else session.commit()
    return report


def test_rerate_reopens_held_calls_and_lists_each(sessions, migrated_url: str) -> None:
    with sessions() as session:
        call_id, posting_id = hold(session, migrated_url)
    dry = run(sessions, migrated_url, FIXED, dry_run=True)
    [change] = dry.changes
    assert (change.call_id, change.action, change.old_amount, change.new_amount, change.posting_state) == (
        call_id, "re-opened", Decimal("0"), Decimal("0.83"), "failed")
    lines = format_report(dry, "USD")
    assert f"call {call_id} " in lines[1] and ": re-opened (was not rated: no rate for local calls" in lines[1]
    assert lines[-1] == "1 calls considered, 0 unchanged, 1 different: 1 re-opened"
    with sessions() as session:
        assert state(session, call_id, posting_id) == HELD  # the dry run wrote nothing

    report = run(sessions, migrated_url, FIXED)
    assert [c.action for c in report.changes] == ["re-opened"]
    with sessions() as session:
        assert state(session, call_id, posting_id) == ("charge", Decimal("0.83"), "", "rated", "open",
                                                       Decimal("0.83"), 2)
        from_state, to_state, actor, cause = history(session, posting_id)[-1]
        assert (from_state, to_state, actor) == ("failed", "open", "rerate")
        assert cause == (f"re-rated on {NOW:%Y-%m-%d}: plan main version fixed, 0.83; re-opened "
                         f"(was not rated: {PROBLEM})")
    # Once rated, a second run finds nothing to do.
    assert run(sessions, migrated_url, FIXED).changes == []


def test_rerate_lists_a_call_it_still_cannot_price(sessions, migrated_url: str) -> None:
    with sessions() as session:
        call_id, posting_id = hold(session, migrated_url)
    report = run(sessions, migrated_url, BROKEN)
    [change] = report.changes
    assert (change.action, change.note) == ("not rated", f"still not rated: {PROBLEM}")
    assert format_report(report, "USD")[-1] == "1 calls considered, 0 unchanged, 1 different: 1 not rated"
    with sessions() as session:
        assert state(session, call_id, posting_id) == HELD


def test_rerate_withdraws_a_held_call_that_is_not_chargeable(sessions, migrated_url: str) -> None:
    with sessions() as session:
        call_id, posting_id = hold(session, migrated_url)
    [change] = run(sessions, migrated_url, FREE).changes
    assert (change.action, change.new_disposition) == ("withdrawn", "excluded")
    with sessions() as session:
        call = session.get(Call, call_id)
        assert (call.disposition, call.reason) == ("excluded", "re-rated: the tariff gives a zero amount")
        assert history(session, posting_id)[-1][:2] == ("failed", "excluded")


def test_rerate_leaves_a_checked_out_guests_posting_failed_with_the_amount(sessions, migrated_url: str) -> None:
    with sessions() as session:
        call_id, posting_id = hold(session, migrated_url, checked_out=True)
    [change] = run(sessions, migrated_url, FIXED).changes
    assert change.action == "review" and "has checked out" in change.note
    with sessions() as session:
        posting = session.get(Posting, posting_id)
        assert (posting.state, posting.amount) == ("failed", Decimal("0.83"))
        assert history(session, posting_id)[-1][:2] == ("failed", "failed")
        assert session.get(Call, call_id).rating["rule"] == "rated"


def test_the_command_reports_held_calls(sessions, migrated_url: str, tmp_path) -> None:
    import argparse

    import yaml

    from appliance.commands import rerate as rerate_command

    with sessions() as session:
        call_id, _ = hold(session, migrated_url)
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump({
        "site": {"name": "Test Hotel", "country": "US", "timezone": "America/New_York", "currency": "USD",
                 "access_code": "9", "local_exchange": "212"},
        "database": {"url": migrated_url},
        "pms": {"name": "pms", "driver": "fias", "transport": "tcp-client", "host": "127.0.0.1", "port": 1},
        "extensions": [{"numbers": "101-120", "category": "guest"}],
        "tariff": FIXED,
    }))
    out = io.StringIO()
    args = argparse.Namespace(start="2026-03-14", end="2026-03-14", dry_run=True, post_corrections=False,
                              config=str(path))
    assert rerate_command.run(args, out=out, now=NOW) == 0
    text = out.getvalue()
    assert text.startswith("re-rating calls from 2026-03-14T00:00:00-04:00")
    assert (f"call {call_id} 2026-03-14T15:00:00+00:00 ext 101 room 101 {LOCAL}: local USD 0.00 -> local USD "
            f"0.83; charge posting #") in text
    assert text.endswith("1 calls considered, 0 unchanged, 1 different: 1 re-opened\n")
