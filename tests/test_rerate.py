"""Re-rating over a real database (SQLite and PostgreSQL): unposted and excluded calls take the tariff in
force at their time, posted charges are never changed silently, corrections are new postings, and a dry
run changes nothing. Calls are stored by the pipeline under the test tariff (tests/helpers.py: local
0.10/min in started minutes, markup 10 %, 0.50 per call, grace 10 s), then re-rated under a new version."""

from __future__ import annotations

import argparse
import io
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import yaml
from sqlalchemy import func, select

from appliance.commands import rerate as rerate_command
from appliance.db.models import Alert, Call, Posting, PostingEvent
from appliance.db.session import make_engine, make_sessionmaker
from appliance.events import GuestCheckedIn, GuestCheckedOut
from appliance.occupancy import apply_guest_event
from appliance.outbox import Outbox
from appliance.pipeline import Pipeline
from appliance.rerate import format_report, rerate
from tests.helpers import CSV_SPEC, make_config

T0 = datetime(2026, 3, 14, 15, 0, tzinfo=timezone.utc)  # Saturday 11:00 in New York
NOW = T0 + timedelta(days=2)
LOCAL = "912125550123"
BASE = {"markup_percent": 10, "surcharge_per_call": "0.50", "grace_seconds": 10, "rounding": "0.01",
        "default": {"per_minute": "0.30"}, "classes": {"local": {"per_minute": "0.10"}}}


def tariff_from(day: str, **version) -> dict:
    """The base tariff, plus a version in force from ``day`` with ``version``'s changes."""
    later = {**BASE, "name": "new", "effective_from": day, **version}
    return {**BASE, "name": "old", "versions": [later]}


PRICIER = tariff_from("2026-03-01", grace_seconds=5, classes={"local": {"per_minute": "0.20"}})
CHEAPER = tariff_from("2026-03-01", classes={"local": {"per_minute": "0.05"}})
FREE = tariff_from("2026-03-01", surcharge_per_call="0", classes={"local": {"per_minute": "0"}})


def line(start: datetime, duration: int, extension: str, number: str = LOCAL) -> bytes:
    return f"{start.isoformat()},{duration},{extension},{number},outgoing,1".encode()


@pytest.fixture
def env(migrated_url: str):
    """Calls A-I (see the comments) under the old tariff; B posted OK, H in flight."""
    config = make_config(migrated_url)
    engine = make_engine(migrated_url)
    sessions = make_sessionmaker(engine)
    pipeline = Pipeline(config, sessions, {"pbx": CSV_SPEC})
    with sessions.begin() as session:
        for room, guest in (("101", "G1"), ("103", "G3"), ("104", "G4")):
            apply_guest_event(session, GuestCheckedIn(room=room, guest_id=guest, name="Guest"),
                              datetime(2026, 2, 1, tzinfo=timezone.utc))
        apply_guest_event(session, GuestCheckedOut(room="104", guest_id="G4"), T0 + timedelta(hours=1))
    outbox = Outbox(sessions, "pms")
    pipeline.ingest("pbx", [line(T0, 60, "101")], T0)  # B: 0.61, will be posted OK
    command = outbox.claim_next(T0)
    outbox.record_answer(command.sequence, "OK", "", "", T0 + timedelta(seconds=1))
    pipeline.ingest("pbx", [line(T0 + timedelta(minutes=1), 61, "101")], T0)  # H: 0.72, sent, no answer yet
    outbox.claim_next(T0 + timedelta(minutes=2))
    pipeline.ingest("pbx", [
        line(T0 + timedelta(minutes=2), 125, "101"),  # A: 0.83, posting open, not sent
        line(T0 + timedelta(minutes=3), 60, "102"),  # C: excluded, room 102 vacant
        line(T0 + timedelta(minutes=4), 5, "101"),  # D: excluded, 5 s within the grace of 10 s
        line(T0 + timedelta(minutes=5), 8, "103"),  # E: excluded, 8 s within the grace
        line(T0 + timedelta(minutes=6), 300, "101", "918005550123"),  # F: free, excluded
        line(T0 + timedelta(minutes=7), 7, "104"),  # G: excluded by grace; the guest left at T0 + 1 h
        line(datetime(2026, 2, 20, 15, 0, tzinfo=timezone.utc), 125, "101"),  # I: February, 0.83, open
    ], T0)
    yield config, sessions, migrated_url
    engine.dispose()


def ids(sessions) -> dict[str, int]:
    """Call ids by letter, in the order the env fixture stored them."""
    with sessions() as session:
        found = list(session.scalars(select(Call.id).order_by(Call.id)))
    return dict(zip("BHACDEFGI", found))


def run(sessions, config, **options):
    with sessions() as session:
        report = rerate(session, config, start=datetime(2026, 2, 1, tzinfo=timezone.utc),
                        end=datetime(2026, 4, 1, tzinfo=timezone.utc), now=NOW, **options)
        session.rollback() if options.get("dry_run") else session.commit()
    return report


