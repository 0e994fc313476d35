"""The database schema: the source of truth and the only queue between the daemon and the web admin.

Every change here needs an alembic migration in ``appliance/db/migrations/versions``;
``tests/db/test_migrations.py`` fails when the two disagree. Times are UTC (``UtcDateTime``), money is
``Money`` (exact integers underneath), and raw bytes are kept wherever a peer sent them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text, text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from appliance.db.types import BigId, Money, UtcDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Posting states (domain.md, "Posting states"); calls that never post carry a disposition instead.
POSTING_STATES = ("open", "retry", "ok", "failed", "excluded", "refunded")
DISPOSITIONS = ("charge", "excluded", "internal", "incoming")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class JournalEntry(Base):
    """One framed record exactly as a PBX link delivered it, written before it is parsed."""

    __tablename__ = "journal"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    link: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    processed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    __table_args__ = (Index("ix_journal_pending", "processed", "id"),)


class QuarantinedLine(Base):
    """A record no parser could read, with its bytes and the reason, for an installer to look at."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    journal_id: Mapped[int | None] = mapped_column(ForeignKey("journal.id"), index=True)
    link: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(String(300))


class Call(Base):
    __tablename__ = "calls"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    journal_id: Mapped[int | None] = mapped_column(ForeignKey("journal.id"), unique=True)
    link: Mapped[str] = mapped_column(String(32))
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    start: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    duration: Mapped[int] = mapped_column(Integer)
    ring: Mapped[int | None] = mapped_column(Integer)
    extension: Mapped[str] = mapped_column(String(32))  # indexed by ix_calls_extension_usage
    trunk: Mapped[str] = mapped_column(String(32), default="")
    dialled: Mapped[str] = mapped_column(String(64), default="", index=True)
    caller: Mapped[str] = mapped_column(String(64), default="")
    direction: Mapped[str] = mapped_column(String(10))
    answered: Mapped[bool] = mapped_column(Boolean)
    account_code: Mapped[str] = mapped_column(String(32), default="")
    pbx_call_id: Mapped[str] = mapped_column(String(64), default="")
    transfer: Mapped[str] = mapped_column(String(64), default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    category: Mapped[str] = mapped_column(String(16))
    room: Mapped[str] = mapped_column(String(16), default="", index=True)
    stay_id: Mapped[int | None] = mapped_column(ForeignKey("stays.id"))
    call_class: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(String(64), default="")
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    rating: Mapped[dict[str, Any]] = mapped_column(JSON)
    disposition: Mapped[str] = mapped_column(String(10), index=True)
    reason: Mapped[str] = mapped_column(String(200), default="")
    # The state of the call's charge posting (NULL without one), kept equal to it by database triggers
    # on postings (migration 0008), so the report filters and sorts by state without joining postings.
    # Never written by the application: the triggers are its only writers.
    charge_state: Mapped[str | None] = mapped_column(String(10))

    postings: Mapped[list[Posting]] = relationship(back_populates="call", order_by="Posting.id")

    __table_args__ = (
        # The call report reads a period's totals, filters and sort columns from this index alone.
        # Its trailing id lets PostgreSQL pick a page's ids by index-only scan (migration 0008).
        Index("ix_calls_report", "start", "amount", "duration", "disposition", "room", "extension",
              "account_code", "direction", "dialled", "caller", "id"),
        # Calls without a charge in one state (excluded, internal, incoming) in a period (the report).
        Index("ix_calls_disposition_start", "disposition", "start", "amount", "duration"),
        # Calls whose charge is in one state in a period (the report), totals from the index alone; with
        # disposition and id, a period's calls sorted by state too (id: PostgreSQL's index-only scans).
        Index("ix_calls_charge_state_start", "charge_state", "start", "amount", "duration", "disposition",
              "id"),
        Index("ix_calls_pbx_call_id", "pbx_call_id"),
        # The alert rules' per-call reads (burst window, an extension's day and history), index-only.
        Index("ix_calls_extension_usage", "extension", "direction", "start", "disposition", "duration",
              "amount"),
    )


class Posting(Base):
    """A charge or refund on its way to a guest folio; ``state`` follows appliance.postings."""

    __tablename__ = "postings"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # charge | refund
    refund_of_id: Mapped[int | None] = mapped_column(ForeignKey("postings.id"))
    link: Mapped[str] = mapped_column(String(32))
    room: Mapped[str] = mapped_column(String(16), index=True)
    stay_id: Mapped[int | None] = mapped_column(ForeignKey("stays.id"))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    destination: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(300), default="")
    sequence: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answer_code: Mapped[str] = mapped_column(String(4), default="")
    answer_text: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(64), default="daemon")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    note: Mapped[str] = mapped_column(Text, default="")

    call: Mapped[Call | None] = relationship(back_populates="postings")
    history: Mapped[list[PostingEvent]] = relationship(order_by="PostingEvent.id")

    __table_args__ = (
        Index("ix_postings_queue", "link", "state", "next_attempt_at", "id"),
        Index("ix_postings_sequence", "link", "sequence"),
        Index("ix_postings_refunds", "created_at", sqlite_where=text("kind = 'refund'"),
              postgresql_where=text("kind = 'refund'")),
        # The report's calls whose charge is in a rare state (open, retry, failed, refunded).
        Index("ix_postings_charge_state", "state", "call_id", sqlite_where=text("kind = 'charge'"),
              postgresql_where=text("kind = 'charge'")),
        # One charge per call, whatever happens: the last guard against a double posting.
        Index("uq_postings_one_charge_per_call", "call_id", unique=True,
              sqlite_where=text("kind = 'charge'"), postgresql_where=text("kind = 'charge'")),
    )


