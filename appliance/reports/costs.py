"""Cost and traffic reports over the calls table, aggregated in SQL.

Every report is one ``GROUP BY`` query (one per daylight-saving piece for hour-of-day), so it stays fast
over millions of calls: only the groups come back to Python. Sums of ``Money`` are exact: the column holds
integer 1/10000ths and ``SUM`` of integers is exact on both databases.

Which calls count as cost: outgoing calls, whatever their disposition. An admin phone's call is excluded
from guest billing but still costs the hotel its rated amount, which is what finance asks about.

Department: the extension's ``description`` from the extensions table when it has one (an installer can
write "Front office", "Kitchen" there), otherwise the call's own ``category`` (guest, lobby, admin, ...)
as stored when the call was rated. The category is taken from the call, not from today's extension table,
so renumbering a phone later does not move old costs to another department.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.orm import Session

from appliance.db.models import Call, Extension
from appliance.reports._sql import local_hour
from appliance.reports.model import Chart, Column, Report
from appliance.reports.period import Period

ZERO = Decimal("0.0000")
UNKNOWN_COUNTRY = "(unknown)"
COST_COLUMNS = (Column(label="Calls", kind="int"), Column(label="Duration (s)", kind="seconds"),
                Column(label="Amount", kind="money"))


def _in_period(period: Period) -> ColumnElement[bool]:
    return and_(Call.start >= period.utc_start, Call.start < period.utc_end)


def _cost_report(session: Session, period: Period, *, key: str, title: str, label: str,
                 group: ColumnElement[Any], joins: Callable[[Any], Any] = lambda q: q,
                 extra_columns: tuple[tuple[Column, ColumnElement[Any]], ...] = ()) -> Report:
    """One ``GROUP BY group`` over outgoing calls in the period: calls, seconds and amount per group,
    largest amount first, with a totals row summed from the groups (equal to a plain SUM over calls)."""
    amount = func.coalesce(func.sum(Call.amount), literal(0, Call.amount.type))
    extras = [expression for _, expression in extra_columns]
    query = joins(select(group.label("key"), *extras, func.count(Call.id), func.coalesce(func.sum(Call.duration), 0),
                         amount))
    query = (query.where(_in_period(period), Call.direction == "outgoing")
             .group_by(group, *extras).order_by(amount.desc(), group))
    rows = tuple((key_value if key_value not in (None, "") else "(none)", *rest[:-3], int(rest[-3]),
                  int(rest[-2]), rest[-1] if rest[-1] is not None else ZERO)
                 for key_value, *rest in session.execute(query))
    totals = ("Total", *("" for _ in extra_columns), sum(r[-3] for r in rows), sum(r[-2] for r in rows),
              sum((r[-1] for r in rows), ZERO))
    columns = (Column(label=label), *(column for column, _ in extra_columns), *COST_COLUMNS)
    return Report(key=key, title=title, period=period, columns=columns, rows=rows, totals=totals,
                  chart=Chart(label_column=0, value_column=len(columns) - 1, title=f"Amount by {label.lower()}"))


def department_expression() -> ColumnElement[str]:
    """The department of a call: the extension's description, else the call's category (module doc)."""
    return func.coalesce(func.nullif(Extension.description, ""), Call.category)


def cost_by_department(session: Session, period: Period) -> Report:
    department = department_expression()
    return _cost_report(session, period, key="cost_by_department", title="Cost by department",
                        label="Department", group=department,
                        joins=lambda q: q.select_from(Call).outerjoin(Extension, Extension.number == Call.extension))


def cost_by_extension(session: Session, period: Period) -> Report:
    return _cost_report(session, period, key="cost_by_extension", title="Cost by extension", label="Extension",
                        group=Call.extension, extra_columns=((Column(label="Category"), Call.category),))


def cost_by_trunk(session: Session, period: Period) -> Report:
    return _cost_report(session, period, key="cost_by_trunk", title="Cost by trunk", label="Trunk",
                        group=Call.trunk)


def cost_by_call_class(session: Session, period: Period) -> Report:
    return _cost_report(session, period, key="cost_by_call_class", title="Cost by call class", label="Class",
                        group=Call.call_class)


def country_expression() -> ColumnElement[str]:
    """``destination`` holds an ISO country code when numbering found one, else the E.164 number."""
    return case((func.length(Call.destination) == 2, Call.destination), else_=literal(UNKNOWN_COUNTRY))


def cost_by_country(session: Session, period: Period) -> Report:
    return _cost_report(session, period, key="cost_by_country", title="Cost by destination country",
                        label="Country", group=country_expression())


def calls_by_hour(session: Session, period: Period) -> Report:
    """Inbound and outbound calls and seconds by local hour of day (0-23), summed over the period."""
    counts: dict[tuple[int, str], list[int]] = {}
    for utc_from, utc_to, offset in period.offset_segments():
        hour = local_hour(Call.start, offset).label("hour")
        query = (select(hour, Call.direction, func.count(Call.id), func.coalesce(func.sum(Call.duration), 0))
                 .where(Call.start >= utc_from, Call.start < utc_to,
                        Call.direction.in_(("incoming", "outgoing")))
                 .group_by(hour, Call.direction))
        for hour_value, direction, calls, seconds in session.execute(query):
            slot = counts.setdefault((int(hour_value), direction), [0, 0])
            slot[0] += int(calls)
            slot[1] += int(seconds)

    def get(hour: int, direction: str) -> list[int]:
        return counts.get((hour, direction), [0, 0])

    rows = tuple((f"{hour:02d}:00", *get(hour, "outgoing"), *get(hour, "incoming")) for hour in range(24))
    totals = ("Total", *(sum(row[i] for row in rows) for i in range(1, 5)))
    return Report(key="calls_by_hour", title="Inbound and outbound calls by hour of day", period=period,
                  columns=(Column(label="Hour"), Column(label="Outbound calls", kind="int"),
                           Column(label="Outbound (s)", kind="seconds"), Column(label="Inbound calls", kind="int"),
                           Column(label="Inbound (s)", kind="seconds")),
                  rows=rows, totals=totals, chart=Chart(label_column=0, value_column=1, title="Calls by hour"))


def call_totals(session: Session, period: Period) -> dict[str, Any]:
    """Plain totals of the period by direction (the check figures under a daily summary)."""
    query = (select(Call.direction, func.count(Call.id), func.coalesce(func.sum(Call.duration), 0),
                    func.coalesce(func.sum(Call.amount), literal(0, Call.amount.type)))
             .where(_in_period(period)).group_by(Call.direction))
    return {direction: {"calls": int(calls), "seconds": int(seconds), "amount": amount if amount is not None else ZERO}
            for direction, calls, seconds, amount in session.execute(query)}