def snapshot(sessions) -> tuple:
    with sessions() as session:
        calls = [(c.id, c.amount, c.disposition, c.reason, c.call_class, str(c.rating))
                 for c in session.scalars(select(Call).order_by(Call.id))]
        postings = [(p.id, p.amount, p.state, p.kind)
                    for p in session.scalars(select(Posting).order_by(Posting.id))]
        events = session.scalar(select(func.count()).select_from(PostingEvent))
    return calls, postings, events


def test_rerate_reports_every_difference_and_updates_what_is_not_posted(env) -> None:
    config, sessions, url = env
    letter = ids(sessions)
    report = run(sessions, make_config(url, tariff=PRICIER))
    by_call = {change.call_id: change for change in report.changes}
    # Considered: every outgoing call that is charged or excluded (the free call F too).
    assert report.considered == 9
    # A (open, unsent): 180 s x 0.20/60 = 0.60 + 0.06 + 0.50 = 1.16; the posting follows.
    assert (by_call[letter["A"]].action, by_call[letter["A"]].new_amount) == ("updated", Decimal("1.16"))
    # B (posted OK) and H (in flight) differ but are only reported: 60 s -> 0.20 + 0.02 + 0.50 = 0.72.
    assert (by_call[letter["B"]].action, by_call[letter["B"]].new_amount) == ("review", Decimal("0.72"))
    assert "post-corrections" in by_call[letter["B"]].note
    assert by_call[letter["H"]].note.startswith("the posting is with the PMS")
    # C: vacant room, still excluded, amount updated; E: the new grace of 5 s makes 8 s chargeable: 0.72.
    assert (by_call[letter["C"]].action, by_call[letter["C"]].note) == (
        "updated", "room 102 was vacant at the time of the call")
    assert (by_call[letter["E"]].action, by_call[letter["E"]].new_disposition) == ("charged", "charge")
    # G: chargeable now, but the guest left: reported, not posted.
    assert "has checked out: not posted" in by_call[letter["G"]].note
    # D (5 s, still within grace), F (free) and I (February: the old version is in force) are unchanged.
    assert {letter["D"], letter["F"], letter["I"]}.isdisjoint(by_call) and report.unchanged == 3
    with sessions() as session:
        a = session.get(Call, letter["A"])
        assert a.amount == Decimal("1.16") and a.rating["version"] == "new"
        assert a.rating["rerated"]["previous_amount"] == "0.83"
        assert a.postings[0].amount == Decimal("1.16") and a.postings[0].state == "open"
        assert a.postings[0].history[-1].cause.startswith("re-rated on 2026-03-16: 0.83 -> 1.16")
        b = session.get(Call, letter["B"])
        assert b.amount == Decimal("0.61") and b.postings[0].amount == Decimal("0.61")  # untouched
        assert [p.state for p in b.postings] == ["ok"] and len(b.postings[0].history) == 3
        e = session.get(Call, letter["E"])
        assert (e.disposition, e.amount, e.postings[0].state) == ("charge", Decimal("0.72"), "open")
        assert "makes it chargeable (was excluded: 8 s is within the grace time of 10 s)" in \
            e.postings[0].history[0].cause
        g = session.get(Call, letter["G"])
        assert g.disposition == "excluded" and not g.postings
        assert session.get(Call, letter["I"]).rating["version"] == "test"  # untouched: as stored at ingest
    text = "\n".join(format_report(report, "USD"))
    assert f"call {letter['E']} " in text and ": charged -> new posting #" in text
    assert text.endswith("9 calls considered, 3 unchanged, 6 different: 3 updated, 1 charged, 2 review")


def test_dry_run_changes_nothing(env) -> None:
    config, sessions, url = env
    before = snapshot(sessions)
    report = run(sessions, make_config(url, tariff=PRICIER), dry_run=True)
    assert report.dry_run and len(report.changes) == 6
    assert snapshot(sessions) == before


def test_corrections_of_posted_charges_are_new_postings(env) -> None:
    config, sessions, url = env
    letter = ids(sessions)
    report = run(sessions, make_config(url, tariff=CHEAPER), correct_posted=True)
    b = next(change for change in report.changes if change.call_id == letter["B"])
    # B: 60 s at 0.05 = 0.05 + 0.005 + 0.50 = 0.555 -> 0.56; posted 0.61: a refund of 0.05.
    assert (b.action, b.new_amount, b.note) == ("refund", Decimal("0.56"), "correction of -0.05")
    with sessions() as session:
        call = session.get(Call, letter["B"])
        charge, refund = call.postings
        assert (charge.kind, charge.state, charge.amount) == ("charge", "ok", Decimal("0.61"))
        assert (refund.kind, refund.state, refund.amount, refund.refund_of_id) == (
            "refund", "open", Decimal("0.05"), charge.id)
        assert charge.history[-1].cause.endswith(f"correction posting #{refund.id}")
        assert call.amount == Decimal("0.56")


