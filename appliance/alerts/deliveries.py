"""The delivery log of each alert, kept in ``Alert.details["deliveries"]`` until it has a table of its own.

One entry per channel: ``{"attempts": 2, "status": "retry", "last_error": "...", "next_attempt_at": ISO,
"delivered_at": ISO or None}``. Status runs ``pending`` -> ``sending`` -> ``sent``, or -> ``retry`` (back to
``sending`` when due, with exponential backoff) -> ``failed`` after the last attempt; ``dropped`` when the
channel is no longer configured. A ``sending`` entry carries a deadline as its ``next_attempt_at``: if the
daemon dies mid-send the entry falls due again and is re-sent (at least once, never lost).

These are small database jobs for the daemon's database thread; the network work happens elsewhere
(``appliance.net.alert_delivery``). Nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.alerts.config import DeliveryConfig
from appliance.db.models import Alert

OPEN_STATES = ("pending", "retry", "sending")
ADOPT = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryJob:
    alert_id: int
    channel: str
    attempt: int
    payload: dict[str, Any]


def initial(channels: Iterable[str], now: datetime) -> dict[str, dict[str, Any]]:
    return {name: {"attempts": 0, "status": "pending", "last_error": "", "next_attempt_at": now.isoformat(),
                   "delivered_at": None} for name in channels}


def backoff(attempts: int, policy: DeliveryConfig) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: retry_seconds, doubling, capped."""
    return min(policy.retry_seconds * 2 ** max(attempts - 1, 0), policy.retry_max_seconds)


def lookback(policy: DeliveryConfig, window: float) -> timedelta:
    """How far back an alert can still have a delivery due (all backoffs, each attempt's window, a day)."""
    total = sum(backoff(n, policy) + window for n in range(1, policy.max_attempts + 1))
    return timedelta(seconds=total) + timedelta(days=1)


def is_due(entry: dict[str, Any], now: datetime) -> bool:
    return entry.get("status") in OPEN_STATES and datetime.fromisoformat(entry["next_attempt_at"]) <= now


@dataclass(frozen=True, kw_only=True, slots=True)
class Claimed:
    """The deliveries to send now, and when the next one still waiting falls due (None: nothing waits)."""

    jobs: list[DeliveryJob]
    next_due: datetime | None


def claim_due(session: Session, now: datetime, *, policy: DeliveryConfig, channels: Collection[str],
              window: float, route: Callable[[str, str], list[str]] | None = None, site: str = "",
              describe: dict[str, str] | None = None, limit: int = 20) -> Claimed:
    """Mark due deliveries ``sending`` (deadline ``now + window`` seconds) and return them with payloads.

    A channel missing from ``channels`` (removed from the configuration) is marked ``dropped``. An alert
    written without a delivery log (the pipeline's ``unrated_call``) in the last ``ADOPT`` gets one from
    ``route(rule, severity)``, so every alert reaches the channels however it was raised.
    """
    jobs: list[DeliveryJob] = []
    next_due: datetime | None = None
    alerts = session.scalars(select(Alert).where(Alert.created_at >= now - lookback(policy, window))
                             .order_by(Alert.id))
    for alert in alerts:
        details = alert.details or {}
        if "deliveries" not in details and route is not None and alert.created_at >= now - ADOPT:
            details = {**details, "deliveries": initial(route(alert.rule, alert.severity), alert.created_at)}
            alert.details = details
        deliveries = details.get("deliveries") or {}
        due = [name for name, entry in deliveries.items() if is_due(entry, now)]
        for entry in deliveries.values():
            if entry.get("status") in OPEN_STATES and not is_due(entry, now):
                later = datetime.fromisoformat(entry["next_attempt_at"])
                next_due = later if next_due is None else min(next_due, later)
        if not due:
            continue
        if len(jobs) >= limit:
            next_due = now  # more is due than one job takes: come back at once
            break
        changed = {name: dict(entry) for name, entry in deliveries.items()}
        for name in due:
            entry = changed[name]
            if name not in channels:
                entry.update(status="dropped", last_error="the channel is no longer configured")
                continue
            entry.update(status="sending", attempts=entry["attempts"] + 1,
                         next_attempt_at=(now + timedelta(seconds=window)).isoformat())
            jobs.append(DeliveryJob(alert_id=alert.id, channel=name, attempt=entry["attempts"],
                                    payload=payload(alert, site, (describe or {}).get(alert.rule, ""))))
        # JSON columns do not see changes inside the dict: assign a new one.
        alert.details = {**details, "deliveries": changed}
        deadline = now + timedelta(seconds=window)
        if any(changed[name]["status"] == "sending" for name in due):
            next_due = deadline if next_due is None else min(next_due, deadline)
    return Claimed(jobs=jobs, next_due=next_due)


def record_outcome(session: Session, alert_id: int, channel: str, error: str | None, now: datetime, *,
                   policy: DeliveryConfig) -> dict[str, Any]:
    """The result of one attempt: ``sent``, or ``retry`` after a backoff, or ``failed`` for good."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        return {}
    current = (alert.details or {}).get("deliveries") or {}
    deliveries = {name: dict(entry) for name, entry in current.items()}
    entry = deliveries.setdefault(channel, initial([channel], now)[channel])
    if error is None:
        entry.update(status="sent", last_error="", delivered_at=now.isoformat(),
                     next_attempt_at=now.isoformat())
    elif entry["attempts"] >= policy.max_attempts:
        entry.update(status="failed", last_error=error[:300], next_attempt_at=now.isoformat())
    else:
        later = now + timedelta(seconds=backoff(entry["attempts"], policy))
        entry.update(status="retry", last_error=error[:300], next_attempt_at=later.isoformat())
    alert.details = {**(alert.details or {}), "deliveries": deliveries}
    return entry


def payload(alert: Alert, site: str, rule_text: str = "") -> dict[str, Any]:
    """What every channel sends: the alert, its rule in words, and a one-line ``text`` for chat webhooks."""
    details = {k: v for k, v in (alert.details or {}).items() if k != "deliveries"}
    return {
        "id": alert.id, "site": site, "rule": alert.rule, "rule_text": rule_text, "severity": alert.severity,
        "subject": alert.subject, "message": alert.message, "call_id": alert.call_id,
        "created_at": alert.created_at.isoformat(), "details": details,
        "text": f"[{site}] {alert.severity} {alert.rule}: {alert.message}" if site else
                f"{alert.severity} {alert.rule}: {alert.message}",
    }
