"""The per-call rules' cost does not grow with the calls table (issue 7): the baseline's day totals kept in
memory (``appliance.alerts.rules.DayTotals``) must always equal what the database holds, on SQLite and
PostgreSQL, through a rolled-back batch, a restart, local midnight and LRU eviction; and the engine reads
an extension's day from the database once, not once per call.

The site is New York; T0 is Monday 16 March 2026, 11:00 local (EDT), as in test_rules.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import event

from appliance.alerts import AlertEngine
from appliance.alerts.rules import ExtensionBaseline, Usage, usage
from appliance.pipeline import Pipeline
from tests.alerts.conftest import Env
from tests.alerts.test_rules import BASELINE, LOCAL, T0, call, feed, fired, record, seed_history
from tests.helpers import CSV_SPEC


def baseline_rule(env: Env) -> ExtensionBaseline:
    (rule,) = [rule for rule in env.engine.call_rules if isinstance(rule, ExtensionBaseline)]
    return rule


def local_day(env: Env, moment: datetime) -> date:
    return moment.astimezone(env.config.site.tz).date()


def in_database(env: Env, extension: str, day: date) -> Usage:
    tz = env.config.site.tz
    with env.sessions() as session:
        return usage(session, extension, datetime.combine(day, time(), tzinfo=tz),
                     datetime.combine(day + timedelta(days=1), time(), tzinfo=tz))


def in_memory(env: Env, extension: str, day: date) -> Usage:
    with env.sessions() as session:
        return baseline_rule(env).today.usage(session, extension, day)


@contextmanager
def day_reads(env: Env) -> Iterator[list[str]]:
    """The statements that read an extension's day totals (the ``usage`` query), while the block runs."""
    seen: list[str] = []
    bind = env.sessions.kw["bind"]

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "sum(calls.duration)" in statement:
            seen.append(statement)

    event.listen(bind, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(bind, "before_cursor_execute", before)


class FailOnce:
    """An observer after the alert engine whose first batch fails: the pipeline's transaction rolls back
    after the engine has already counted the batch's calls."""

    def __init__(self) -> None:
        self.failed = False

    def on_calls_stored(self, session: Any, calls: list[Any], now: datetime) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("the database went away")


def test_a_rolled_back_batch_is_not_kept_in_the_day_totals(env_factory) -> None:
    env = env_factory(alerts=BASELINE)
    seed_history(env, "104", days=7, per_day=1)  # usually 1 call a day; 3 calls today is over (min 3)
    flaky = FailOnce()
    pipeline = Pipeline(env.config, env.sessions, {"pbx": CSV_SPEC}, observers=[env.engine, flaky])
    records = [record(T0, "104", LOCAL, duration=30), record(T0 + timedelta(minutes=30), "104", LOCAL, 30)]
    now = T0 + timedelta(hours=1)
    try:
        pipeline.ingest("pbx", records, now, now)
    except RuntimeError:
        pass
    assert flaky.failed
    day = local_day(env, T0)
    assert in_database(env, "104", day).calls == 0
    assert in_memory(env, "104", day) == in_database(env, "104", day)
    # The journal rows are processed again: the same two calls stored once, counted once (2, not 4).
    pipeline.process_pending(now)
    stored = in_database(env, "104", day)
    assert (stored.calls, stored.seconds) == (2, 60)
    assert in_memory(env, "104", day) == in_database(env, "104", day)
    assert fired(env) == []
    call(env, T0 + timedelta(minutes=60), "104", LOCAL, duration=30)
    assert fired(env) == [("baseline", "104")]
    assert in_memory(env, "104", day).calls == 3


def test_a_session_closed_or_rolled_back_and_a_savepoint_rolled_back_leave_nothing(env_factory) -> None:
    env = env_factory(alerts=BASELINE)
    seed_history(env, "104", days=7, per_day=1)
    call(env, T0, "104", LOCAL, duration=30)
    day = local_day(env, T0)
    totals = baseline_rule(env).today
    stored = in_database(env, "104", day)

    class Fake:
        direction, disposition, extension, start, duration, amount = ("outgoing", "charge", "104", T0, 45,
                                                                      Decimal("1.25"))

    with env.sessions() as session:  # closed, never committed
        totals.add(session, [Fake()])
        assert totals.usage(session, "104", day).calls == stored.calls + 1
    assert in_memory(env, "104", day) == stored

    with env.sessions() as session:  # rolled back, then the same session commits other work
        totals.add(session, [Fake()])
        assert totals.usage(session, "104", day).calls == stored.calls + 1
        session.rollback()
        assert totals.usage(session, "104", day) == stored
        session.commit()
    assert in_memory(env, "104", day) == stored

    with env.sessions() as session:
        nested = session.begin_nested()
        totals.add(session, [Fake()])
        nested.rollback()
        session.commit()
    # After a savepoint rolled back, which calls survived is unknown here: the pair is read again.
    assert ("104", day) not in totals._committed
    assert in_memory(env, "104", day) == stored


def test_a_day_is_read_from_the_database_once_then_followed_in_memory(env_factory) -> None:
    env = env_factory(alerts=BASELINE)
    seed_history(env, "104", days=7, per_day=1)
    call(env, T0, "104", LOCAL, duration=30)
    call(env, T0 + timedelta(minutes=10), "104", LOCAL, duration=30)
    # A restart: a new engine knows nothing of today; it reads the day once, then counts the calls it sees.
    restarted = AlertEngine(env.config)
    env2 = Env(env.config, env.sessions, restarted,
               Pipeline(env.config, env.sessions, {"pbx": CSV_SPEC}, observers=[restarted]))
    with day_reads(env2) as reads:
        call(env2, T0 + timedelta(minutes=20), "104", LOCAL, duration=30)
        call(env2, T0 + timedelta(minutes=30), "104", LOCAL, duration=30)
        call(env2, T0 + timedelta(minutes=40), "104", LOCAL, duration=30)
    assert len(reads) == 1
    assert fired(env2) == [("baseline", "104")]  # the third call of the day, counted across the restart
    day = local_day(env, T0)
    assert in_memory(env2, "104", day) == in_database(env2, "104", day)
    assert in_database(env2, "104", day).calls == 5


def test_the_day_changes_at_local_midnight(env_factory) -> None:
    env = env_factory(alerts=BASELINE)
    tz = env.config.site.tz
    seed_history(env, "104", days=7, per_day=1)
    today = local_day(env, T0)
    midnight = datetime.combine(today + timedelta(days=1), time(), tzinfo=tz)  # 04:00 UTC (EDT)
    assert midnight.astimezone(timezone.utc).hour == 4
    call(env, midnight - timedelta(minutes=20), "104", LOCAL, duration=30)
    call(env, midnight - timedelta(minutes=10), "104", LOCAL, duration=30)
    call(env, midnight + timedelta(minutes=5), "104", LOCAL, duration=30)  # tomorrow's first call
    assert fired(env) == []
    assert in_memory(env, "104", today).calls == 2
    assert in_memory(env, "104", today + timedelta(days=1)).calls == 1
    # A late record of today (a PBX replaying its buffer) still counts on today: the third call fires.
    call(env, midnight - timedelta(minutes=1), "104", LOCAL, duration=30)
    assert fired(env) == [("baseline", "104")]
    for day in (today, today + timedelta(days=1)):
        assert in_memory(env, "104", day) == in_database(env, "104", day)


def test_an_evicted_day_is_read_again_with_the_calls_stored_meanwhile(env_factory) -> None:
    env = env_factory(alerts=BASELINE)
    totals = baseline_rule(env).today
    totals.SIZE = 2
    for extension in ("104", "105", "106"):
        seed_history(env, extension, days=7, per_day=1)
    day = local_day(env, T0)
    call(env, T0, "104", LOCAL, duration=30)
    call(env, T0 + timedelta(minutes=1), "104", LOCAL, duration=30)
    call(env, T0 + timedelta(minutes=2), "105", LOCAL, duration=30)
    call(env, T0 + timedelta(minutes=3), "106", LOCAL, duration=30)  # 104's day is the oldest: out
    assert len(totals) == 2 and ("104", day) not in totals._committed
    with day_reads(env) as reads:
        call(env, T0 + timedelta(minutes=4), "104", LOCAL, duration=30)  # read again: 3 calls today
    assert len(reads) == 1
    assert fired(env) == [("baseline", "104")]
    assert len(totals) == 2
    for extension in ("104", "105", "106"):
        assert in_memory(env, extension, day) == in_database(env, extension, day)


def test_the_day_totals_equal_the_database_through_mixed_batches(env_factory) -> None:
    """Several extensions, batches of calls out of order, incoming calls and prices: after every batch the
    totals in memory are the database's to the second and the cent (money stays Decimal)."""
    env = env_factory(alerts=BASELINE)
    extensions = ["101", "102", "150"]
    for extension in extensions:
        seed_history(env, extension, days=3, per_day=1)
    numbers = [LOCAL, "913125551234", "9011442071234567"]
    for batch in range(5):
        records = []
        for i in range(12):
            start = T0 + timedelta(minutes=(37 * i + 11 * batch) % 300)
            records.append(record(start, extensions[(i + batch) % 3], numbers[i % 3], duration=20 + 7 * i,
                                  direction="incoming" if i % 5 == 4 else "outgoing"))
        feed(env, *records, now=T0 + timedelta(hours=6, minutes=batch))
        for extension in extensions:
            today = local_day(env, T0)
            assert in_memory(env, extension, today) == in_database(env, extension, today)
    assert in_database(env, "101", local_day(env, T0)).cost > 0  # guest calls are priced (lobby: zero)


def test_a_transfer_s_held_legs_are_not_calls_of_their_own(env_factory) -> None:
    """A transferred call is stored as held ``leg``/``merged`` rows plus the record that ends it; burst
    dialling and the day totals count the call once, as the pipeline hands it to the rules."""
    from sqlalchemy import update

    from appliance.db.models import Call

    env = env_factory(alerts={"rules": {"burst": {"calls": 3, "minutes": 5}, **BASELINE["rules"]}})
    seed_history(env, "103", days=7, per_day=1)
    call(env, T0, "103", LOCAL, duration=30)
    call(env, T0 + timedelta(minutes=1), "103", LOCAL, duration=30)
    with env.sessions.begin() as session:  # as if both had been the first legs of transferred calls
        session.execute(update(Call).where(Call.extension == "103", Call.start >= T0)
                        .values(disposition="merged"))
    restarted = AlertEngine(env.config)  # reads the day from the database, legs left out
    env2 = Env(env.config, env.sessions, restarted,
               Pipeline(env.config, env.sessions, {"pbx": CSV_SPEC}, observers=[restarted]))
    call(env2, T0 + timedelta(minutes=2), "103", LOCAL, duration=30)
    assert fired(env2) == []  # one call in the window and today, not three
    day = local_day(env, T0)
    assert in_memory(env2, "103", day) == in_database(env2, "103", day)
    assert in_database(env2, "103", day).calls == 1


def test_amounts_re_rated_elsewhere_are_read_again_within_the_hour(env_factory) -> None:
    """``appliance rerate`` (another process) changes today's amounts; the count and minutes cannot
    change, the cost lags until the pair is an hour old by the pipeline's clock, then is read again."""
    from sqlalchemy import update

    from appliance.db.models import Call

    env = env_factory(alerts=BASELINE)
    seed_history(env, "104", days=7, per_day=1)
    call(env, T0, "104", LOCAL, duration=30)
    day = local_day(env, T0)
    before = in_database(env, "104", day)
    with env.sessions.begin() as session:
        session.execute(update(Call).where(Call.extension == "104", Call.start >= T0)
                        .values(amount=Decimal("7.40")))
    assert in_memory(env, "104", day) == before  # not seen yet
    call(env, T0 + timedelta(minutes=20), "104", LOCAL, duration=30)
    assert in_memory(env, "104", day).cost == before.cost * 2  # still the old amount for the first call
    with day_reads(env) as reads:
        call(env, T0 + timedelta(minutes=70), "104", LOCAL, duration=30)
    assert len(reads) == 1
    assert in_memory(env, "104", day) == in_database(env, "104", day)
    assert in_memory(env, "104", day).cost > Decimal("7.40")


def test_findings_held_back_in_one_batch_are_counted_on_the_alert_once(env_factory) -> None:
    """A replayed buffer: the cool-down is looked up once per rule and subject in a batch and the repeats
    written once, with the same result as one call at a time (test_rules.py pins that one)."""
    from sqlalchemy import select

    from appliance.db.models import Alert, Call
    from tests.alerts.test_rules import INTERNATIONAL

    env = env_factory()
    feed(env, *[record(T0 + timedelta(minutes=i), "150", INTERNATIONAL) for i in range(4)],
         now=T0 + timedelta(minutes=10))
    assert fired(env) == [("lobby_long_distance", "150")]
    with env.sessions() as session:
        ids = list(session.scalars(select(Call.id).order_by(Call.start)))
        (alert,) = session.scalars(select(Alert))
        assert alert.call_id == ids[0]
        assert alert.details["repeats"] == 3 and alert.details["last_repeat_call_id"] == ids[3]
        assert alert.details["last_repeat_at"] == (T0 + timedelta(minutes=10)).isoformat()
    feed(env, record(T0 + timedelta(minutes=20), "150", INTERNATIONAL), now=T0 + timedelta(minutes=25))
    with env.sessions() as session:
        (alert,) = session.scalars(select(Alert))
        assert alert.details["repeats"] == 4
        assert "deliveries" in alert.details  # the delivery log is kept when repeats are written
