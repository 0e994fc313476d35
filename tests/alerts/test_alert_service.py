"""The alert service: periodic rules every minute and delivery with retries and backoff.

First with ``task.Clock`` and a synchronous stand-in for the database thread (exact times, no threads),
then on a real reactor with the real database thread: a dead webhook receiver is retried with backoff and
logged, and calls keep flowing through the pipeline at full speed meanwhile.
"""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

from sqlalchemy import select
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from appliance.db.models import Alert, AlertDelivery
from appliance.events import GuestCheckedIn
from appliance.net.alert_delivery import DeliveryError
from appliance.net.alert_service import AlertService
from appliance.net.dbthread import DatabaseThread
from appliance.occupancy import apply_guest_event
from tests.alerts.conftest import Env, SyncDb
from tests.alerts.test_rules import INTERNATIONAL, LOCAL, T0, call, record
from tests.alerts.test_silence import heard_from_pbx
from tests.integration.harness import free_port

HOOK = {"url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef"}


class Flaky:
    """A channel that refuses the first ``failures`` alerts it is given, noting when each came."""

    def __init__(self, clock: Clock, failures: int) -> None:
        self.clock = clock
        self.failures = failures
        self.attempts: list[tuple[float, int]] = []

    def send(self, payload: dict[str, Any]) -> Deferred[None]:
        self.attempts.append((self.clock.seconds(), payload["id"]))
        if len(self.attempts) <= self.failures:
            return fail(DeliveryError("HTTP 503 Service Unavailable"))
        return succeed(None)


def clocked_service(env_factory, failures: int, **delivery: Any) -> tuple[Env, Clock, Flaky, AlertService]:
    env = env_factory(alerts={"rules": {"pbx_silence": {"minutes": 30}},
                              "channels": {"webhook": {"soc": HOOK}},
                              "delivery": {"retry_seconds": 30, "retry_max_seconds": 120, "max_attempts": 4,
                                           "interval_seconds": 5, **delivery}})
    clock = Clock()
    clock.advance(T0.timestamp())
    channel = Flaky(clock, failures)
    service = AlertService(env.engine, SyncDb(), env.sessions, clock, senders={"soc": channel},
                           timeouts={"soc": 10.0})
    return env, clock, channel, service


def deliveries(env: Env) -> list[tuple[str, list[tuple[int, str, str, datetime]]]]:
    """Per alert: its rule and the delivery log of channel ``soc`` (attempt, outcome, error, at)."""
    with env.sessions() as session:
        alerts = session.scalars(select(Alert).order_by(Alert.id)).all()
        return [(a.rule, [(d.attempt, d.outcome, d.error, d.at) for d in session.scalars(
            select(AlertDelivery).where(AlertDelivery.alert_id == a.id, AlertDelivery.channel == "soc")
            .order_by(AlertDelivery.id))]) for a in alerts]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def test_silence_is_checked_every_minute_and_delivered_with_backoff(env_factory) -> None:
    env, clock, channel, service = clocked_service(env_factory, failures=2)
    heard_from_pbx(env, T0)
    service.startService()
    for _ in range(30):
        clock.advance(60)
    assert deliveries(env) == []  # 30 minutes of silence is still normal
    with capturedLogs() as events:
        clock.advance(60)
        raised_at = clock.seconds()
        for _ in range(40):
            clock.advance(5)
    assert [(t - raised_at, alert_id) for t, alert_id in channel.attempts] == [(0, 1), (30, 1), (90, 1)]
    ((rule, log),) = deliveries(env)
    assert rule == "pbx_silence"
    refused = "DeliveryError: HTTP 503 Service Unavailable"
    assert log == [(1, "retry", refused, at(raised_at)), (2, "retry", refused, at(raised_at + 30)),
                   (3, "sent", "", at(raised_at + 90))]
    with env.sessions() as session:  # a finished delivery leaves nothing due
        assert session.scalar(select(AlertDelivery).where(AlertDelivery.next_attempt_at.is_not(None))) is None
    texts = [e["log_format"] for e in events]
    retry = "alert {alert} to {channel}: attempt {attempt} failed ({error}); next attempt at {at}"
    assert texts.count(retry) == 2
    failed = next(e for e in events if e.get("attempt") == 1 and "failed" in e["log_format"])
    assert failed["error"] == "DeliveryError: HTTP 503 Service Unavailable"
    service.stopService()


def test_delivery_gives_up_after_the_last_attempt(env_factory) -> None:
    env, clock, channel, service = clocked_service(env_factory, failures=99)
    heard_from_pbx(env, T0)
    service.startService()
    with capturedLogs() as events:
        clock.advance(31 * 60)
        raised_at = clock.seconds()
        for _ in range(12 * 60):
            clock.advance(5)
    # backoff 30, 60, then capped at 120 seconds; four attempts in all
    assert [t - raised_at for t, _ in channel.attempts] == [0, 30, 90, 210]
    ((_, log),) = deliveries(env)[:1]
    assert [(attempt, outcome) for attempt, outcome, _, _ in log] == [
        (1, "retry"), (2, "retry"), (3, "retry"), (4, "failed")]
    assert any(e["log_format"].startswith("alert {alert} to {channel}: giving up") for e in events)
    service.stopService()