def test_a_higher_price_after_posting_is_a_supplementary_charge(env) -> None:
    config, sessions, url = env
    letter = ids(sessions)
    run(sessions, make_config(url, tariff=PRICIER), correct_posted=True)
    with sessions() as session:
        extra = session.scalars(select(Posting).where(Posting.call_id.is_(None))).one()
        # B: posted 0.61, now 0.72: a supplementary charge of 0.11, not tied to the call (one charge per call)
        assert (extra.kind, extra.amount, extra.room, extra.state) == ("charge", Decimal("0.11"), "101",
                                                                       "open")
        assert extra.history[0].cause.startswith(f"correction of posting #1 (call {letter['B']})")


def test_a_call_made_free_is_withdrawn_or_refunded_and_comes_back(env) -> None:
    config, sessions, url = env
    letter = ids(sessions)
    report = run(sessions, make_config(url, tariff=FREE), correct_posted=True)
    actions = {change.call_id: change.action for change in report.changes}
    assert actions[letter["A"]] == "withdrawn" and actions[letter["B"]] == "refund"
    with sessions() as session:
        a = session.get(Call, letter["A"])
        assert a.disposition == "excluded" and a.postings[0].state == "excluded"
        assert [(h.from_state, h.to_state) for h in a.postings[0].history][-2:] == [
            ("open", "failed"), ("failed", "excluded")]
        b = session.get(Call, letter["B"])
        assert [p.state for p in b.postings] == ["refunded", "open"]  # the whole charge, refunded
    run(sessions, make_config(url, tariff=PRICIER))  # the tariff is fixed again
    with sessions() as session:
        a = session.get(Call, letter["A"])
        assert a.disposition == "charge"
        assert [(p.state, p.amount) for p in a.postings] == [("open", Decimal("1.16"))]
        assert a.postings[0].history[-1].from_state == "excluded"


def test_the_command_prints_the_report(env, tmp_path) -> None:
    config, sessions, url = env
    letter = ids(sessions)
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump({
        "site": {"name": "Test Hotel", "country": "US", "timezone": "America/New_York", "currency": "USD",
                 "access_code": "9", "local_exchange": "212"},
        "database": {"url": url},
        "pms": {"name": "pms", "driver": "fias", "transport": "tcp-client", "host": "127.0.0.1", "port": 1},
        "extensions": [{"numbers": "101-120", "category": "guest"}],
        "tariff": PRICIER,
    }))
    before = snapshot(sessions)
    args = argparse.Namespace(start="2026-03-14", end="2026-03-14", dry_run=True, post_corrections=False,
                              config=str(path))
    out = io.StringIO()
    assert rerate_command.run(args, out=out, now=NOW) == 0
    text = out.getvalue()
    assert text.startswith("re-rating calls from 2026-03-14T00:00:00-04:00 to 2026-03-15T00:00:00-04:00 "
                           "(dry run")
    assert f"call {letter['A']} " in text and "local USD 0.83 -> local USD 1.16" in text
    assert "8 calls considered" in text  # February's call I is outside the window
    assert snapshot(sessions) == before
    args.dry_run = False
    assert rerate_command.run(args, out=io.StringIO(), now=NOW) == 0
    with sessions() as session:
        assert session.get(Call, letter["A"]).amount == Decimal("1.16")


def test_an_unrated_call_is_held_then_charged_once_the_tariff_is_fixed(migrated_url: str) -> None:
    # No default rate and no local rate: the call is neither blocked nor silently free; the pipeline holds
    # it as a charge with a failed posting of 0 and the reason, and re-rating with a complete tariff
    # re-opens that posting with the price (the guest is still in house). tests/test_rating_held.py has
    # the other outcomes and the re-post.
    broken = make_config(migrated_url, tariff={"classes": {"international": {"per_minute": "1.20"}}})
    engine = make_engine(migrated_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        apply_guest_event(session, GuestCheckedIn(room="101", guest_id="G1", name="Guest"),
                          T0 - timedelta(days=1))
    Pipeline(broken, sessions, {"pbx": CSV_SPEC}).ingest("pbx", [line(T0, 125, "101")], T0)
    reason = "not rated: no rate for local calls and plan main version base has no default rate"
    with sessions() as session:
        call = session.scalars(select(Call)).one()
        assert (call.disposition, call.amount, call.reason) == ("charge", Decimal("0"), reason)
        assert call.rating["rule"] == "not rated"
        [posting] = call.postings
        assert (posting.state, posting.amount, posting.reason) == ("failed", Decimal("0"), reason)
        assert [(e.from_state, e.to_state) for e in posting.history] == [("", "failed")]
        alert = session.scalars(select(Alert)).one()
        assert (alert.rule, alert.call_id, alert.subject) == ("unrated_call", call.id, "101")
    report = run(sessions, make_config(migrated_url, tariff=PRICIER))
    assert [change.action for change in report.changes] == ["re-opened"]
    with sessions() as session:
        call = session.scalars(select(Call)).one()
        assert (call.disposition, call.amount, call.reason) == ("charge", Decimal("1.16"), "")
        assert [(p.state, p.amount) for p in call.postings] == [("open", Decimal("1.16"))]
        assert call.postings[0].history[-1].from_state == "failed"
    engine.dispose()
