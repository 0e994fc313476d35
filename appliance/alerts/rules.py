"""Per-call alert rules (domain.md, "Alerts that hotels ask for"), evaluated as each call is stored.

Each rule looks at one stored ``Call`` (and, for burst dialling and the baseline, at that extension's other
calls in the same session) and returns a ``Finding`` or None; ``appliance.alerts.engine`` applies the
cool-down and stores the alert. Rules never read the clock: windows are measured from the call's own start,
so a replayed PBX buffer is judged by when its calls were made. ``describe()`` says each rule in words for
the web admin.

Cost per call (issue 7: a PBX dumping thousands of records after an outage must not stall ingest): no rule
reads more than a few index entries per call, whatever the size of the calls table. Burst dialling counts
its window in ``ix_calls_extension_usage`` (extension, direction, start, disposition, duration, amount;
migration 0007) without touching the call rows; the baseline keeps today's totals per extension in memory
(``DayTotals``: one indexed query the first time an extension's day is seen, then advanced by each stored
call, transactionally) and its history per extension and day in a cache. A transferred call counts once:
its held ``leg`` and ``merged`` rows are not calls of their own (the record that ends the call is).
"""

from __future__ import annotations

import statistics
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import phonenumbers
from sqlalchemy import bindparam, event, func, select
from sqlalchemy.orm import Session, SessionTransaction

from appliance.alerts.config import (
    AfterHoursRule, BaselineRule, BurstRule, BusinessHours, ExpensiveCallRule, FraudPrefixRule, LobbyRule,
    LongCallRule, RuleOptions, RulesConfig,
)
from appliance.db.models import Call
from appliance.tariffs import WEEK, expand_days, parse_holiday

