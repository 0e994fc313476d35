"""Per-call alert rules through a real Pipeline on SQLite and PostgreSQL, with explicit ``now``.

Each test feeds call records as the PBX would send them and asserts exactly which alerts exist afterwards
(rule and subject, in order), including what the cool-down holds back. The site is New York; T0 is Monday
16 March 2026, 11:00 local (EDT).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from appliance.alerts.rules import CallRule, Finding
from appliance.db.models import Alert, Call
from tests.alerts.conftest import Env

T0 = datetime(2026, 3, 16, 15, 0, tzinfo=timezone.utc)
LOCAL = "912125551234"
NATIONAL = "913125551234"
INTERNATIONAL = "9011442071234567"
PREMIUM = "919005551234"
SATELLITE = "9011881612345678"


def record(start: datetime, extension: str, number: str, duration: int = 60, direction: str = "outgoing",
           answered: int = 1) -> bytes:
    return f"{start.isoformat()},{duration},{extension},{number},{direction},{answered}".encode()


def feed(env: Env, *records: bytes, now: datetime) -> None:
    env.pipeline.ingest("pbx", list(records), now, now)


def call(env: Env, at: datetime, extension: str, number: str, **kwargs: Any) -> None:
    """One call that ended just now: the record arrives at the end of the call."""
    duration = kwargs.pop("duration", 60)
    feed(env, record(at, extension, number, duration=duration, **kwargs),
         now=at + timedelta(seconds=duration))


def fired(env: Env) -> list[tuple[str, str]]:
    with env.sessions() as session:
        return [(a.rule, a.subject) for a in session.scalars(select(Alert).order_by(Alert.id))]


def alerts(env: Env) -> list[Alert]:
    with env.sessions() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


@pytest.mark.parametrize(("extension", "number", "expected"), [
    ("150", NATIONAL, [("lobby_long_distance", "150")]),
    ("150", INTERNATIONAL, [("lobby_long_distance", "150")]),
    ("160", PREMIUM, [("lobby_long_distance", "160")]),
    ("150", LOCAL, []),
    ("101", INTERNATIONAL, []),  # a guest phone may dial abroad
])
def test_lobby_and_public_phones_dialling_out_of_town(env_factory, extension: str, number: str,
                                                      expected: list) -> None:
    env = env_factory()
    call(env, T0, extension, number)
    assert fired(env) == expected


def test_an_alert_carries_the_call_and_says_what_happened(env_factory) -> None:
    env = env_factory()
    call(env, T0, "150", INTERNATIONAL)
    (alert,) = alerts(env)
    with env.sessions() as session:
        stored = session.scalars(select(Call)).one()
    assert (alert.severity, alert.call_id) == ("warning", stored.id)
    assert alert.created_at == T0 + timedelta(seconds=60)
    assert alert.message == ("lobby phone 150 dialled an international number, +442071234567, "
                             "at Mon 16 Mar 11:00")
    facts = alert.details["call"]
    assert (facts["number"], facts["class"]) == ("011442071234567", "international")
    assert alert.details["deliveries"] == {}  # no channels by default: the web admin list only


def test_cool_down_holds_back_the_same_rule_and_subject_only(env_factory) -> None:
    env = env_factory()  # lobby_long_distance: 30 minutes by default
    call(env, T0, "150", INTERNATIONAL)
    call(env, T0 + timedelta(minutes=10), "150", NATIONAL)
    call(env, T0 + timedelta(minutes=12), "160", NATIONAL)  # another phone: its own cool-down
    call(env, T0 + timedelta(minutes=20), "150", NATIONAL)
    assert fired(env) == [("lobby_long_distance", "150"), ("lobby_long_distance", "160")]
    first = alerts(env)[0]
    assert first.details["repeats"] == 2  # the held-back findings are counted on the alert they repeat
    call(env, T0 + timedelta(minutes=31), "150", NATIONAL)  # 31 min after the first alert (at T0 + 1 min)
    assert fired(env) == [("lobby_long_distance", "150"), ("lobby_long_distance", "160"),
                          ("lobby_long_distance", "150")]


def test_cool_down_survives_a_restart(env_factory) -> None:
    env = env_factory()
    call(env, T0, "150", INTERNATIONAL)
    restarted = env_factory()  # a new engine and pipeline on the same database: state comes from the table
    call(restarted, T0 + timedelta(minutes=5), "150", INTERNATIONAL)
    assert fired(restarted) == [("lobby_long_distance", "150")]


def test_cool_down_zero_alerts_every_time(env_factory) -> None:
    env = env_factory(alerts={"rules": {"lobby_long_distance": {"cooldown_minutes": 0}}})
    for minute in range(3):
        call(env, T0 + timedelta(minutes=minute * 2), "150", NATIONAL)
    assert fired(env) == [("lobby_long_distance", "150")] * 3


@pytest.mark.parametrize(("local", "number", "expected"), [
    ("2026-03-16T11:00", LOCAL, []),                         # Monday, office hours
    ("2026-03-16T07:59", LOCAL, [("after_hours", "300")]),   # before 08:00
    ("2026-03-16T18:00", NATIONAL, [("after_hours", "300")]),  # the end is not inside
    ("2026-03-14T11:00", LOCAL, [("after_hours", "300")]),   # Saturday
    ("2026-03-17T11:00", LOCAL, [("after_hours", "300")]),   # a configured holiday
    ("2026-03-16T22:00", "301", []),                          # internal calls are not outside calls
])
def test_after_hours_calls_from_admin_phones(env_factory, local: str, number: str, expected: list) -> None:
    env = env_factory(alerts={"business_hours": {"days": ["mon-fri"], "start": 480, "end": "18:00",
                                                 "holidays": ["03-17"]}})
    start = datetime.fromisoformat(local).replace(tzinfo=env.config.site.tz)
    direction = "internal" if number == "301" else "outgoing"
    call(env, start, "300", number, direction=direction)
    assert fired(env) == expected


def test_guest_phones_are_not_judged_by_office_hours(env_factory) -> None:
    env = env_factory()
    call(env, datetime(2026, 3, 16, 23, 0, tzinfo=env.config.site.tz), "101", LOCAL)
    assert fired(env) == []


def test_calls_over_a_duration(env_factory) -> None:
    env = env_factory(alerts={"rules": {"long_call": {"minutes": 60}}})
    call(env, T0, "101", LOCAL, duration=3600)                     # exactly the limit
    call(env, T0 + timedelta(hours=2), "102", LOCAL, duration=3601)
    call(env, T0 + timedelta(hours=4), "103", "2125550000", duration=7200, direction="incoming")
    assert fired(env) == [("long_call", "102")]
    assert alerts(env)[0].message == "outgoing call on 102 with +12125551234 lasted 1 h 00 min (over 60 min)"


def test_a_call_over_a_cost(env_factory) -> None:
    env = env_factory(alerts={"rules": {"expensive_call": {"amount": "10.00"}}})
    call(env, T0, "101", INTERNATIONAL, duration=300)       # 0.50 + 5 x 1.20 = 6.50, +10 % + 0.50 = 7.65
    call(env, T0 + timedelta(hours=1), "102", INTERNATIONAL, duration=600)  # 12.50 -> 14.25
    assert fired(env) == [("expensive_call", "102")]
    assert alerts(env)[0].message == "call from 102 to +442071234567 cost USD 14.25 (over USD 10.00)"


def test_burst_dialling(env_factory) -> None:
    env = env_factory(alerts={"rules": {"burst": {"calls": 3, "minutes": 5}}})
    for minute in (0, 6, 12):  # three calls, never three within five minutes
        call(env, T0 + timedelta(minutes=minute), "101", LOCAL, duration=20)
    assert fired(env) == []
    for minute in (20, 21, 22, 23):  # the third fires; the fourth is in the cool-down
        call(env, T0 + timedelta(minutes=minute), "102", LOCAL, duration=20)
    assert fired(env) == [("burst", "102")]
    assert alerts(env)[0].message == ("extension 102 made 3 outgoing calls within 5 minutes, "
                                      "the last to +12125551234")
    assert alerts(env)[0].details["repeats"] == 1


def test_burst_counts_unanswered_attempts_but_not_incoming_calls(env_factory) -> None:
    env = env_factory(alerts={"rules": {"burst": {"calls": 3, "minutes": 5}}})
    call(env, T0, "101", "2125550000", direction="incoming", duration=20)
    call(env, T0 + timedelta(minutes=1), "101", NATIONAL, answered=0, duration=0)
    call(env, T0 + timedelta(minutes=2), "101", LOCAL, answered=0, duration=0)
    assert ("burst", "101") not in fired(env)
    call(env, T0 + timedelta(minutes=3), "101", LOCAL, duration=20)
    assert fired(env)[-1] == ("burst", "101")


def test_blocked_prefixes_in_international_and_national_form(env_factory) -> None:
    blocked = {"prefixes": ["+881", "1900"], "cooldown_minutes": 0}
    env = env_factory(alerts={"rules": {"fraud_prefix": blocked}})
    call(env, T0, "101", SATELLITE)
    call(env, T0 + timedelta(minutes=1), "102", PREMIUM)
    call(env, T0 + timedelta(minutes=2), "103", INTERNATIONAL)
    assert fired(env) == [("fraud_prefix", "101"), ("fraud_prefix", "102")]
    first, second = alerts(env)
    assert first.severity == "critical" and first.details["prefix"] == "+881"
    assert second.message == "extension 102 dialled +19005551234, which starts with the blocked prefix 1900"


def test_default_blocklist_catches_satellite_numbers_from_any_phone(env_factory) -> None:
    env = env_factory()
    call(env, T0, "150", SATELLITE)
    assert fired(env) == [("lobby_long_distance", "150"), ("fraud_prefix", "150")]


def seed_history(env: Env, extension: str, days: int, per_day: int) -> None:
    """``per_day`` short local calls on each of the ``days`` days before T0's day, at 10:00 local."""
    tz = env.config.site.tz
    today = T0.astimezone(tz).date()
    records = []
    for back in range(days, 0, -1):
        start = datetime.combine(today - timedelta(days=back), time(10), tzinfo=tz)
        records += [record(start + timedelta(minutes=30 * i), extension, LOCAL, duration=30)
                    for i in range(per_day)]
    feed(env, *records, now=T0 - timedelta(hours=12))


