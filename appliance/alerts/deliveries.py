"""The delivery log of each alert: the ``alert_deliveries`` table, one row per attempt per channel.

A channel's delivery of an alert is a short chain of rows. The first is ``pending`` (attempt 0); claiming
it turns it into attempt 1, ``sending``, with a deadline in ``next_attempt_at``. Its outcome is ``sent``,
or ``retry`` (``next_attempt_at`` = when the next attempt is due, exponential backoff) or ``failed`` after
the last attempt. A retry that falls due closes its row (``next_attempt_at`` cleared) and opens the next
attempt's row. ``dropped``: the channel left the configuration. ``unknown``: a ``sending`` row passed its
deadline without an outcome (the daemon died mid-send); it is sent again (at least once, never lost).
Only the open row of a chain has ``next_attempt_at`` set, so "what is due" is one indexed range query.

The alert engine (``appliance.alerts.engine``) still writes the channels an alert goes to as
``details["deliveries"]`` (``initial``); ``claim_due`` turns that hand-off into rows and removes it from
the details. Alerts written without it (the pipeline's ``unrated_call``) are routed here too.

These are small database jobs for the daemon's database thread; the network work happens elsewhere
(``appliance.net.alert_delivery``). Nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from appliance.alerts.config import DeliveryConfig
from appliance.db.models import Alert, AlertDelivery

OPEN_STATES = ("pending", "retry", "sending")
ADOPT = timedelta(hours=1)
HANDOFF = "deliveries"  # the key the engine writes into Alert.details


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryJob:
    alert_id: int
    channel: str
    attempt: int
    payload: dict[str, Any]
    delivery_id: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Recorded:
    """What ``record_outcome`` wrote: the attempt's outcome, its error and the next attempt, if any."""

    outcome: str
    attempt: int
    error: str = ""
    next_attempt_at: datetime | None = None


def initial(channels: Iterable[str], now: datetime) -> dict[str, dict[str, Any]]:
    """The engine's hand-off in ``details["deliveries"]``: the channels an alert is to reach."""
    return {name: {"attempts": 0, "status": "pending", "last_error": "", "next_attempt_at": now.isoformat(),
                   "delivered_at": None} for name in channels}


