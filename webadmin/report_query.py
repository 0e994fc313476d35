"""The call report's query: calls and refund records under one filter, for the page, its totals and the
exports. No Flask here; the screen (``webadmin.report``) and the exports (``webadmin.export``) share it, so
an export holds exactly the rows the filter shows.

A report row is either a call (its amount, and the state of its charge or its disposition) or a refund
record (a refund posting: negative amount, dated when it was made). Both kinds come from one
``UNION ALL``; every filter is applied inside each branch so the indexes on ``calls.start``, ``room``,
``extension`` and ``postings.updated_at`` can do their work. Values only ever reach SQL as bound
parameters, and the sort column is looked up in ``SORTS``: nothing a person types becomes SQL text.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    case,
    false,
    func,
    literal,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from appliance.db.models import Call, Posting
from appliance.db.types import Money
from appliance.postings import State as PostingState
from webadmin.queries import state_label

STATES = ("ok", "open", "retry", "failed", "excluded", "refunded", "internal", "incoming")
RECORD_TYPES = ("both", "charges", "refunds")
SORTS = ("start", "room", "extension", "number", "duration", "amount", "state")
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
EXPORT_BATCH = 2000


@dataclass(frozen=True, kw_only=True)
class ReportFilter:
    """What the person asked for. Dates are days in the site's time zone, both inclusive."""

    start_date: date | None = None
    end_date: date | None = None
    state: str = ""
    record_type: str = "both"
    room: str = ""
    extension: str = ""
    caller: str = ""
    called: str = ""
    account: str = ""
    call_id: str = ""  # our call number, or the PBX's call id; when set, every other filter is ignored
    # The calls ``call_id`` names, found by ``resolve_call_id`` before the report's queries run.
    call_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.state and self.state not in STATES:
            raise ValueError(f"unknown state {self.state!r}")
        if self.record_type not in RECORD_TYPES:
            raise ValueError(f"unknown record type {self.record_type!r}")

    def describe(self) -> dict[str, str]:
        """The filters that are set, as text (for the audit log of an export)."""
        if self.call_id:
            return {"call_id": self.call_id}
        out = {}
        for name, value in asdict(self).items():
            if value not in (None, "", ()) and not (name == "record_type" and value == "both"):
                out[name] = value.isoformat() if isinstance(value, date) else str(value)
        return out


@dataclass(frozen=True, slots=True)
class ReportRow:
    record: str  # "call" or "refund"
    id: int  # the call's id, or the refund posting's
    call_id: int | None
    start: datetime  # the call's start, or when the refund was made
    extension: str
    room: str
    direction: str
    caller: str
    dialled: str
    duration: int
    call_class: str
    destination: str
    account_code: str
    pbx_call_id: str
    amount: Decimal  # negative for a refund
    currency: str
    state: str
    posting_id: int | None
    by: str  # who made a refund

    @property
    def number(self) -> str:
        return self.caller if self.direction == "incoming" else self.dialled

    @property
    def state_label(self) -> str:
        return state_label(self.state)


COLUMNS = tuple(f.name for f in fields(ReportRow))


@dataclass(frozen=True, slots=True)
class Totals:
    rows: int
    calls: int
    refunds: int
    duration: int
    charged: Decimal  # the calls' amounts
    refunded: Decimal  # the refunds' amounts (negative)

    @property
    def net(self) -> Decimal:
        return self.charged + self.refunded


def day_bounds(start_date: date | None, end_date: date | None, zone: ZoneInfo) -> tuple[datetime | None,
                                                                                        datetime | None]:
    """The site-local days as an aware half-open range [start 00:00, day after end 00:00)."""
    low = datetime.combine(start_date, time(0), zone) if start_date else None
    high = datetime.combine(end_date + timedelta(days=1), time(0), zone) if end_date else None
    return low, high


def _digits(text: str) -> str:
    """A typed phone number without spaces, dots, dashes or brackets ("+44 20 7946-000")."""
    return "".join(ch for ch in text if ch not in " .-()/").strip()


# The postings' kind as SQL text, not a bound parameter: SQLite uses a partial index (``WHERE kind =
# 'charge'``) only when the query's own condition is that literal, which a parameter is not.
CHARGE = literal("charge", String, literal_execute=True)
REFUND = literal("refund", String, literal_execute=True)


