"""Link-health alerts for the PMS link: down too long, or postings unanswered too long (no Twisted, no clock).

Sources: domain.md, "Alerts that hotels ask for" (*silence*: no posting answer from the PMS for longer than
expected — "a hotel once went six months without posting a single charge"; each rule has a cool-down so
one bad night does not flood anyone) and fias.md §8 item 2 (lost link).

``due_alerts`` is the rule, pure: facts and thresholds in, alerts to raise out. ``check`` gathers the
facts from the database (``link_status``, ``postings``, ``alerts``) and stores what the rule says:

- ``pms_link_down``: the link has not been ``up`` for ``down_alert_minutes``. One alert per outage (none
  raised since the outage began), and none within ``alert_cooldown_minutes`` of the last.
- ``pms_postings_unanswered``: the link is up, yet the PMS has answered nothing we sent for
  ``unanswered_alert_minutes`` (the oldest posting sent after the last answer). One per such spell,
  with the same cool-down. While the link is down only the first rule speaks: one outage, one alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appliance.db.models import Alert, LinkStatus, Posting

RULE_DOWN = "pms_link_down"
RULE_UNANSWERED = "pms_postings_unanswered"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, kw_only=True, slots=True)
class Thresholds:
    down_minutes: float = 10.0
    unanswered_minutes: float = 15.0
    cooldown_minutes: float = 60.0

    @classmethod
    def from_options(cls, options: object) -> Thresholds:
        """From a PMS driver's options (``pms_drivers.common.LinkHealthOptions``), defaults otherwise."""
        return cls(down_minutes=getattr(options, "down_alert_minutes", 10.0),
                   unanswered_minutes=getattr(options, "unanswered_alert_minutes", 15.0),
                   cooldown_minutes=getattr(options, "alert_cooldown_minutes", 60.0))


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkFacts:
    link: str
    state: str  # as in link_status: up, connected, down ...
    state_since: datetime
    unanswered_since: datetime | None = None  # the oldest posting sent after the PMS's last answer
    last_alerts: dict[str, datetime] = field(default_factory=dict)  # rule -> when it last fired


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertDraft:
    rule: str
    severity: str
    subject: str
    message: str


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"


def due_alerts(facts: LinkFacts, thresholds: Thresholds, now: datetime) -> list[AlertDraft]:
    """The alerts to raise now (usually none)."""
    cooldown = timedelta(minutes=thresholds.cooldown_minutes)

    def allowed(rule: str, episode_start: datetime) -> bool:
        last = facts.last_alerts.get(rule)
        return last is None or (last < episode_start and now - last >= cooldown)

    out: list[AlertDraft] = []
    if facts.state != "up":
        down_for = now - facts.state_since
        if thresholds.down_minutes and down_for >= timedelta(minutes=thresholds.down_minutes) \
                and allowed(RULE_DOWN, facts.state_since):
            out.append(AlertDraft(
                rule=RULE_DOWN, severity="critical", subject=facts.link,
                message=f"PMS link {facts.link} has been {facts.state} for {_minutes(down_for)} "
                        f"(since {facts.state_since:%Y-%m-%d %H:%M} UTC): charges are queued, not posted"))
        return out
    since = facts.unanswered_since
    if since is not None and thresholds.unanswered_minutes:
        silent_for = now - since
        if silent_for >= timedelta(minutes=thresholds.unanswered_minutes) and allowed(RULE_UNANSWERED, since):
            out.append(AlertDraft(
                rule=RULE_UNANSWERED, severity="critical", subject=facts.link,
                message=f"PMS link {facts.link} is up but the PMS has answered no posting for "
                        f"{_minutes(silent_for)} (since {since:%Y-%m-%d %H:%M} UTC): check the interface"))
    return out


def gather(session: Session, link: str, now: datetime) -> LinkFacts | None:
    status = session.get(LinkStatus, link)
    if status is None:
        return None
    answered = status.last_answer_at
    horizon = answered if answered is not None else now - timedelta(days=7)
    unanswered_since = session.scalar(
        select(func.min(Posting.sent_at)).where(
            Posting.link == link, Posting.updated_at >= horizon, Posting.sent_at.is_not(None),
            Posting.sent_at > (answered if answered is not None else EPOCH)))
    last = dict(session.execute(
        select(Alert.rule, func.max(Alert.created_at))
        .where(Alert.rule.in_((RULE_DOWN, RULE_UNANSWERED)), Alert.subject == link)
        .group_by(Alert.rule)).all())
    return LinkFacts(link=link, state=status.state, state_since=status.since,
                     unanswered_since=unanswered_since, last_alerts=last)


def check(session: Session, link: str, thresholds: Thresholds, now: datetime) -> list[Alert]:
    """Raise (add) the alerts that are due for ``link``; returns them."""
    facts = gather(session, link, now)
    if facts is None:
        return []
    alerts = [Alert(rule=draft.rule, severity=draft.severity, subject=draft.subject[:64],
                    message=draft.message[:500], created_at=now) for draft in due_alerts(facts, thresholds, now)]
    session.add_all(alerts)
    return alerts