BASELINE = {"rules": {"baseline": {"window_days": 7, "min_history_days": 3, "deviations": 2, "min_calls": 3,
                                   "metrics": ["calls"]}}}


def test_baseline_calls_today_against_the_extension_s_own_history(env_factory) -> None:
    env = env_factory(alerts=BASELINE)
    seed_history(env, "104", days=7, per_day=1)
    call(env, T0, "104", LOCAL, duration=30)
    call(env, T0 + timedelta(minutes=30), "104", LOCAL, duration=30)  # 2 > 1 + 2 x 0, but under min_calls
    assert fired(env) == []
    call(env, T0 + timedelta(minutes=60), "104", LOCAL, duration=30)
    assert fired(env) == [("baseline", "104")]
    (alert,) = alerts(env)
    assert alert.message == ("extension 104 today so far: 3 calls (usually 1.0 ± 0.0) a day over the last "
                             "7 days")
    assert alert.details["metrics"] == ["calls"] and alert.details["days"] == 7


def test_baseline_counts_quiet_days_and_needs_enough_history(env_factory) -> None:
    env = env_factory(alerts=BASELINE)
    seed_history(env, "105", days=2, per_day=1)  # two days of history: not enough
    for minute in range(0, 120, 30):
        call(env, T0 + timedelta(minutes=minute), "105", LOCAL, duration=30)
    assert fired(env) == []