def _call_columns(charge: Any, state: Any, shape: str, sort: str) -> list[Any]:
    """What a calls branch selects: ``full`` the report's columns, ``totals`` what the totals add up,
    ``keys`` only what puts a page in order (the id and the sort column)."""
    if shape == "totals":
        return [func.count().label("rows"), func.coalesce(func.sum(Call.duration), 0).label("duration"),
                type_coerce(func.coalesce(func.sum(Call.amount), 0), Money).label("amount")]
    if shape == "keys":
        columns = {"start": Call.start, "room": Call.room, "extension": Call.extension,
                   "duration": Call.duration, "amount": Call.amount, "state": state}
        key = (case((Call.direction == "incoming", Call.caller), else_=Call.dialled)
               if sort == "number" else columns[sort])
        return [Call.id.label("id"), key.label("key")]
    return [
        literal("call", String).label("record"), Call.id.label("id"), Call.id.label("call_id"),
        Call.start.label("start"), Call.extension.label("extension"), Call.room.label("room"),
        Call.direction.label("direction"), Call.caller.label("caller"), Call.dialled.label("dialled"),
        Call.duration.label("duration"), Call.call_class.label("call_class"),
        Call.destination.label("destination"), Call.account_code.label("account_code"),
        Call.pbx_call_id.label("pbx_call_id"), Call.amount.label("amount"),
        Call.currency.label("currency"), state.label("state"), charge.id.label("posting_id"),
        literal("", String).label("by"),
    ]


def _calls_branches(flt: ReportFilter, zone: ZoneInfo, shape: str = "full",
                    sort: str = "start") -> list[Select[Any]]:
    """The calls under the filter, as one SELECT, or two when a state is asked for.

    A call's state is its charge's state, or its disposition when it has no charge. The charge's state
    is kept on the call itself (``calls.charge_state``, by triggers on postings: migration 0008), so
    neither a state filter nor a sort by state joins the postings; only the page's own rows are joined
    to their charge, for its id. With a state ``X`` the calls are those whose charge is in ``X`` plus
    those without a charge whose disposition is ``X``: two disjoint sets, each one range of its own
    index (``ix_calls_charge_state_start``, ``ix_calls_disposition_start``), where one condition on
    ``coalesce(charge_state, disposition)`` would read every call of the period."""
    low, high = day_bounds(flt.start_date, flt.end_date, zone)
    common: list[ColumnElement[bool]] = []
    if not flt.call_id:
        if low is not None:
            common.append(Call.start >= low)
        if high is not None:
            common.append(Call.start < high)
        common += _call_conditions(Call, flt)
        if flt.room:
            common.append(Call.room == flt.room.strip())
    charge = aliased(Posting)
    on_charge = and_(charge.call_id == Call.id, charge.kind == CHARGE)

    def calls(state: Any) -> Select[Any]:
        statement = select(*_call_columns(charge, state, shape, sort)).select_from(Call)
        # At most one charge per call (uq_postings_one_charge_per_call): the join never repeats a call.
        # Only the full rows need it (the charge's id); keys and totals come from the calls alone.
        return statement.outerjoin(charge, on_charge) if shape == "full" else statement

    if shape == "keys" and sort == "state" and not flt.call_id and not flt.state:
        # The page's keys when sorting by state: the charged calls of the period (one range of
        # ix_calls_charge_state_start per posting state) and the uncharged ones (its NULL range), both
        # read from that index alone (it ends with disposition and id), where coalesce(charge_state,
        # disposition) over the period would read every call row.
        charged = select(Call.id.label("id"), Call.charge_state.label("key")).where(
            Call.charge_state.in_([str(state) for state in PostingState]), *common)
        uncharged = select(Call.id.label("id"), Call.disposition.label("key")).where(
            Call.charge_state.is_(None), *common)
        keys = union_all(charged, uncharged).subquery()
        return [select(keys.c.id, keys.c.key)]
    if flt.call_id or not flt.state:
        statement = calls(func.coalesce(Call.charge_state, Call.disposition))
        if flt.call_id:
            return [statement.where(_call_id_match(Call, flt))]
        return [statement.where(*common)]
    charged = calls(Call.charge_state).where(Call.charge_state == flt.state, *common)
    # "No charge" as coalesce(charge_state, '') = '' (a state is never empty) rather than IS NULL: a
    # condition no index serves, so SQLite reads the few calls in that disposition from
    # ix_calls_disposition_start instead of every uncharged call of the period from the charge_state index.
    uncharged = calls(Call.disposition).where(Call.disposition == flt.state,
                                              func.coalesce(Call.charge_state, "") == "", *common)
    return [charged, uncharged]


