"""Periodic rules (PBX silence per hour of day, PMS silence while postings wait, failed postings piling up)
on SQLite and PostgreSQL, with ``now`` passed in as the alert service's clock would."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from appliance import linkstatus
from appliance.alerts.rules import Context
from appliance.alerts.silence import learn_gaps
from appliance.db.models import Alert, LinkStatus, Posting
from appliance.events import GuestCheckedIn
from appliance.occupancy import apply_guest_event
from tests.alerts.conftest import Env
from tests.alerts.test_rules import LOCAL, T0, call, feed, fired, record

NEW_YORK = ZoneInfo("America/New_York")
QUIET_PBX_IS_FINE = {"rules": {"pbx_silence": {"enabled": False}}}
PBX_LINK = {"name": "pbx", "driver": "testcsv", "transport": "tcp-server", "host": "127.0.0.1", "port": 1}


def check(env: Env, now: datetime) -> list[tuple[str, str]]:
    with env.sessions.begin() as session:
        return [(a.rule, a.subject) for a in env.engine.check_periodic(session, now)]


def heard_from_pbx(env: Env, at: datetime) -> None:
    linkstatus.set_state(env.sessions, "pbx", "pbx", "up", "test", at)
    linkstatus.touch_record(env.sessions, "pbx", at)


def test_pbx_silence_with_the_link_s_own_silence_minutes(env_factory) -> None:
    env = env_factory(pbx=[{**PBX_LINK, "silence_minutes": 60}])
    assert check(env, T0) == []  # never heard from: nothing to measure from
    heard_from_pbx(env, T0)
    assert check(env, T0 + timedelta(minutes=60)) == []
    assert check(env, T0 + timedelta(minutes=61)) == [("pbx_silence", "pbx")]
    assert check(env, T0 + timedelta(minutes=62)) == []  # cool-down: 240 minutes by default
    assert check(env, T0 + timedelta(minutes=61 + 239)) == []
    assert check(env, T0 + timedelta(minutes=61 + 240)) == [("pbx_silence", "pbx")]
    heard_from_pbx(env, T0 + timedelta(minutes=400))
    assert check(env, T0 + timedelta(minutes=459)) == []  # a record came 59 minutes ago
    with env.sessions() as session:
        alert = session.scalars(select(Alert).order_by(Alert.id)).first()
    assert alert.severity == "critical"
    assert alert.message == ("no call record from PBX link pbx for 1 h 01 min (after a record at 11h one is "
                             "expected within 1 h 00 min, the link's silence_minutes); the link is up")


def test_pbx_silence_per_hour_of_day_as_configured(env_factory) -> None:
    hourly = [480] * 7 + [30] * 15 + [480] * 2  # quiet nights, busy days
    env = env_factory(alerts={"rules": {"pbx_silence": {"hourly_minutes": hourly}}})
    heard_from_pbx(env, T0)  # 11:00 local: a record is due within 30 minutes
    assert check(env, T0 + timedelta(minutes=30)) == []
    assert check(env, T0 + timedelta(minutes=31)) == [("pbx_silence", "pbx")]
    night = datetime(2026, 3, 16, 23, 30, tzinfo=NEW_YORK)
    heard_from_pbx(env, night)  # 23:30: eight quiet hours are normal
    assert check(env, night + timedelta(hours=7)) == []


def test_pbx_silence_falls_back_to_the_last_call_without_a_link_status(env_factory) -> None:
    env = env_factory(alerts={"rules": {"pbx_silence": {"minutes": 45}}})
    call(env, T0, "101", LOCAL)  # received at T0 + 60 s; no link_status row (no link service in this test)
    assert check(env, T0 + timedelta(minutes=46)) == []
    assert check(env, T0 + timedelta(minutes=47)) == [("pbx_silence", "pbx")]


def test_learned_gaps_per_hour_of_day() -> None:
    context = Context(tz=NEW_YORK, currency="USD")
    ends = []
    for day in range(16, 20):  # four days, a record every 10 minutes from 08:00 to 22:00
        first = datetime(2026, 3, day, 8, 0, tzinfo=NEW_YORK)
        ends += [first + timedelta(minutes=10 * i) for i in range(14 * 6 + 1)]
    # One bad day: an outage from 14:00 to 18:00 on the 17th must not teach that 4 h gaps are normal.
    ends = [e for e in ends if not (e.day == 17 and 14 <= e.hour < 18) or (e.hour == 14 and e.minute == 0)]
    gaps = learn_gaps(ends, context, margin=1.5, min_minutes=30, max_minutes=1440)
    assert gaps[9] == 30  # 10-minute gaps x 1.5 = 15, raised to the floor
    assert gaps[14] == 30  # the 240-minute outage is the single worst sample and is ignored
    assert gaps[22] == 10 * 60 * 1.5  # 22:00 -> 08:00 next day, 10 h x 1.5
    assert gaps[3] == gaps[22]  # an hour that never began a gap takes the longest expectation


def test_pbx_silence_learned_from_history(env_factory) -> None:
    env = env_factory(alerts={"rules": {"pbx_silence": {"learn_days": 4, "min_history_days": 3},
                                        "burst": {"enabled": False}, "baseline": {"enabled": False}}})
    records = []
    for day in range(12, 16):  # Thursday to Sunday before T0: every 30 minutes from 08:00 to 22:00
        first = datetime(2026, 3, day, 8, 0, tzinfo=NEW_YORK)
        records += [record(first + timedelta(minutes=30 * i), f"1{i % 20 + 1:02d}", LOCAL, duration=0)
                    for i in range(29)]
    feed(env, *records, now=T0 - timedelta(hours=8))
    heard_from_pbx(env, datetime(2026, 3, 16, 14, 0, tzinfo=NEW_YORK))
    at_two = datetime(2026, 3, 16, 14, 0, tzinfo=NEW_YORK)
    assert check(env, at_two + timedelta(minutes=45)) == []  # 30-minute gaps x 1.5
    assert check(env, at_two + timedelta(minutes=46)) == [("pbx_silence", "pbx")]
    with env.sessions() as session:
        alert = session.scalars(select(Alert)).one()
    assert alert.details["expected_from"] == "learned from the last 4 days"
    late = datetime(2026, 3, 16, 22, 0, tzinfo=NEW_YORK)
    heard_from_pbx(env, late)
    assert check(env, late + timedelta(hours=9)) == []  # 22:00 -> 08:00 is normal at night


def test_pbx_silence_uses_the_fallback_until_it_has_history(env_factory) -> None:
    env = env_factory()
    call(env, T0, "101", LOCAL)
    heard_from_pbx(env, T0)
    assert check(env, T0 + timedelta(minutes=240)) == []
    assert check(env, T0 + timedelta(minutes=241)) == [("pbx_silence", "pbx")]


def waiting_posting(env: Env, at: datetime) -> None:
    with env.sessions.begin() as session:
        apply_guest_event(session, GuestCheckedIn(room="101", guest_id="G1", name="Guest"),
                          at - timedelta(days=1))
    call(env, at - timedelta(minutes=1), "101", LOCAL)  # posted at ``at``


def pms_answered(env: Env, at: datetime) -> None:
    linkstatus.set_state(env.sessions, "pms", "pms", "up", "test", at - timedelta(days=1))
    with env.sessions.begin() as session:
        session.get(LinkStatus, "pms").last_answer_at = at


def test_pms_silence_while_postings_wait(env_factory) -> None:
    env = env_factory()  # 60 minutes by default
    pms_answered(env, T0 - timedelta(days=3))  # a quiet hotel: the last answer is old, nothing waited
    assert check(env, T0) == []
    waiting_posting(env, T0)
    assert check(env, T0 + timedelta(minutes=60)) == []
    assert check(env, T0 + timedelta(minutes=61)) == [("pms_silence", "pms")]
    with env.sessions() as session:
        alert = session.scalars(select(Alert)).one()
    assert alert.message == ("the PMS (link pms) has not answered for 1 h 01 min while 1 posting(s) wait "
                             "(last answered at Fri 13 Mar 11:00)")


def test_pms_answers_reset_the_silence(env_factory) -> None:
    env = env_factory(alerts={"rules": {"pms_silence": {"minutes": 30}}})
    waiting_posting(env, T0)
    pms_answered(env, T0 + timedelta(minutes=20))  # answered another posting; this one still waits (retry)
    assert check(env, T0 + timedelta(minutes=50)) == []
    assert check(env, T0 + timedelta(minutes=51)) == [("pms_silence", "pms")]


def test_no_pms_silence_when_nothing_waits(env_factory) -> None:
    env = env_factory(alerts=QUIET_PBX_IS_FINE)
    waiting_posting(env, T0)
    with env.sessions.begin() as session:
        session.execute(update(Posting).values(state="ok"))
    assert check(env, T0 + timedelta(days=2)) == []


@pytest.mark.parametrize("failed", [2, 3])
def test_failed_postings_piling_up(env_factory, failed: int) -> None:
    env = env_factory(alerts={"rules": {"failed_queue": {"threshold": 3}, "pbx_silence": {"enabled": False}}})
    with env.sessions.begin() as session:
        apply_guest_event(session, GuestCheckedIn(room="101", guest_id="G1", name="Guest"),
                          T0 - timedelta(days=1))
    for minute in range(failed):
        call(env, T0 + timedelta(minutes=minute), "101", LOCAL)
    with env.sessions.begin() as session:
        session.execute(update(Posting).values(state="failed"))
    expected = [("failed_queue", "pms")] if failed >= 3 else []
    assert check(env, T0 + timedelta(hours=1)) == expected
    assert check(env, T0 + timedelta(hours=2)) == []  # cool-down: 12 hours by default
    assert check(env, T0 + timedelta(hours=13)) == expected
    assert fired(env) == expected * 2


def test_periodic_rules_without_a_pms_link(env_factory) -> None:
    env = env_factory(pms=None)
    assert [rule.name for rule in env.engine.periodic_rules] == ["pbx_silence", "failed_queue"]
    assert check(env, T0) == []
    assert T0.tzinfo is timezone.utc