CLASS_WORDS = {"national": "long-distance", "premium": "premium-rate", "international": "international",
               "mobile": "mobile", "local": "local", "special": "special", "unknown": "unknown",
               "free": "free", "emergency": "emergency", "internal": "internal"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """What a rule found: about whom (extension, link), in one sentence, with the facts behind it."""

    subject: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Context:
    """What rules need to know of the site."""

    tz: tzinfo
    currency: str
    country: str = "US"
    business_hours: BusinessHours = field(default_factory=BusinessHours)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def money(self, amount: Decimal) -> str:
        return f"{self.currency} {amount.quantize(Decimal('0.01'))}"

    def day_bounds(self, moment: datetime) -> tuple[datetime, datetime]:
        """The site-local calendar day holding ``moment``, as aware datetimes (23 or 25 h across DST)."""
        day = self.local(moment).date()
        return self.day_start(day), self.day_start(day + timedelta(days=1))

    def day_start(self, day: date) -> datetime:
        return datetime.combine(day, time(), tzinfo=self.tz)


# Rows of the calls table that are not calls of their own: a transfer's held legs (appliance.legs). The
# record that ends the call carries it whole and is the one the pipeline hands to the rules.
NOT_A_CALL = ("leg", "merged")


def counted(call: Call) -> bool:
    """An outgoing call as burst dialling and the baseline count it."""
    return call.direction == "outgoing" and call.disposition not in NOT_A_CALL


class CallRule:
    """A rule about one call; subclasses set ``name`` and implement ``check`` and ``describe``."""

    name = ""

    def __init__(self, options: RuleOptions, context: Context) -> None:
        self.options = options
        self.context = context

    def prepare(self, session: Session, calls: list[Call], now: datetime) -> None:
        """Told of a batch of stored calls before ``check`` sees each of them (the baseline's totals)."""

    def check(self, session: Session, call: Call) -> Finding | None:
        raise NotImplementedError

    def applies(self, call: Call) -> bool:
        """An outgoing call from one of the rule's categories to one of its classes."""
        options: Any = self.options
        return (call.direction == "outgoing" and call.category in options.categories
                and call.call_class in options.classes)

    def describe(self) -> str:
        raise NotImplementedError


def article(word: str) -> str:
    """``"admin phone"`` -> ``"an admin phone"``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def words(items: tuple[str, ...] | list[str], joiner: str = "or") -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {joiner} {items[-1]}"


def call_facts(call: Call, context: Context) -> dict[str, Any]:
    """The facts an alert about a call carries (no guest name: the room is enough to find the stay)."""
    rating = call.rating or {}
    return {"extension": call.extension, "category": call.category, "room": call.room,
            "number": rating.get("number") or call.dialled or call.caller, "e164": rating.get("e164", ""),
            "class": call.call_class, "direction": call.direction, "answered": call.answered,
            "start": context.local(call.start).isoformat(), "duration": call.duration,
            "amount": format(call.amount, "f"), "currency": call.currency}


def number_of(call: Call) -> str:
    rating = call.rating or {}
    return rating.get("e164") or rating.get("number") or call.dialled or call.caller


def duration_words(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min {int(seconds % 60):02d} s" if minutes < 10 else f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class LobbyLongDistance(CallRule):
    name = "lobby_long_distance"
    options: LobbyRule

    def check(self, session: Session, call: Call) -> Finding | None:
        if not self.applies(call):
            return None
        when = self.context.local(call.start).strftime("%a %d %b %H:%M")
        kind = article(CLASS_WORDS[call.call_class])
        return Finding(subject=call.extension,
                       message=f"{call.category} phone {call.extension} dialled {kind} number, "
                               f"{number_of(call)}, at {when}")

    def describe(self) -> str:
        phone = article(f"{words(self.options.categories)} phone")
        number = article(f"{words([CLASS_WORDS[c] for c in self.options.classes])} number")
        return f"{phone.capitalize()} dials {number}."


class AfterHours(CallRule):
    name = "after_hours"
    options: AfterHoursRule

    def __init__(self, options: RuleOptions, context: Context) -> None:
        super().__init__(options, context)
        hours = context.business_hours
        self._days = frozenset(expand_days(hours.days))
        self._start, self._end = hours.window
        self._holidays = [parse_holiday(h) for h in hours.holidays]

    def in_business_hours(self, moment: datetime) -> bool:
        local = self.context.local(moment)
        if any(month == local.month and day == local.day and year in (0, local.year)
               for year, month, day in self._holidays):
            return "hol" in self._days and self._start <= local.hour * 60 + local.minute < self._end
        minute = local.hour * 60 + local.minute
        return WEEK[local.weekday()] in self._days and self._start <= minute < self._end

    def check(self, session: Session, call: Call) -> Finding | None:
        if not self.applies(call) or self.in_business_hours(call.start):
            return None
        when = self.context.local(call.start).strftime("%a %d %b %H:%M")
        kind = article(CLASS_WORDS[call.call_class])
        return Finding(subject=call.extension,
                       message=f"{call.category} phone {call.extension} made {kind} call to "
                               f"{number_of(call)} at {when}, outside business hours")

    def describe(self) -> str:
        hours = self.context.business_hours
        start, end = hours.window
        holidays = " and on holidays" if hours.holidays else ""
        phone = article(f"{words(self.options.categories)} phone").capitalize()
        return (f"{phone} makes an outside call outside business hours "
                f"({', '.join(hours.days)} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d} "
                f"site time{holidays}).")


class LongCall(CallRule):
    name = "long_call"
    options: LongCallRule

    def check(self, session: Session, call: Call) -> Finding | None:
        if call.direction not in self.options.directions or call.duration <= self.options.minutes * 60:
            return None
        return Finding(subject=call.extension,
                       message=f"{call.direction} call on {call.extension} with {number_of(call)} lasted "
                               f"{duration_words(call.duration)} (over {self.options.minutes} min)")

    def describe(self) -> str:
        call = article(f"{words(self.options.directions)} call").capitalize()
        return f"{call} lasts longer than {self.options.minutes} minutes."


class ExpensiveCall(CallRule):
    name = "expensive_call"
    options: ExpensiveCallRule

    def check(self, session: Session, call: Call) -> Finding | None:
        if call.amount <= self.options.amount:
            return None
        return Finding(subject=call.extension,
                       message=f"call from {call.extension} to {number_of(call)} cost "
                               f"{self.context.money(call.amount)} "
                               f"(over {self.context.money(self.options.amount)})")

    def describe(self) -> str:
        return f"A single call costs more than {self.context.money(self.options.amount)}."


CALLS = Call.__table__
# One range of ix_calls_extension_usage, read from the index alone. Built once, with bound parameters:
# composing the statement for each call cost more than running it (profiled with 5,000 calls).
BURST_COUNT = select(func.count()).select_from(CALLS).where(
    CALLS.c.extension == bindparam("extension"), CALLS.c.direction == "outgoing",
    CALLS.c.start > bindparam("since"), CALLS.c.start <= bindparam("until"),
    # Not ``not_in``: its expanding parameter makes SQLAlchemy render the statement again at each call.
    *[CALLS.c.disposition != value for value in NOT_A_CALL])


class Burst(CallRule):
    name = "burst"
    options: BurstRule

    def check(self, session: Session, call: Call) -> Finding | None:
        if call.direction != "outgoing":
            return None
        since = call.start - timedelta(minutes=self.options.minutes)
        count = session.scalar(BURST_COUNT, {"extension": call.extension, "since": since,
                                             "until": call.start}) or 0
        if count < self.options.calls:
            return None
        return Finding(subject=call.extension,
                       message=f"extension {call.extension} made {count} outgoing calls within "
                               f"{self.options.minutes} minutes, the last to {number_of(call)}",
                       details={"calls_in_window": count})

    def describe(self) -> str:
        return (f"One extension makes {self.options.calls} or more outgoing calls within "
                f"{self.options.minutes} minutes (burst dialling).")


class FraudPrefix(CallRule):
    name = "fraud_prefix"
    options: FraudPrefixRule

    def __init__(self, options: RuleOptions, context: Context) -> None:
        super().__init__(options, context)
        meta = phonenumbers.PhoneMetadata.metadata_for_region(context.country.upper())
        prefix = (meta.preferred_international_prefix or meta.international_prefix or "") if meta else ""
        # Only a plain digit prefix can be stripped; patterns (Australia's) rely on the classifier's e164.
        self._intl = prefix.replace("~", "") if prefix.replace("~", "").isdigit() else ""

    def check(self, session: Session, call: Call) -> Finding | None:
        if call.direction != "outgoing":
            return None
        rating = call.rating or {}
        national = rating.get("number") or call.dialled
        e164 = rating.get("e164") or ""
        if not e164 and self._intl and national.startswith(self._intl):
            e164 = "+" + national[len(self._intl):]
        for prefix in self.options.prefixes:
            if (e164 and prefix.startswith("+") and e164.startswith(prefix)) or \
                    (not prefix.startswith("+") and national.startswith(prefix)):
                return Finding(subject=call.extension,
                               message=f"extension {call.extension} dialled {e164 or national}, which starts "
                                       f"with the blocked prefix {prefix}",
                               details={"prefix": prefix})
        return None

    def describe(self) -> str:
        prefixes = ", ".join(self.options.prefixes)
        return f"A dialled number starts with a blocked toll-fraud prefix ({prefixes})."


@dataclass(frozen=True, slots=True)
class Usage:
    calls: int
    seconds: int
    cost: Decimal


@dataclass(frozen=True, slots=True)
class Baseline:
    days: int
    mean: dict[str, Any]
    spread: dict[str, Any]


class ExtensionBaseline(CallRule):
    """Today so far against the extension's own history; the history is cached per extension and day."""

    name = "baseline"
    options: BaselineRule
    CACHE = 4096

    def __init__(self, options: RuleOptions, context: Context) -> None:
        super().__init__(options, context)
        self._cache: OrderedDict[tuple[str, date], Baseline | None] = OrderedDict()
        self.today = DayTotals(context)

    def prepare(self, session: Session, calls: list[Call], now: datetime) -> None:
        self.today.add(session, calls, now)

    def check(self, session: Session, call: Call) -> Finding | None:
        if not counted(call):
            return None
        day = self.context.local(call.start).date()
        baseline = self.baseline(session, call.extension, day)
        if baseline is None:
            return None
        today = self.today.usage(session, call.extension, day)
        o = self.options
        k = Decimal(str(o.deviations))
        values = {"calls": Decimal(today.calls), "minutes": Decimal(today.seconds) / 60, "cost": today.cost}
        floors = {"calls": Decimal(o.min_calls), "minutes": Decimal(o.min_minutes), "cost": o.min_cost}
        over = [m for m in o.metrics
                if values[m] >= floors[m] and values[m] > baseline.mean[m] + k * baseline.spread[m]]
        if not over:
            return None
        shown = {"calls": lambda v: f"{int(v)} calls", "minutes": lambda v: f"{v:.0f} minutes",
                 "cost": lambda v: self.context.money(Decimal(v))}
        parts = [f"{shown[m](values[m])} (usually {_num(baseline.mean[m])} ± {_num(baseline.spread[m])})"
                 for m in over]
        return Finding(subject=call.extension,
                       message=f"extension {call.extension} today so far: {words(parts, 'and')} a day "
                               f"over the last {baseline.days} days",
                       details={"metrics": over, "today": {m: str(values[m]) for m in over},
                                "mean": {m: str(baseline.mean[m]) for m in over},
                                "spread": {m: str(baseline.spread[m]) for m in over}, "days": baseline.days})

    def baseline(self, session: Session, extension: str, today: date) -> Baseline | None:
        key = (extension, today)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        result = self._learn(session, extension, today)
        self._cache[key] = result
        if len(self._cache) > self.CACHE:
            self._cache.popitem(last=False)
        return result

    def _learn(self, session: Session, extension: str, today: date) -> Baseline | None:
        first_day = today - timedelta(days=self.options.window_days)
        rows = session.execute(select(Call.start, Call.duration, Call.amount).where(
            Call.extension == extension, Call.direction == "outgoing",
            Call.start >= self.context.day_start(first_day),
            Call.start < self.context.day_start(today), Call.disposition.not_in(NOT_A_CALL))).all()
        if not rows:
            return None
        per_day: dict[date, list[Any]] = {}
        for start, duration, amount in rows:
            totals = per_day.setdefault(self.context.local(start).date(), [0, 0, Decimal(0)])
            totals[0] += 1
            totals[1] += duration
            totals[2] += amount
        # Every day since the first call in the window counts, quiet days as zero: that is the usual.
        first = max(first_day, min(per_day))
        days = [first + timedelta(days=i) for i in range((today - first).days)]
        if len(days) < self.options.min_history_days:
            return None
        quiet = [0, 0, Decimal(0)]
        series = {
            "calls": [Decimal(per_day.get(d, quiet)[0]) for d in days],
            "minutes": [Decimal(per_day.get(d, quiet)[1]) / 60 for d in days],
            "cost": [Decimal(per_day.get(d, quiet)[2]) for d in days],
        }
        return Baseline(days=len(days), mean={m: statistics.mean(v) for m, v in series.items()},
                        spread={m: statistics.pstdev(v) for m, v in series.items()})

    def describe(self) -> str:
        o = self.options
        return (f"An extension's {words(o.metrics, 'or')} today exceed its own daily usual over the last "
                f"{o.window_days} days by more than {o.deviations:g} standard deviations (at least "
                f"{o.min_calls} calls, {o.min_minutes} minutes or {self.context.money(o.min_cost)}; "
                f"{o.min_history_days} days of history needed).")


def usage(session: Session, extension: str, start: datetime, end: datetime) -> Usage:
    """The extension's counted calls in [start, end) as the session sees them, from the index alone."""
    calls, seconds, cost = session.execute(
        select(func.count(), func.sum(Call.duration), func.sum(Call.amount)).where(
            Call.extension == extension, Call.direction == "outgoing", Call.start >= start, Call.start < end,
            Call.disposition.not_in(NOT_A_CALL))
    ).one()
    return Usage(calls=calls or 0, seconds=int(seconds or 0), cost=Decimal(cost or 0))


@dataclass(slots=True)
class _Totals:
    calls: int = 0
    seconds: int = 0
    cost: Decimal = Decimal(0)
    read_at: datetime | None = None  # the engine's ``now`` when read from the database

    def add(self, calls: int, seconds: int, cost: Decimal) -> None:
        self.calls += calls
        self.seconds += seconds
        self.cost += cost


@dataclass(slots=True)
class _Pending:
    """One session's calls not yet committed, by (extension, day); ``dirty`` after a savepoint rollback."""

    totals: dict[tuple[str, date], _Totals] = field(default_factory=dict)
    dirty: bool = False


class DayTotals:
    """Each extension's counted calls, seconds and cost per site-local day, kept in memory.

    ``usage()`` must equal what ``usage()`` the query would return in the same session: every counted call
    of the day the session can see. The engine holds the *committed* totals of up to ``SIZE`` (extension,
    day) pairs, least recently used first out; each session keeps its own uncommitted calls apart
    (``add``) until a SQLAlchemy ``after_commit`` adds them to the committed totals. A rolled-back or
    abandoned transaction (``after_transaction_end`` without a commit) drops them, so a call that never
    committed never stays counted. A pair seen for the first time (or again after eviction) is read with
    one indexed query; that query sees the session's own uncommitted calls too, so they are taken off
    before the result is kept as committed. After a savepoint rolls back, which of the session's calls
    survived is not known here: its pairs are forgotten at commit and read again when next needed.

    What it does not see: calls changed by another process after a pair was read (``appliance rerate``
    or a re-post changing today's amounts). So a pair is read again once it is ``REFRESH`` old (by the
    pipeline's ``now``): one query per busy extension an hour. The count and the minutes never change
    after a call is stored; only the cost metric can lag, by what was re-rated, for at most that long.
    """

    SIZE = 8192
    REFRESH = timedelta(hours=1)

    def __init__(self, context: Context) -> None:
        self.context = context
        self._committed: OrderedDict[tuple[str, date], _Totals] = OrderedDict()
        self._key = f"alert_day_totals_{id(self)}"
        self._now: datetime | None = None

    def add(self, session: Session, calls: list[Call], now: datetime | None = None) -> None:
        """Count stored calls of the session's transaction (before any ``usage`` about them)."""
        self._now = now or self._now
        pending = None
        for call in calls:
            if not counted(call):
                continue
            if pending is None:
                pending = self._pending(session)
            key = (call.extension, self.context.local(call.start).date())
            pending.totals.setdefault(key, _Totals()).add(1, call.duration, call.amount)

    def usage(self, session: Session, extension: str, day: date) -> Usage:
        key = (extension, day)
        info = session.info.get(self._key)
        mine = info.totals.get(key) if info is not None else None
        committed = self._committed.get(key)
        if committed is None or self._stale(committed):
            seen = usage(session, extension, self.context.day_start(day),
                         self.context.day_start(day + timedelta(days=1)))
            committed = _Totals(seen.calls, seen.seconds, seen.cost, self._now)
            if mine is not None:
                committed.add(-mine.calls, -mine.seconds, -mine.cost)
            self._committed[key] = committed
            self._committed.move_to_end(key)
            if len(self._committed) > self.SIZE:
                self._committed.popitem(last=False)
        else:
            self._committed.move_to_end(key)
        if mine is None:
            return Usage(calls=committed.calls, seconds=committed.seconds, cost=committed.cost)
        return Usage(calls=committed.calls + mine.calls, seconds=committed.seconds + mine.seconds,
                     cost=committed.cost + mine.cost)

    def __len__(self) -> int:
        return len(self._committed)

    def _stale(self, totals: _Totals) -> bool:
        # A clock set back (a replay judged with an older ``now``) never makes a pair stale.
        return (self._now is not None and totals.read_at is not None
                and self._now - totals.read_at >= self.REFRESH)

    def _pending(self, session: Session) -> _Pending:
        pending = session.info.get(self._key)
        if pending is None:
            # Calls are counted in a transaction (they were inserted in it); make sure one has begun, so
            # that its commit or rollback is what settles them.
            session.connection()
            pending = session.info[self._key] = _Pending()
            if not session.info.get(self._key + "_hooked"):
                # Instance-level listeners: they live and die with this session, not with every session.
                session.info[self._key + "_hooked"] = True
                event.listen(session, "after_commit", self._after_commit)
                event.listen(session, "after_soft_rollback", self._after_soft_rollback)
                event.listen(session, "after_transaction_end", self._after_transaction_end)
        return pending

    def _after_commit(self, session: Session) -> None:
        pending = session.info.pop(self._key, None)
        if pending is None:
            return
        for key, totals in pending.totals.items():
            if pending.dirty:
                self._committed.pop(key, None)
                continue
            # A pair evicted meanwhile is read again from the database when next needed.
            committed = self._committed.get(key)
            if committed is not None:
                committed.add(totals.calls, totals.seconds, totals.cost)

    def _after_soft_rollback(self, session: Session, previous: SessionTransaction) -> None:
        pending = session.info.get(self._key)
        if pending is not None and previous.nested:
            pending.dirty = True

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        # The outermost transaction ended without a commit (rollback, close): its calls never existed.
        if transaction.parent is None and not transaction.nested:
            session.info.pop(self._key, None)


def _num(value: Any) -> str:
    return f"{float(value):.1f}"


CALL_RULES: dict[str, type[CallRule]] = {
    "lobby_long_distance": LobbyLongDistance, "after_hours": AfterHours, "long_call": LongCall,
    "expensive_call": ExpensiveCall, "burst": Burst, "fraud_prefix": FraudPrefix,
    "baseline": ExtensionBaseline,
}


def call_rules(rules: RulesConfig, context: Context) -> list[CallRule]:
    """The enabled per-call rules, in the order the configuration lists them."""
    return [CALL_RULES[name](options, context) for name, options in rules.items()
            if name in CALL_RULES and options.enabled]
