"""The delivery log table (``alert_deliveries``, schema 0005): one row per attempt, as the web admin shows
it; the engine's hand-off in ``details`` becomes rows; a send lost with the daemon is sent again; a removed
channel is dropped; the log shows a webhook without its secret path; the upgrade keeps the old JSON logs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from alembic import command
from sqlalchemy import select, text
from twisted.internet.task import Clock

from appliance.alerts import deliveries
from appliance.alerts.config import DeliveryConfig, WebhookChannel
from appliance.db.models import Alert, AlertDelivery
from appliance.db.session import alembic_config, make_engine, make_sessionmaker
from appliance.net.alert_delivery import WebhookSender, target_of
from appliance.net.alert_service import AlertService
from tests.alerts.conftest import SyncDb
from tests.alerts.test_alert_service import HOOK, Flaky
from tests.alerts.test_rules import INTERNATIONAL, T0, call

POLICY = DeliveryConfig(retry_seconds=30, retry_max_seconds=120, max_attempts=3, interval_seconds=5)


def log(session: Any) -> list[tuple[int, str, int, str, str, datetime | None]]:
    rows = session.scalars(select(AlertDelivery).order_by(AlertDelivery.id))
    return [(r.alert_id, r.channel, r.attempt, r.outcome, r.target, r.next_attempt_at) for r in rows]


def test_the_engine_s_handoff_becomes_rows_and_leaves_the_details(env_factory) -> None:
    env = env_factory(alerts={"channels": {"webhook": {"soc": HOOK}}})
    call(env, T0 - timedelta(minutes=1), "150", INTERNATIONAL)  # alert raised at T0
    with env.sessions.begin() as session:
        alert = session.scalars(select(Alert)).one()
        assert list(alert.details["deliveries"]) == ["soc"]
        claimed = deliveries.claim_due(session, T0 + timedelta(seconds=1), policy=POLICY, channels={"soc"},
                                       window=40, targets={"soc": "https://hooks.example/..."})
        ((job,),) = (claimed.jobs,)
        assert (job.alert_id, job.channel, job.attempt) == (alert.id, "soc", 1)
        assert "deliveries" not in alert.details and "deliveries" not in job.payload["details"]
        deadline = T0 + timedelta(seconds=41)
        assert log(session) == [(alert.id, "soc", 1, "sending", "https://hooks.example/...", deadline)]
        assert claimed.next_due == deadline


def test_a_send_lost_with_the_daemon_is_sent_again_and_a_late_answer_is_noted(env_factory) -> None:
    env = env_factory(alerts={"channels": {"webhook": {"soc": HOOK}}})
    call(env, T0 - timedelta(minutes=1), "150", INTERNATIONAL)  # alert raised at T0
    claim = dict(policy=POLICY, channels={"soc"}, window=40)
    with env.sessions.begin() as session:
        first = deliveries.claim_due(session, T0, **claim).jobs[0]
        # Before the deadline nothing is due; after it, the same delivery goes out again as attempt 2.
        assert deliveries.claim_due(session, T0 + timedelta(seconds=39), **claim).jobs == []
        second = deliveries.claim_due(session, T0 + timedelta(seconds=41), **claim).jobs[0]
        assert (first.attempt, second.attempt) == (1, 2)
        late = deliveries.record_outcome(session, first.delivery_id, None, T0 + timedelta(seconds=50),
                                         policy=POLICY)
        done = deliveries.record_outcome(session, second.delivery_id, "HTTP 500", T0 + timedelta(seconds=51),
                                         policy=POLICY)
        assert (late.outcome, done.outcome) == ("sent", "retry")
        assert done.next_attempt_at == T0 + timedelta(seconds=51 + 60)  # second failure: 30 s doubled
        rows = session.scalars(select(AlertDelivery).order_by(AlertDelivery.id)).all()
        assert [(r.attempt, r.outcome, r.error) for r in rows] == [
            (1, "sent", "sent after its deadline"), (2, "retry", "HTTP 500")]


def test_a_channel_removed_from_the_configuration_is_dropped(env_factory) -> None:
    env = env_factory(alerts={"channels": {"webhook": {"soc": HOOK}}})
    call(env, T0 - timedelta(minutes=1), "150", INTERNATIONAL)  # alert raised at T0
    with env.sessions.begin() as session:
        claimed = deliveries.claim_due(session, T0, policy=POLICY, channels={"other"}, window=40)
        assert claimed.jobs == [] and claimed.next_due is None
        ((_, channel, attempt, outcome, _, next_at),) = log(session)
        assert (channel, attempt, outcome, next_at) == ("soc", 0, "dropped", None)


def test_the_service_writes_one_row_per_attempt_with_the_target(env_factory) -> None:
    env = env_factory(alerts={"channels": {"webhook": {"soc": HOOK}},
                              "delivery": {"retry_seconds": 30, "max_attempts": 4, "interval_seconds": 5}})
    clock = Clock()
    clock.advance(T0.timestamp())
    channel = Flaky(clock, failures=1)
    channel.channel = WebhookChannel(url="https://user:pw@hooks.example:8443/T000/B000/secret", secret="s" * 16)
    service = AlertService(env.engine, SyncDb(), env.sessions, clock, senders={"soc": channel},
                           timeouts={"soc": 10.0})
    service.startService()
    call(env, T0 - timedelta(minutes=1), "150", INTERNATIONAL)  # alert raised at T0
    for _ in range(10):
        clock.advance(5)
    service.stopService()
    with env.sessions() as session:
        rows = session.scalars(select(AlertDelivery).order_by(AlertDelivery.id)).all()
    assert [(r.attempt, r.outcome, r.target) for r in rows] == [
        (1, "retry", "https://hooks.example:8443/..."), (2, "sent", "https://hooks.example:8443/...")]
    assert "secret" not in rows[0].target and "pw" not in rows[0].target


def test_targets_of_each_channel_kind(reactor_thread) -> None:
    hook = WebhookSender(WebhookChannel(url="https://hooks.example/T1/secret", secret="s" * 16),
                         reactor_thread.reactor)
    assert target_of(hook) == "https://hooks.example/..."
    assert target_of(object()) == ""


def test_the_upgrade_copies_the_json_delivery_logs(db_url: str) -> None:
    config = alembic_config(db_url)
    command.upgrade(config, "0004")
    engine = make_engine(db_url)
    logs = {"soc": {"attempts": 2, "status": "retry", "last_error": "HTTP 503",
                    "next_attempt_at": "2026-01-01T10:00:00+00:00", "delivered_at": None},
            "mail": {"attempts": 1, "status": "sent", "last_error": "",
                     "next_attempt_at": "2026-01-01T09:00:00+00:00", "delivered_at": "2026-01-01T09:00:01+00:00"}}
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO alerts (rule, severity, subject, message, details, created_at, "
                                "acknowledged_by) VALUES ('burst', 'warning', '101', 'many calls', :details, "
                                "'2026-01-01 08:59:00', '')"), {"details": json.dumps({"deliveries": logs})})
    command.upgrade(config, "0005")
    with make_sessionmaker(engine)() as session:
        rows = session.scalars(select(AlertDelivery).order_by(AlertDelivery.channel)).all()
        got = [(r.channel, r.attempt, r.outcome, r.error, r.at, r.next_attempt_at) for r in rows]
    engine.dispose()
    utc = timezone.utc
    assert got == [("mail", 1, "sent", "", datetime(2026, 1, 1, 9, 0, 1, tzinfo=utc), None),
                   ("soc", 2, "retry", "HTTP 503", datetime(2026, 1, 1, 8, 59, tzinfo=utc),
                    datetime(2026, 1, 1, 10, 0, tzinfo=utc))]


def test_log_for_groups_rows_by_alert(env_factory) -> None:
    env = env_factory(alerts={"channels": {"webhook": {"soc": HOOK}}})
    call(env, T0 - timedelta(minutes=1), "150", INTERNATIONAL)  # alert raised at T0
    with env.sessions.begin() as session:
        deliveries.claim_due(session, T0, policy=POLICY, channels={"soc"}, window=40)
        alert_id = session.scalar(select(Alert.id))
        grouped = deliveries.log_for(session, [alert_id, alert_id + 100])
        assert [r.outcome for r in grouped[alert_id]] == ["sending"] and grouped[alert_id + 100] == []