class PostingEvent(Base):
    """One state change of a posting: when, from what to what, why, and the PMS's raw answer."""

    __tablename__ = "posting_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    posting_id: Mapped[int] = mapped_column(ForeignKey("postings.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    from_state: Mapped[str] = mapped_column(String(10), default="")
    to_state: Mapped[str] = mapped_column(String(10))
    cause: Mapped[str] = mapped_column(String(300))
    actor: Mapped[str] = mapped_column(String(64), default="daemon")
    sequence: Mapped[int | None] = mapped_column(Integer)
    raw: Mapped[str] = mapped_column(Text, default="")


class Stay(Base):
    """Who held a room when (from PMS check-in / check-out / moves); calls are charged to the stay of
    the room at the time of the call."""

    __tablename__ = "stays"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    room: Mapped[str] = mapped_column(String(16))
    guest_id: Mapped[str] = mapped_column(String(20), default="")
    name: Mapped[str] = mapped_column(String(200), default="")
    share: Mapped[bool] = mapped_column(Boolean, default=False)
    checked_in_at: Mapped[datetime] = mapped_column(UtcDateTime)
    checked_out_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(16), default="pms")

    __table_args__ = (Index("ix_stays_room_in", "room", "checked_in_at"),)


class Extension(Base):
    __tablename__ = "extensions"
    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str] = mapped_column(String(16))
    room: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(String(100), default="")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # viewer | frontdesk | admin
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128), default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    detail: Mapped[str] = mapped_column(Text, default="")


class LinkStatus(Base):
    """What the daemon last knew of each link, for the dashboard and the silence alerts."""

    __tablename__ = "link_status"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(UtcDateTime)
    detail: Mapped[str] = mapped_column(String(300), default="")
    last_record_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_answer_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Alert(Base):
    """One alert raised by a rule (abuse, silence, failed postings); acknowledged by a person."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(10))  # info | warning | critical
    subject: Mapped[str] = mapped_column(String(64), default="")  # extension, link or room it is about
    message: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str] = mapped_column(String(64), default="")

    # The cool-down lookup: the last alert of a rule about a subject.
    __table_args__ = (Index("ix_alerts_rule_subject", "rule", "subject", "created_at"),)


class AlertDelivery(Base):
    """One attempt to deliver an alert to a channel (appliance.alerts.deliveries): the delivery log.

    ``outcome``: pending (queued, attempt 0), sending (handed to the channel; ``next_attempt_at`` is the
    deadline after which it is sent again), sent, retry (failed; tried again at ``next_attempt_at``),
    failed (the last attempt failed), dropped (the channel left the configuration), unknown (no outcome
    came back before the deadline, e.g. the daemon stopped mid-send). ``next_attempt_at`` is set only on
    the one open row of an alert and channel, so the due query reads one index.
    """

    __tablename__ = "alert_deliveries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    channel: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(10))
    error: Mapped[str] = mapped_column(String(300), default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)

    __table_args__ = (Index("ix_alert_deliveries_alert", "alert_id", "channel", "id"),)


class ReportSchedule(Base):
    """A scheduled report mailing (appliance.reports.scheduler): edited in the web admin, run by the daemon.

    ``kind`` is the report bundle (daily call summary, weekly cost report, monthly overview); times are the
    site's local time; ``day_of_week`` 0 = Monday (weekly), ``day_of_month`` 1-28 (monthly).
    ``last_run_due`` is the due time of the last run that was delivered: the missed-run catch-up compares
    it with the schedule's last due time.
    """

    __tablename__ = "report_schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    hour: Mapped[int] = mapped_column(Integer, default=6)
    minute: Mapped[int] = mapped_column(Integer, default=0)
    day_of_week: Mapped[int] = mapped_column(Integer, default=0)
    day_of_month: Mapped[int] = mapped_column(Integer, default=1)
    formats: Mapped[list[str]] = mapped_column(JSON)
    recipients: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_run_due: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class PmsCounter(Base):
    """The next FIAS P# per PMS link; persisted so a restart never reuses a sequence number."""

    __tablename__ = "pms_counters"
    link: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_sequence: Mapped[int] = mapped_column(Integer)
    resync_wanted: Mapped[bool] = mapped_column(Boolean, default=False)


__all__ = [
    "Base", "JournalEntry", "QuarantinedLine", "Call", "Posting", "PostingEvent", "Stay", "Extension", "User",
    "AuditEntry", "LinkStatus", "PmsCounter", "Alert", "AlertDelivery", "ReportSchedule", "POSTING_STATES",
    "DISPOSITIONS",
]
