"""Periodic alert rules: silence on the PBX links, silence from the PMS, failed postings piling up.

domain.md: "a hotel once went six months without posting a single charge and nobody noticed". These rules
look at what is missing, so they run on a timer (``AlertEngine.check_periodic(session, now)``, every minute
from ``appliance.net.alert_service``) rather than per call. Time comes in as ``now``; nothing here reads a
clock.

How long a PBX may stay quiet depends on the hour: a record at 14:00 is followed by another within minutes,
one at 01:00 may be the last until breakfast. The expected gap after a record is therefore kept per hour of
day (site time) of that record: configured, or learned from the link's own call history (see
``learn_gaps``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appliance.alerts.config import FailedQueueRule, PbxSilenceRule, PmsSilenceRule, RuleOptions
from appliance.alerts.rules import Context, Finding, duration_words
from appliance.db.models import Call, LinkStatus, Posting

WAITING_STATES = ("open", "retry")


class PeriodicRule:
    """A rule about what has (not) happened by ``now``; may find several subjects at once."""

    name = ""

    def __init__(self, options: RuleOptions, context: Context) -> None:
        self.options = options
        self.context = context

    def check(self, session: Session, now: datetime) -> list[Finding]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def learn_gaps(ends: Sequence[datetime], context: Context, *, margin: float, min_minutes: float,
               max_minutes: float) -> dict[int, float]:
    """Expected gap in minutes after a record, per local hour of day, from record times ``ends``.

    For each day and hour the longest gap that began in that hour is one sample; per hour the second
    longest sample is taken (one bad day, such as a past outage, must not teach that hours of silence are
    normal), times ``margin``, kept within [min_minutes, max_minutes]. An hour that never began a gap gets
    the longest expectation of the others.
    """
    ordered = sorted(ends)
    longest: dict[tuple[date, int], float] = {}
    for before, after in pairwise(ordered):
        local = context.local(before)
        key = (local.date(), local.hour)
        longest[key] = max(longest.get(key, 0.0), (after - before).total_seconds() / 60)
    per_hour: dict[int, list[float]] = {}
    for (_day, hour), gap in longest.items():
        per_hour.setdefault(hour, []).append(gap)
    expected: dict[int, float] = {}
    for hour, samples in per_hour.items():
        samples.sort(reverse=True)
        typical = samples[1] if len(samples) >= 3 else samples[0]
        expected[hour] = min(max(typical * margin, min_minutes), max_minutes)
    fill = max(expected.values(), default=max_minutes)
    return {hour: expected.get(hour, fill) for hour in range(24)}


class PbxSilence(PeriodicRule):
    name = "pbx_silence"
    options: PbxSilenceRule

    def __init__(self, options: RuleOptions, context: Context, links: Sequence[tuple[str, int]]) -> None:
        super().__init__(options, context)
        self.links = tuple(links)  # (link name, its silence_minutes or 0)
        self._learned: dict[tuple[str, date], dict[int, float] | None] = {}

    def check(self, session: Session, now: datetime) -> list[Finding]:
        findings = []
        for name, fixed in self.links:
            last, state = last_record(session, name)
            if last is None:
                continue  # never heard from: nothing to measure silence from yet
            expected, how = self.expected(session, name, fixed, last, now)
            quiet = (now - last).total_seconds() / 60
            if quiet <= expected:
                continue
            hour = self.context.local(last).hour
            findings.append(Finding(
                subject=name,
                message=f"no call record from PBX link {name} for {duration_words(quiet * 60)} (after a "
                        f"record at {hour:02d}h one is expected within {duration_words(expected * 60)}, "
                        f"{how}); the link is {state or 'unknown'}",
                details={"link": name, "last_record_at": last.isoformat(), "quiet_minutes": round(quiet, 1),
                         "expected_minutes": round(expected, 1), "expected_from": how, "link_state": state}))
        return findings

    def expected(self, session: Session, link: str, fixed: int, last: datetime,
                 now: datetime) -> tuple[float, str]:
        """Minutes of silence that are still normal after ``last``, and where that figure comes from."""
        o = self.options
        hour = self.context.local(last).hour
        if fixed:
            return float(fixed), "the link's silence_minutes"
        if o.hourly_minutes:
            return float(o.hourly_minutes[hour]), "configured for that hour"
        if o.minutes:
            return float(o.minutes), "configured"
        key = (link, self.context.local(now).date())
        if key not in self._learned:
            # Learned once a day per link; yesterday's table is dropped with the new day.
            self._learned = {k: v for k, v in self._learned.items() if k[0] != link}
            self._learned[key] = self._learn(session, link, now)
        table = self._learned[key]
        if table is None:
            return float(o.fallback_minutes), "not enough history yet to learn"
        return table[hour], f"learned from the last {o.learn_days} days"

    def _learn(self, session: Session, link: str, now: datetime) -> dict[int, float] | None:
        o = self.options
        since = now - timedelta(days=o.learn_days)
        rows = session.execute(select(Call.start, Call.duration).where(
            Call.link == link, Call.start >= since, Call.start < now)).all()
        # A PBX writes a record when the call ends, so the end of each call stands for its arrival (the
        # journal's receive times are useless here after a bulk import of old log files).
        ends = [start + timedelta(seconds=duration) for start, duration in rows]
        if len(ends) < 2 or (now - min(ends)) < timedelta(days=o.min_history_days):
            return None
        return learn_gaps(ends, self.context, margin=o.margin, min_minutes=o.min_minutes,
                          max_minutes=o.max_minutes)

    def describe(self) -> str:
        o = self.options
        if o.hourly_minutes:
            how = "the gap configured for the hour of the last record"
        elif o.minutes:
            how = f"{o.minutes} minutes"
        else:
            how = (f"is normal after a record at that hour of day, learned from the last {o.learn_days} days "
                   f"({o.margin:g} times the usual longest gap, between {o.min_minutes} and "
                   f"{o.max_minutes} min; {o.fallback_minutes} min until {o.min_history_days} days of "
                   "history exist)")
        return (f"A PBX link sends no call record for longer than {how}; a link's silence_minutes "
                "overrides this.")


def last_record(session: Session, link: str) -> tuple[datetime | None, str]:
    """When ``link`` last delivered a record (or came up, if it never did), and its state."""
    status = session.get(LinkStatus, link)
    if status is not None and status.last_record_at is not None:
        return status.last_record_at, status.state
    received = session.scalar(select(Call.received_at).where(Call.link == link)
                              .order_by(Call.id.desc()).limit(1))
    if received is not None:
        return received, status.state if status else ""
    if status is not None:
        return status.since, status.state
    return None, ""


class PmsSilence(PeriodicRule):
    name = "pms_silence"
    options: PmsSilenceRule

    def __init__(self, options: RuleOptions, context: Context, link: str) -> None:
        super().__init__(options, context)
        self.link = link

    def check(self, session: Session, now: datetime) -> list[Finding]:
        waiting, oldest = session.execute(select(func.count(), func.min(Posting.created_at)).where(
            Posting.link == self.link, Posting.state.in_(WAITING_STATES))).one()
        if not waiting:
            return []
        status = session.get(LinkStatus, self.link)
        last_answer = status.last_answer_at if status is not None else None
        # Silence only counts while something waits: from the later of the last answer and the oldest wait.
        since = max(oldest, last_answer) if last_answer is not None else oldest
        quiet = (now - since).total_seconds() / 60
        if quiet <= self.options.minutes:
            return []
        answered = (f"last answered at {self.context.local(last_answer):%a %d %b %H:%M}"
                    if last_answer is not None else "no answer on record")
        return [Finding(subject=self.link,
                        message=f"the PMS (link {self.link}) has not answered for "
                                f"{duration_words(quiet * 60)} while {waiting} posting(s) wait ({answered})",
                        details={"link": self.link, "waiting": waiting,
                                 "oldest_waiting_since": oldest.isoformat(),
                                 "last_answer_at": last_answer.isoformat() if last_answer else None,
                                 "link_state": status.state if status is not None else ""})]

    def describe(self) -> str:
        return f"The PMS answers no posting for more than {self.options.minutes} minutes while postings wait."


class FailedQueue(PeriodicRule):
    name = "failed_queue"
    options: FailedQueueRule

    def __init__(self, options: RuleOptions, context: Context, subject: str) -> None:
        super().__init__(options, context)
        self.subject = subject

    def check(self, session: Session, now: datetime) -> list[Finding]:
        failed = session.scalar(select(func.count()).select_from(Posting)
                                .where(Posting.state == "failed")) or 0
        if failed < self.options.threshold:
            return []
        return [Finding(subject=self.subject,
                        message=f"{failed} failed posting(s) wait for review (threshold "
                                f"{self.options.threshold}): see Failed postings in the web admin",
                        details={"failed": failed, "threshold": self.options.threshold})]

    def describe(self) -> str:
        return (f"{self.options.threshold} or more postings have failed (rejected, or sent and never "
                "answered) and wait for someone to review them.")


def periodic_rules(config: Any, context: Context) -> list[PeriodicRule]:
    """The enabled periodic rules for an ``ApplianceConfig`` (its PBX links and PMS link)."""
    rules = config.alerts.rules
    out: list[PeriodicRule] = []
    if rules.pbx_silence.enabled and config.pbx:
        out.append(PbxSilence(rules.pbx_silence, context,
                              [(link.name, link.silence_minutes) for link in config.pbx]))
    if rules.pms_silence.enabled and config.pms is not None:
        out.append(PmsSilence(rules.pms_silence, context, config.pms.name))
    if rules.failed_queue.enabled:
        out.append(FailedQueue(rules.failed_queue, context, config.pms.name if config.pms else "postings"))
    return out