def test_a_call_alert_is_delivered_at_once(env_factory) -> None:
    env, clock, channel, service = clocked_service(env_factory, failures=0)
    service.startService()
    clock.advance(62)  # between two ticks of the delivery loop
    # A call that ends now: the pipeline raises the alert and the engine wakes the service.
    call(env, T0 + timedelta(seconds=2), "150", INTERNATIONAL)
    clock.advance(0)
    assert channel.attempts == [(T0.timestamp() + 62, 1)]
    service.stopService()


class CountingDb(SyncDb):
    def __init__(self) -> None:
        self.jobs: list[str] = []

    def run(self, function: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        self.jobs.append(function.__name__)
        return super().run(function, *args, **kwargs)


def test_an_idle_loop_looks_at_the_table_once_a_minute(env_factory) -> None:
    env, clock, channel, _ = clocked_service(env_factory, failures=0)
    db = CountingDb()
    service = AlertService(env.engine, db, env.sessions, clock, senders={"soc": channel},
                           timeouts={"soc": 10.0})
    service.startService()
    for _ in range(10 * 12):  # ten minutes of 5-second ticks
        clock.advance(5)
    assert db.jobs.count("_claim_job") == 11 and db.jobs.count("_check_job") == 10
    service.stopService()


def test_alerts_raised_outside_the_engine_are_delivered_too(env_factory) -> None:
    env, clock, channel, service = clocked_service(env_factory, failures=0)
    service.startService()
    clock.advance(30)
    with env.sessions.begin() as session:  # as the pipeline writes unrated_call: no delivery log
        session.add(Alert(rule="unrated_call", severity="warning", subject="101", message="no rate",
                          created_at=datetime.fromtimestamp(clock.seconds(), tz=timezone.utc)))
    clock.advance(30)  # the loop looks at the table at least once a minute
    assert channel.attempts == [(T0.timestamp() + 60, 1)]
    assert [outcome for _, outcome, _, _ in deliveries(env)[0][1]] == ["sent"]
    service.stopService()


def test_no_channels_means_no_delivery_loop(env_factory) -> None:
    env = env_factory()
    clock = Clock()
    service = AlertService(env.engine, SyncDb(), env.sessions, clock, senders={})
    service.startService()
    assert clock.getDelayedCalls()[0].getTime() == 60.0  # only the periodic check
    assert len(clock.getDelayedCalls()) == 1
    service.stopService()


def test_a_dead_receiver_is_retried_and_logged_without_slowing_posting(env_factory, reactor_thread) -> None:
    with socket.socket() as silent:  # one receiver never answers; the other is not there at all
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        hooks = {"dead": {**HOOK, "url": f"http://127.0.0.1:{free_port()}/hook"},
                 "silent": {**HOOK, "url": silent_url, "timeout_seconds": 5}}
        retries = {"retry_seconds": 0.3, "retry_max_seconds": 1, "max_attempts": 3, "interval_seconds": 0.05}
        env = env_factory(alerts={"channels": {"webhook": hooks}, "delivery": retries})
        reactor = reactor_thread.reactor
        db = DatabaseThread(reactor)
        service = AlertService(env.engine, db, env.sessions, reactor)
        with env.sessions.begin() as session:
            apply_guest_event(session, GuestCheckedIn(room="101", guest_id="G1", name="Guest"),
                              datetime.now(timezone.utc) - timedelta(days=1))
        with capturedLogs() as events:
            reactor_thread.call(lambda: (db.startService(), service.startService(), None)[-1])
            try:
                now = datetime.now(timezone.utc)
                lobby = record(now, "150", INTERNATIONAL)
                reactor_thread.call(db.run, env.pipeline.ingest, "pbx", [lobby], now)
                took = []
                for n in range(20):  # guest calls posted while both receivers hold their deliveries
                    at = datetime.now(timezone.utc)
                    started = time.monotonic()
                    reactor_thread.call(db.run, env.pipeline.ingest, "pbx",
                                        [record(at - timedelta(minutes=n), "101", LOCAL)], at)
                    took.append(time.monotonic() - started)
                wait_until(lambda: delivery_states(env) == {"dead": "failed", "silent": "failed"}, 40)
            finally:
                reactor_thread.call(service.stopService)
                reactor_thread.call(db.stopService)
    # A delivery waiting on the silent receiver (5 s) never holds the database thread: no posting job
    # comes anywhere near that wait, even on a loaded machine.
    assert max(took) < 2.5, took
    with env.sessions() as session:
        dead_log = session.scalars(select(AlertDelivery.outcome).where(AlertDelivery.channel == "dead")
                                   .order_by(AlertDelivery.id)).all()
        assert dead_log == ["retry", "retry", "failed"]
    dead = [e for e in events if e.get("channel") == "dead"]
    assert [e["attempt"] for e in dead] == [1, 2, 3]
    assert all("ConnectionRefusedError" in e["error"] for e in dead)
    gaps = [b["log_time"] - a["log_time"] for a, b in pairwise(dead)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6, gaps  # backoff 0.3 s, then 0.6 s (exact times: test_delivery)
    silent_errors = {e["error"] for e in events if e.get("channel") == "silent"}
    assert silent_errors == {"DeliveryError: no answer within 5 s"}


def delivery_states(env: Env) -> dict[str, str]:
    """The outcome of the last attempt on each channel."""
    with env.sessions() as session:
        rows = session.execute(select(AlertDelivery.channel, AlertDelivery.outcome).order_by(AlertDelivery.id))
        return {channel: outcome for channel, outcome in rows}


def wait_until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")
