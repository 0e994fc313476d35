"""The alert engine: runs the rules, applies cool-downs, stores ``Alert`` rows with their delivery log.

``AlertEngine(config)`` is a pipeline observer: ``on_calls_stored(session, calls, now)`` (or
``on_call_stored`` for one) runs the per-call rules in the calls' own transaction, so an alert about a call
is stored with the call or not at all. Each rule costs a few index entries per call, not a scan of the
extension's calls (rules.py, issue 7).
``check_periodic(session, now)`` runs the silence and failed-posting rules. Both only add rows to the
session they are given; the caller commits.

The cool-down is per rule and subject (an extension, a link): while the last alert of that pair is younger
than the rule's ``cooldown_minutes`` a new finding is not stored again, and a per-call finding is counted
on the earlier alert instead (``details["repeats"]``). It is read from the alerts table, so it survives a
restart. Nothing here reads the clock or imports Twisted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from appliance.alerts import deliveries
from appliance.alerts.config import AlertsConfig, RuleOptions
from appliance.alerts.rules import CallRule, Context, Finding, call_facts, call_rules
from appliance.alerts.silence import PeriodicRule, periodic_rules
from appliance.db.models import Alert, Call

RULE_ERROR = RuleOptions(severity="warning", cooldown_minutes=60)


@dataclass(slots=True)
class _Latest:
    """A (rule, subject)'s last alert within one batch, with the findings held back on it not yet written."""

    alert: Alert | None
    repeats: int = 0
    at: str = ""
    call_id: int | None = None