def backoff(attempts: int, policy: DeliveryConfig) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: retry_seconds, doubling, capped."""
    return min(policy.retry_seconds * 2 ** max(attempts - 1, 0), policy.retry_max_seconds)


def lookback(policy: DeliveryConfig, window: float) -> timedelta:
    """How far back an alert can still have a delivery due (all backoffs, each attempt's window, a day)."""
    total = sum(backoff(n, policy) + window for n in range(1, policy.max_attempts + 1))
    return timedelta(seconds=total) + timedelta(days=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class Claimed:
    """The deliveries to send now, and when the next one still waiting falls due (None: nothing waits)."""

    jobs: list[DeliveryJob]
    next_due: datetime | None


def queue(session: Session, alert: Alert, channels: Iterable[str], due: datetime) -> list[AlertDelivery]:
    """Pending rows for ``alert`` (flushed, so it has an id) on each channel, due at ``due``."""
    rows = [AlertDelivery(alert_id=alert.id, channel=name[:64], target="", attempt=0, at=alert.created_at,
                          outcome="pending", error="", next_attempt_at=due) for name in channels]
    session.add_all(rows)
    return rows


def adopt(session: Session, now: datetime, *, since: datetime,
          route: Callable[[str, str], list[str]] | None = None) -> int:
    """Give every recent alert without delivery rows its rows: from the engine's hand-off, or, for an
    alert written without one in the last ``ADOPT``, from ``route(rule, severity)``. Returns rows made."""
    made = 0
    orphans = session.scalars(select(Alert).where(
        Alert.created_at >= since, ~exists().where(AlertDelivery.alert_id == Alert.id)).order_by(Alert.id))
    for alert in orphans:
        details = dict(alert.details or {})
        if HANDOFF in details:
            handoff = details.pop(HANDOFF) or {}
            alert.details = details  # JSON columns do not see changes inside the dict: assign a new one
            wanted = [name for name, entry in handoff.items()
                      if entry.get("status", "pending") in OPEN_STATES]
            due = min((datetime.fromisoformat(handoff[n]["next_attempt_at"]) for n in wanted
                       if handoff[n].get("next_attempt_at")), default=alert.created_at)
        elif route is not None and alert.created_at >= now - ADOPT:
            wanted, due = route(alert.rule, alert.severity), alert.created_at
        else:
            continue
        made += len(queue(session, alert, wanted, due))
    return made


def claim_due(session: Session, now: datetime, *, policy: DeliveryConfig, channels: Collection[str],
              window: float, route: Callable[[str, str], list[str]] | None = None, site: str = "",
              describe: dict[str, str] | None = None, limit: int = 20,
              targets: Mapping[str, str] | None = None) -> Claimed:
    """Open an attempt (``sending``, deadline ``now + window`` seconds) for each due delivery and return
    them with their payloads. A channel missing from ``channels`` (removed from the configuration) is
    marked ``dropped``. ``targets`` names what each channel sends to, for the log."""
    adopt(session, now, since=now - lookback(policy, window), route=route)
    session.flush()
    jobs: list[DeliveryJob] = []
    deadline = now + timedelta(seconds=window)
    due_rows = session.scalars(select(AlertDelivery).where(AlertDelivery.next_attempt_at <= now)
                               .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id).limit(limit)).all()
    alerts: dict[int, Alert | None] = {}
    for row in due_rows:
        if row.channel not in channels:
            row.outcome, row.error = "dropped", "the channel is no longer configured"
            row.next_attempt_at = None
            continue
        target = (targets or {}).get(row.channel, "")[:200]
        if row.outcome == "pending":
            attempt = row
            attempt.attempt = 1
        else:
            if row.outcome == "sending":
                row.outcome = "unknown"
                row.error = f"no outcome within {window:g} s (daemon stopped?); sent again"
            row.next_attempt_at = None
            attempt = AlertDelivery(alert_id=row.alert_id, channel=row.channel, attempt=row.attempt + 1)
            session.add(attempt)
        attempt.target, attempt.at, attempt.outcome, attempt.error = target, now, "sending", ""
        attempt.next_attempt_at = deadline
        session.flush()
        if row.alert_id not in alerts:
            alerts[row.alert_id] = session.get(Alert, row.alert_id)
        alert = alerts[row.alert_id]
        if alert is None:  # cannot happen with the foreign key; kept so a bad row never stops the loop
            attempt.outcome, attempt.next_attempt_at = "dropped", None
            continue
        jobs.append(DeliveryJob(alert_id=alert.id, channel=row.channel, attempt=attempt.attempt,
                                payload=payload(alert, site, (describe or {}).get(alert.rule, "")),
                                delivery_id=attempt.id))
    session.flush()
    # The earliest open row, claimed or not: at or before ``now`` means more was due than ``limit``.
    next_due = session.scalar(select(func.min(AlertDelivery.next_attempt_at)))
    return Claimed(jobs=jobs, next_due=next_due)


def record_outcome(session: Session, delivery_id: int, error: str | None, now: datetime, *,
                   policy: DeliveryConfig) -> Recorded | None:
    """The result of one attempt: ``sent``, or ``retry`` after a backoff, or ``failed`` for good.

    An attempt already given up as ``unknown`` (its deadline passed and it was sent again) only gets its
    late result written down; the attempt that replaced it decides what happens next.
    """
    row = session.get(AlertDelivery, delivery_id)
    if row is None:
        return None
    text = (error or "")[:300]
    if row.outcome != "sending":
        row.outcome = "sent" if error is None else row.outcome
        row.error = f"late answer: {text}"[:300] if error is not None else "sent after its deadline"
        return Recorded(outcome=row.outcome, attempt=row.attempt, error=row.error)
    if error is None:
        row.outcome, row.error, row.next_attempt_at = "sent", "", None
    elif row.attempt >= policy.max_attempts:
        row.outcome, row.error, row.next_attempt_at = "failed", text, None
    else:
        row.outcome, row.error = "retry", text
        row.next_attempt_at = now + timedelta(seconds=backoff(row.attempt, policy))
    return Recorded(outcome=row.outcome, attempt=row.attempt, error=row.error,
                    next_attempt_at=row.next_attempt_at)


def log_for(session: Session, alert_ids: Sequence[int]) -> dict[int, list[AlertDelivery]]:
    """The delivery rows of these alerts, by alert, in the order they were written (the web admin's log)."""
    log: dict[int, list[AlertDelivery]] = {alert_id: [] for alert_id in alert_ids}
    if not alert_ids:
        return log
    rows = session.scalars(select(AlertDelivery).where(AlertDelivery.alert_id.in_(list(alert_ids)))
                           .order_by(AlertDelivery.alert_id, AlertDelivery.channel, AlertDelivery.id))
    for row in rows:
        log[row.alert_id].append(row)
    return log


def payload(alert: Alert, site: str, rule_text: str = "") -> dict[str, Any]:
    """What every channel sends: the alert, its rule in words, and a one-line ``text`` for chat webhooks."""
    details = {k: v for k, v in (alert.details or {}).items() if k != HANDOFF}
    return {
        "id": alert.id, "site": site, "rule": alert.rule, "rule_text": rule_text, "severity": alert.severity,
        "subject": alert.subject, "message": alert.message, "call_id": alert.call_id,
        "created_at": alert.created_at.isoformat(), "details": details,
        "text": f"[{site}] {alert.severity} {alert.rule}: {alert.message}" if site else
                f"{alert.severity} {alert.rule}: {alert.message}",
    }