def test_baseline_spread_allows_a_busy_extension_its_usual_day(env_factory) -> None:
    env = env_factory(alerts=BASELINE)
    tz = env.config.site.tz
    today = T0.astimezone(tz).date()
    records = []
    for back, count in zip(range(7, 0, -1), (2, 6, 2, 6, 2, 6, 4), strict=True):  # mean 4, spread 1.85
        start = datetime.combine(today - timedelta(days=back), time(9), tzinfo=tz)
        records += [record(start + timedelta(minutes=20 * i), "106", LOCAL, duration=30)
                    for i in range(count)]
    feed(env, *records, now=T0 - timedelta(hours=12))
    for minute in range(0, 160, 20):  # 8 calls = 4 + 2.16 x 1.85: over; 7 is not (4 + 2 x 1.85 = 7.7)
        call(env, T0 + timedelta(minutes=minute), "106", LOCAL, duration=30)
        assert fired(env) == ([("baseline", "106")] if minute == 140 else [])


class Broken(CallRule):
    name = "broken"

    def check(self, session: Any, call: Call) -> Finding | None:
        raise ZeroDivisionError("a bug")

    def describe(self) -> str:
        return "Never works."


def test_a_broken_rule_raises_a_rule_error_and_the_call_is_kept(env_factory) -> None:
    env = env_factory()
    env.engine.call_rules.insert(0, Broken(env.config.alerts.rules.burst, env.engine.context))
    call(env, T0, "150", INTERNATIONAL)
    call(env, T0 + timedelta(minutes=1), "101", LOCAL)
    assert fired(env) == [("rule_error", "broken"), ("lobby_long_distance", "150")]
    assert alerts(env)[0].message == "alert rule broken failed: ZeroDivisionError: a bug"
    with env.sessions() as session:
        assert len(session.scalars(select(Call)).all()) == 2


def test_disabled_rules_and_disabled_alerts_fire_nothing(env_factory) -> None:
    env = env_factory(alerts={"rules": {"lobby_long_distance": {"enabled": False}}})
    call(env, T0, "150", INTERNATIONAL)
    assert fired(env) == []
    env = env_factory(alerts={"enabled": False})
    call(env, T0 + timedelta(hours=1), "150", SATELLITE)
    assert fired(env) == []