def _refund_columns(refund: Any, call: Any, shape: str, sort: str) -> list[Any]:
    if shape == "totals":
        return [func.count().label("rows"), literal(0).label("duration"),
                type_coerce(func.coalesce(func.sum(-refund.amount), 0), Money).label("amount")]
    if shape == "keys":
        columns = {"start": refund.created_at, "room": refund.room,
                   "extension": func.coalesce(call.extension, ""), "duration": literal(0),
                   "amount": -refund.amount, "state": refund.state,
                   "number": case((call.direction == "incoming", call.caller),
                                  else_=func.coalesce(call.dialled, ""))}
        return [refund.id.label("id"), columns[sort].label("key")]
    return [
        literal("refund", String).label("record"), refund.id.label("id"), refund.call_id.label("call_id"),
        refund.created_at.label("start"), func.coalesce(call.extension, "").label("extension"),
        refund.room.label("room"), func.coalesce(call.direction, "").label("direction"),
        func.coalesce(call.caller, "").label("caller"), func.coalesce(call.dialled, "").label("dialled"),
        literal(0).label("duration"), func.coalesce(call.call_class, "").label("call_class"),
        refund.destination.label("destination"),
        func.coalesce(call.account_code, "").label("account_code"),
        func.coalesce(call.pbx_call_id, "").label("pbx_call_id"), (-refund.amount).label("amount"),
        refund.currency.label("currency"), refund.state.label("state"), refund.id.label("posting_id"),
        refund.created_by.label("by"),
    ]


def _refunds_branch(flt: ReportFilter, zone: ZoneInfo, shape: str = "full",
                    sort: str = "start") -> Select[Any]:
    """The refund records under the filter (refund postings: a few per thousand calls)."""
    refund = aliased(Posting)
    call = aliased(Call)
    statement = select(*_refund_columns(refund, call, shape, sort))
    if (shape != "totals" or flt.call_id or flt.extension or flt.caller or flt.called or flt.account):
        statement = statement.outerjoin(call, call.id == refund.call_id)
    statement = statement.where(refund.kind == REFUND)
    if flt.call_id:
        return statement.where(_call_id_match(call, flt))
    low, high = day_bounds(flt.start_date, flt.end_date, zone)
    conditions: list[ColumnElement[bool]] = []
    if low is not None:
        conditions.append(refund.created_at >= low)
    if high is not None:
        conditions.append(refund.created_at < high)
    if flt.state:
        conditions.append(refund.state == flt.state)
    conditions += _call_conditions(call, flt)
    if flt.room:
        conditions.append(refund.room == flt.room.strip())
    return statement.where(*conditions)


def _call_conditions(call: Any, flt: ReportFilter) -> list[ColumnElement[bool]]:
    """Filters on the call's own columns (for a refund, those of the call it refunds)."""
    conditions: list[ColumnElement[bool]] = []
    if flt.extension:
        conditions.append(call.extension == flt.extension.strip())
    if flt.caller:
        conditions.append(call.caller.contains(_digits(flt.caller), autoescape=True))
    if flt.called:
        conditions.append(call.dialled.contains(_digits(flt.called), autoescape=True))
    if flt.account:
        conditions.append(call.account_code == flt.account.strip())
    return conditions


def _call_id_match(call: Any, flt: ReportFilter) -> ColumnElement[bool]:
    return call.id.in_(flt.call_ids) if flt.call_ids else false()


def resolve_call_id(session: Session, flt: ReportFilter) -> ReportFilter:
    """Find the calls a call ID names: the appliance's call number (the report's ID column) if there is
    such a call, else every call with that PBX call id. Two lookups rather than one OR, so the common case
    is a primary-key read. (``calls.pbx_call_id`` has no index yet: a PBX call id is found by a scan.)"""
    text = flt.call_id.strip()
    if not text:
        return flt
    ids: list[int] = []
    if text.isdigit() and len(text) < 18:
        ids = list(session.scalars(select(Call.id).where(Call.id == int(text))))
    if not ids:
        ids = list(session.scalars(select(Call.id).where(Call.pbx_call_id == text).limit(1000)))
    return replace(flt, call_ids=tuple(ids))


def _branches(flt: ReportFilter, zone: ZoneInfo, shape: str = "full",
              sort: str = "start") -> list[Select[Any]]:
    both = bool(flt.call_id) or flt.record_type == "both"
    branches = []
    if both or flt.record_type == "charges":
        branches += _calls_branches(flt, zone, shape, sort)
    if both or flt.record_type == "refunds":
        branches.append(_refunds_branch(flt, zone, shape, sort))
    return branches


def _order(columns: Any, sort: str, descending: bool, *, ties: bool = True) -> list[Any]:
    """ORDER BY terms over ``columns`` (a subquery's or a SELECT's, by label); ties broken by record kind
    (a call before a refund made in the same second) and id, so pages never overlap."""
    key: Any = (case((columns["direction"] == "incoming", columns["caller"]), else_=columns["dialled"])
                if sort == "number" else columns[sort])
    order = [key.desc() if descending else key.asc()]
    if ties:
        order.append(columns["record"].asc())
    order.append(columns["id"].desc() if descending else columns["id"].asc())
    return order