class AlertEngine:
    """The configured rules of one site; one instance per daemon."""

    def __init__(self, config: Any) -> None:
        """``config`` is the ``ApplianceConfig`` (not imported: appliance.config imports this package)."""
        self.config: AlertsConfig = config.alerts
        self.site = config.site.name
        self.context = Context(tz=config.site.tz, currency=config.site.currency, country=config.site.country,
                               business_hours=self.config.business_hours)
        enabled = self.config.enabled
        self.call_rules: list[CallRule] = call_rules(self.config.rules, self.context) if enabled else []
        self.periodic_rules: list[PeriodicRule] = periodic_rules(config, self.context) if enabled else []
        self._listeners: list[Callable[[list[Alert]], None]] = []

    def add_listener(self, listener: Callable[[list[Alert]], None]) -> None:
        """``listener(alerts)`` is told of raised alerts, in the database thread and before the commit."""
        self._listeners.append(listener)

    def describe(self) -> dict[str, str]:
        """Each enabled rule in words, by rule name, for the web admin and for the alert payloads."""
        return {rule.name: rule.describe() for rule in [*self.call_rules, *self.periodic_rules]}

    # ------------------------------------------------------------------ evaluation

    def on_call_stored(self, session: Session, call: Call, now: datetime) -> list[Alert]:
        """One call, already inserted (flushed) in ``session``'s transaction."""
        return self.on_calls_stored(session, [call], now)

    def on_calls_stored(self, session: Session, calls: list[Call], now: datetime) -> list[Alert]:
        """A batch of calls the pipeline inserted together, in their transaction.

        Every call of the batch is in the table before any rule looks at one, so the rules are first told
        of the whole batch (``prepare``: the baseline's day totals) and then judge each call in turn, the
        same as one call at a time would see the table. Listeners hear once per batch.
        """
        raised: list[Alert] = []
        latest: dict[tuple[str, str], _Latest] = {}
        for rule in self.call_rules:
            self._run(session, rule.name, lambda rule=rule: rule.prepare(session, calls, now), now, raised)
        for call in calls:
            for rule in self.call_rules:
                finding = self._run(session, rule.name, lambda rule=rule: rule.check(session, call), now,
                                    raised)
                if finding is None:
                    continue
                finding = Finding(subject=finding.subject, message=finding.message,
                                  details={"call": call_facts(call, self.context), **finding.details})
                alert = self.raise_alert(session, rule.name, rule.options, finding, now, call_id=call.id,
                                         count_repeats=True, latest=latest)
                self._keep(raised, alert)
        for seen in latest.values():
            self._count_repeats(seen)
        self._tell(raised)
        return raised

    def check_periodic(self, session: Session, now: datetime) -> list[Alert]:
        raised: list[Alert] = []
        for rule in self.periodic_rules:
            findings = self._run(session, rule.name, lambda rule=rule: rule.check(session, now), now, raised)
            for finding in findings or ():
                self._keep(raised, self.raise_alert(session, rule.name, rule.options, finding, now))
        self._tell(raised)
        return raised

    def _run(self, session: Session, name: str, check: Callable[[], Any], now: datetime,
             raised: list[Alert]) -> Any:
        """A rule's result; a bug in one rule becomes a ``rule_error`` alert, never a lost call.

        Database errors are not caught: the transaction is broken then, and the caller must roll back.
        """
        try:
            return check()
        except SQLAlchemyError:
            raise
        except Exception as exc:  # a rule bug must not stop the pipeline
            finding = Finding(subject=name, message=f"alert rule {name} failed: {type(exc).__name__}: {exc}")
            self._keep(raised, self.raise_alert(session, "rule_error", RULE_ERROR, finding, now))
            return None

    @staticmethod
    def _keep(raised: list[Alert], alert: Alert | None) -> None:
        if alert is not None:
            raised.append(alert)

    # ------------------------------------------------------------------ storage

    def raise_alert(self, session: Session, rule: str, options: RuleOptions, finding: Finding, now: datetime,
                    *, call_id: int | None = None, count_repeats: bool = False,
                    latest: dict[tuple[str, str], _Latest] | None = None) -> Alert | None:
        """Store the finding as an alert unless the rule and subject are cooling down.

        ``latest`` (one batch of calls, one transaction) keeps each (rule, subject)'s last alert once
        looked up, and its repeats until ``_count_repeats``: a busy extension repeating a finding on every
        call of a replayed buffer then costs one lookup and one update per batch, not per call, and the
        alert ends with the same ``repeats``, ``last_repeat_at`` and ``last_repeat_call_id``.
        """
        subject = finding.subject[:64]
        if options.cooldown_minutes:
            seen = latest.get((rule, subject)) if latest is not None else None
            if seen is None:
                seen = _Latest(session.scalars(
                    select(Alert).where(Alert.rule == rule, Alert.subject == subject)
                    .order_by(Alert.created_at.desc(), Alert.id.desc()).limit(1)).first())
                if latest is not None:
                    latest[(rule, subject)] = seen
            last = seen.alert
            if last is not None and now - last.created_at < timedelta(minutes=options.cooldown_minutes):
                if count_repeats:
                    seen.repeats += 1
                    seen.at = now.isoformat()
                    seen.call_id = call_id
                    if latest is None:
                        self._count_repeats(seen)
                return None
            if latest is not None:
                self._count_repeats(seen)  # the alert about to follow it takes its place
        channels = self.config.channels_for(rule, options.severity)
        alert = Alert(rule=rule, severity=options.severity, subject=subject, message=finding.message[:500],
                      details={**finding.details, "deliveries": deliveries.initial(channels, now)},
                      call_id=call_id, created_at=now)
        session.add(alert)
        if latest is not None and options.cooldown_minutes:
            latest[(rule, subject)] = _Latest(alert)
        return alert

    @staticmethod
    def _count_repeats(seen: _Latest) -> None:
        """Write the findings held back on an alert into its details (one update)."""
        if seen.alert is None or not seen.repeats:
            return
        details = dict(seen.alert.details or {})
        details["repeats"] = int(details.get("repeats", 0)) + seen.repeats
        details["last_repeat_at"] = seen.at
        details["last_repeat_call_id"] = seen.call_id
        seen.alert.details = details
        seen.repeats = 0

    def _tell(self, raised: list[Alert]) -> None:
        if raised:
            for listener in self._listeners:
                listener(raised)