def report_statement(flt: ReportFilter, zone: ZoneInfo, sort: str = "start", descending: bool = True, *,
                     first: int | None = None) -> Select[Any]:
    """The filtered rows in the asked order, as the columns of ``ReportRow``.

    With ``first``, only the first ``first`` rows are wanted (a page). Each branch of the UNION then
    first finds the ids of its first ``first`` rows from the sort column alone (an index walk that stops
    early when sorting by start; a sort of narrow rows otherwise, without joining each row's charge unless
    the sort is by state), and only those rows are read whole; the outer query merges the branches.
    """
    if sort not in SORTS:
        sort = "start"
    branches: list[Any] = _branches(flt, zone)
    if first is not None and not flt.call_id:
        keys = _branches(flt, zone, "keys", sort)
        picked = []
        for branch, key in zip(branches, keys, strict=True):
            # No tie on the record kind inside a branch: it is a constant there (PostgreSQL refuses to
            # order by one).
            order = [key.selected_columns.key.desc() if descending else key.selected_columns.key.asc(),
                     key.selected_columns.id.desc() if descending else key.selected_columns.id.asc()]
            ids = select(key.order_by(*order).limit(first).subquery().c.id)
            picked.append(branch.where(branch.selected_columns.id.in_(ids)))
        branches = picked
    report = (branches[0] if len(branches) == 1 else union_all(*branches)).subquery("report")
    # type_coerce keeps Money's conversion to Decimal through the UNION (the refunds' amount is negated).
    columns = [type_coerce(report.c.amount, Money).label("amount") if name == "amount" else report.c[name]
               for name in COLUMNS]
    return select(*columns).order_by(*_order(report.c, sort, descending))


def report_page(session: Session, flt: ReportFilter, zone: ZoneInfo, *, sort: str = "start",
                descending: bool = True, page: int = 1, size: int = DEFAULT_PAGE_SIZE) -> list[ReportRow]:
    offset = (max(page, 1) - 1) * size
    flt = resolve_call_id(session, flt)
    statement = report_statement(flt, zone, sort, descending, first=offset + size)
    return [ReportRow(*row) for row in session.execute(statement.limit(size).offset(offset))]


def report_totals(session: Session, flt: ReportFilter, zone: ZoneInfo) -> Totals:
    """The totals of every filtered row: one aggregate per branch (each on its own index, mostly read
    from the index alone), added up here, instead of one aggregate over their UNION."""
    flt = resolve_call_id(session, flt)
    both = bool(flt.call_id) or flt.record_type == "both"
    calls = duration = refunds = 0
    charged = refunded = Decimal(0)
    if both or flt.record_type == "charges":
        for statement in _calls_branches(flt, zone, "totals"):
            rows, seconds, amount = session.execute(statement).one()
            calls, duration, charged = calls + int(rows), duration + int(seconds), charged + amount
    if both or flt.record_type == "refunds":
        rows, _, amount = session.execute(_refunds_branch(flt, zone, "totals")).one()
        refunds, refunded = int(rows), amount
    return Totals(rows=calls + refunds, calls=calls, refunds=refunds, duration=duration, charged=charged,
                  refunded=refunded)


# Sorts whose column is a number or a time: Python orders them as every database does, so the branches
# can be merged here. Text columns keep the database's order (its collation may not be Python's).
MERGED_SORTS = ("start", "duration", "amount")


def iter_report(session: Session, flt: ReportFilter, zone: ZoneInfo, *, sort: str = "start",
                descending: bool = True, batch: int = EXPORT_BATCH) -> Iterator[ReportRow]:
    """Every filtered row, fetched ``batch`` at a time (a server-side cursor on PostgreSQL), so an
    export of millions of rows never holds more than one batch in memory.

    Sorted by start, duration or amount, each branch is read in order on its own cursor (an index walk:
    its first rows come at once) and the branches are merged here in the report's order (the column, a
    call before a refund, then the id). One ``ORDER BY`` over the UNION would sort every row before
    sending the first (30 s for a million rows on a loaded machine)."""
    flt = resolve_call_id(session, flt)
    if sort not in SORTS:
        sort = "start"
    branches = _branches(flt, zone)
    if flt.call_id or len(branches) == 1 or sort not in MERGED_SORTS:
        statement = report_statement(flt, zone, sort, descending).execution_options(yield_per=batch)
        for row in session.execute(statement):
            yield ReportRow(*row)
        return
    streams = []
    for branch in branches:
        sub = branch.subquery()
        columns = [type_coerce(sub.c.amount, Money).label("amount") if name == "amount" else sub.c[name]
                   for name in COLUMNS]
        statement = (select(*columns).order_by(*_order(sub.c, sort, descending, ties=False))
                     .execution_options(yield_per=batch))
        streams.append(ReportRow(*row) for row in session.execute(statement))

    # Descending: the merge runs reversed, so "call before refund" needs the call ranked higher.
    def order(row: ReportRow) -> tuple[Any, int, int]:
        rank = (row.record == "call") if descending else (row.record != "call")
        return getattr(row, sort), int(rank), row.id

    yield from heapq.merge(*streams, key=order, reverse=descending)
