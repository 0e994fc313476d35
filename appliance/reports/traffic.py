"""Trunk utilisation: simultaneous calls over time, busy hour, peak occupancy and Erlang B.

Occupancy comes from a sweep line over call start and end events (``end = start + duration``). A call that
ends at ``t`` frees its trunk before a call starting at ``t`` takes one, so back-to-back calls on one trunk
count as one, as on the real trunk. The database sends calls ordered by start (``ix_calls_start``); the
sweep keeps a heap of end times, so memory is the number of calls up at once, not the number of calls.

Traffic (Erlangs) in a clock hour = seconds of calls inside that hour / 3600; a call across a boundary is
split between the hours it covers. The busy hour is the clock hour with the most traffic. The Erlang B
estimate takes the busy hour's carried traffic as the offered traffic, which is right while blocking is
small and under-estimates it when the trunks are saturated (blocked calls leave no record).

Which calls: incoming and outgoing (internal calls use no trunk), ``duration`` > 0 (talk time; ring time
is not in it). Calls that started up to ``LOOKBACK`` before the period and were still up count from the
period's start.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.db.models import Call
from appliance.reports._sql import epoch
from appliance.reports.model import Chart, Column, Report
from appliance.reports.period import Period

LOOKBACK = timedelta(hours=24)
HOUR = 3600
BATCH = 10_000


# -- pure figures --------------------------------------------------------------------------------------

def erlang_b(traffic: float, trunks: int) -> float:
    """Blocking probability for ``traffic`` Erlangs offered to ``trunks`` circuits (Erlang B).

    The recursion ``B(0) = 1; B(n) = A·B(n-1) / (n + A·B(n-1))`` avoids the factorials and powers of the
    closed form (``A^N/N! / Σ A^k/k!``), which overflow a float from about 170 trunks; every step stays
    in [0, 1].
    """
    if traffic < 0 or trunks < 0:
        raise ValueError("traffic and trunk count must not be negative")
    blocking = 1.0
    for n in range(1, trunks + 1):
        blocking = traffic * blocking / (n + traffic * blocking)
    return blocking


def trunks_needed(traffic: float, blocking: float, limit: int = 10_000) -> int:
    """The fewest trunks that carry ``traffic`` Erlangs with at most ``blocking`` probability."""
    if not 0 < blocking <= 1:
        raise ValueError("blocking must be in (0, 1]")
    value = 1.0
    for n in range(limit + 1):
        if n:
            value = traffic * value / (n + traffic * value)
        if value <= blocking:
            return n
    raise ValueError(f"more than {limit} trunks needed")


def concurrency_steps(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, int]]:
    """``[(time, calls up from that time), ...]`` for ``(start, end)`` intervals; one entry per change.

    Events sort by time, ends (-1) before starts (+1) at the same time (see the module docstring).
    """
    events = sorted(event for start, end in intervals if end > start
                    for event in ((start, 1), (end, -1)))
    steps: list[tuple[float, int]] = []
    level = 0
    for moment, delta in events:
        level += delta
        if steps and steps[-1][0] == moment:
            steps[-1] = (moment, level)
        else:
            steps.append((moment, level))
    return steps


def peak_occupancy(intervals: Iterable[tuple[float, float]]) -> tuple[int, float | None]:
    """The most simultaneous calls and the first time it happened."""
    best, when = 0, None
    for moment, level in concurrency_steps(intervals):
        if level > best:
            best, when = level, moment
    return best, when


# -- the streaming sweep --------------------------------------------------------------------------------

@dataclass
class HourBucket:
    calls: int = 0          # calls that started in the hour
    seconds: int = 0        # call seconds inside the hour (Erlang-hours x 3600)
    peak: int = 0           # most calls up at once during the hour


@dataclass
class Sweep:
    """Feed ``(start, end)`` epoch seconds in start order; read peak and hour buckets. Times are clipped
    to ``[lower, upper)``; hour buckets start at ``phase`` seconds past each UTC hour (the zone's
    sub-hour offset, 0 almost everywhere)."""

    lower: int
    upper: int
    phase: int = 0
    peak: int = 0
    peak_at: int | None = None
    hours: dict[int, HourBucket] = field(default_factory=dict)
    _ends: list[int] = field(default_factory=list)
    _now: int | None = None

    def _bucket(self, moment: int) -> int:
        return (moment - self.phase) // HOUR * HOUR + self.phase

    def _hour(self, start: int) -> HourBucket:
        bucket = self.hours.get(start)
        if bucket is None:
            bucket = self.hours[start] = HourBucket()
        return bucket

    def _advance(self, moment: int) -> None:
        """Let time run to ``moment``: frees ended calls; each hour boundary passed records the calls
        still up at its start as a candidate for that hour's peak."""
        if self._now is not None:
            boundary = self._bucket(self._now) + HOUR
            while boundary <= moment and self._ends:
                while self._ends and self._ends[0] <= boundary:
                    heapq.heappop(self._ends)
                if self._ends:
                    bucket = self._hour(boundary)
                    bucket.peak = max(bucket.peak, len(self._ends))
                boundary += HOUR
        while self._ends and self._ends[0] <= moment:
            heapq.heappop(self._ends)
        self._now = moment

    def add(self, start: int, end: int, *, counted: bool = True) -> None:
        start, end = max(start, self.lower), min(end, self.upper)
        if end <= start:
            return
        self._advance(start)
        heapq.heappush(self._ends, end)
        level = len(self._ends)
        if level > self.peak:
            self.peak, self.peak_at = level, start
        first = self._hour(self._bucket(start))
        first.peak = max(first.peak, level)
        if counted:
            first.calls += 1
        cursor = start
        while cursor < end:  # split the call's seconds between the hours it covers
            edge = min(end, self._bucket(cursor) + HOUR)
            self._hour(self._bucket(cursor)).seconds += edge - cursor
            cursor = edge

    def finish(self) -> None:
        self._advance(self.upper)

    def busy_hour(self) -> tuple[int, HourBucket] | None:
        if not self.hours:
            return None
        return max(self.hours.items(), key=lambda item: (item[1].seconds, -item[0]))


def _call_intervals(session: Session, period: Period, trunks: Collection[str] | None) -> Iterator[tuple[int, int, bool]]:
    """``(start, end, started_in_period)`` in epoch seconds, ordered by start, streamed in batches."""
    start_s = epoch(Call.start)
    query = (select(start_s, Call.duration, Call.start >= period.utc_start)
             .where(Call.start >= period.utc_start - LOOKBACK, Call.start < period.utc_end,
                    Call.direction.in_(("incoming", "outgoing")), Call.duration > 0)
             .order_by(Call.start))
    if trunks is not None:
        query = query.where(Call.trunk.in_(list(trunks)))
    result = session.execute(query.execution_options(yield_per=BATCH))
    for start, duration, inside in result:
        yield int(start), int(start) + int(duration), bool(inside)


@dataclass(frozen=True, kw_only=True)
class Utilisation:
    """The figures of ``trunk_utilisation`` for code that wants numbers rather than a table."""

    peak: int
    peak_at: datetime | None
    busy_hour: datetime | None
    busy_hour_erlangs: Decimal
    blocking: float
    trunk_count: int
    hours: dict[datetime, HourBucket]
    series: list[tuple[datetime, int]] = field(default_factory=list)  # Buckets, when asked for


def measure(session: Session, period: Period, *, trunk_count: int,
            trunks: Collection[str] | None = None, series_points: int = 0) -> Utilisation:
    """Sweep the calls of ``period`` (all trunks, or the trunk names in ``trunks``: one trunk group).
    ``series_points`` > 0 also collects the chart series (``Buckets``) in the same pass over the calls."""
    lower, upper = int(period.utc_start.timestamp()), int(period.utc_end.timestamp())
    offset = period.start.utcoffset()
    sweep = Sweep(lower=lower, upper=upper, phase=int(offset.total_seconds()) % HOUR if offset else 0)
    buckets = Buckets(lower, upper, series_points) if series_points > 0 else None
    for start, end, inside in _call_intervals(session, period, trunks):
        sweep.add(start, end, counted=inside)
        if buckets is not None:
            buckets.add(start, end)
    sweep.finish()
    if buckets is not None:
        buckets.finish()
    busy = sweep.busy_hour()
    busy_erlangs = _erlangs(busy[1].seconds if busy else 0)

    def utc(moment: int | None) -> datetime | None:
        return None if moment is None else datetime.fromtimestamp(moment, tz=timezone.utc)

    return Utilisation(peak=sweep.peak, peak_at=utc(sweep.peak_at), busy_hour=utc(busy[0]) if busy else None,
                       busy_hour_erlangs=busy_erlangs, blocking=erlang_b(float(busy_erlangs), trunk_count),
                       trunk_count=trunk_count,
                       hours={utc(k): v for k, v in sorted(sweep.hours.items())},  # type: ignore[misc]
                       series=buckets.series(period.tz) if buckets is not None else [])


def _erlangs(seconds: int) -> Decimal:
    """Erlang-hours (= Erlangs over one hour) of ``seconds`` of calls, to four places."""
    return (Decimal(seconds) / HOUR).quantize(Decimal("0.0001"))


def trunk_utilisation(session: Session, period: Period, *, trunk_count: int,
                      trunks: Collection[str] | None = None, group_name: str = "all trunks",
                      by: str = "auto", series_points: int = 0) -> Report:
    """Occupancy per hour (``by="hour"``) or per day (``"day"``; ``"auto"``: hours up to 7 days), with
    the busy hour, the peak and the Erlang B estimate for ``trunk_count`` in the notes.
    ``series_points``: also the chart series, in ``extra["utilisation"].series``."""
    figures = measure(session, period, trunk_count=trunk_count, trunks=trunks, series_points=series_points)
    hourly = by == "hour" or (by == "auto" and period.seconds <= 7 * 86400)
    rows: dict[str, list[int]] = {}  # label -> [calls, seconds, peak, busiest hour's seconds]
    for moment, bucket in figures.hours.items():
        local = moment.astimezone(period.tz)
        label = local.strftime("%Y-%m-%d %H:00") if hourly else local.strftime("%Y-%m-%d")
        row = rows.setdefault(label, [0, 0, 0, 0])
        row[0] += bucket.calls
        row[1] += bucket.seconds
        row[2] = max(row[2], bucket.peak)
        row[3] = max(row[3], bucket.seconds)
    table = tuple((label, calls, _erlangs(seconds), peak, _erlangs(busiest))
                  for label, (calls, seconds, peak, busiest) in rows.items())
    # The total traffic is computed from the total seconds, not by adding rounded rows.
    totals = ("Total", sum(r[0] for r in rows.values()), _erlangs(sum(r[1] for r in rows.values())),
              figures.peak, figures.busy_hour_erlangs)
    notes = [f"Trunks: {group_name}, {trunk_count} available"]
    if figures.busy_hour is not None:
        notes.append(f"Busy hour: {figures.busy_hour.astimezone(period.tz):%Y-%m-%d %H:%M}, "
                     f"{figures.busy_hour_erlangs} Erlang")
    if figures.peak_at is not None:
        notes.append(f"Peak occupancy: {figures.peak} simultaneous calls at "
                     f"{figures.peak_at.astimezone(period.tz):%Y-%m-%d %H:%M:%S}")
    notes.append(f"Erlang B blocking at the busy hour with {trunk_count} trunks: {figures.blocking:.4f} "
                 f"({figures.blocking * 100:.2f} %)")
    if figures.busy_hour_erlangs:
        notes.append(f"Trunks for 1 % blocking: {trunks_needed(float(figures.busy_hour_erlangs), 0.01)}")
    return Report(key="trunk_utilisation", title=f"Trunk utilisation ({group_name})", period=period,
                  columns=(Column(label="Hour" if hourly else "Day"), Column(label="Calls", kind="int"),
                           Column(label="Traffic (Erlang-hours)", kind="float"),
                           Column(label="Peak simultaneous", kind="int"),
                           Column(label="Busiest hour (Erlang)", kind="float")),
                  rows=table, totals=totals, notes=tuple(notes),
                  chart=Chart(label_column=0, value_column=3, title="Peak simultaneous calls"),
                  extra={"utilisation": figures})



class Buckets:
    """Calls up at once, as the peak of each bucket of whole minutes: at most ``points`` buckets over
    ``[lower, upper)`` (5 minutes for a day). Feed ``(start, end)`` in start order, then ``finish()``.
    A bucket shows its peak, so a short burst is never averaged away."""

    def __init__(self, lower: int, upper: int, points: int) -> None:
        width = max(60, -(-(upper - lower) // max(points, 1)))
        self.lower, self.upper, self.width = lower, upper, -(-width // 60) * 60
        self.peaks = [0] * -(-(upper - lower) // self.width)
        self._ends: list[int] = []
        self._boundary = lower + self.width

    def _advance(self, moment: int) -> None:
        """Run time to ``moment``: each bucket start passed records the calls still up then."""
        ends = self._ends
        while self._boundary <= moment:
            while ends and ends[0] <= self._boundary:
                heapq.heappop(ends)
            index = (self._boundary - self.lower) // self.width
            if index < len(self.peaks):
                self.peaks[index] = max(self.peaks[index], len(ends))
            self._boundary += self.width
        while ends and ends[0] <= moment:
            heapq.heappop(ends)

    def add(self, start: int, end: int) -> None:
        start, end = max(start, self.lower), min(end, self.upper)
        if end <= start:
            return
        self._advance(start)
        heapq.heappush(self._ends, end)
        index = (start - self.lower) // self.width
        self.peaks[index] = max(self.peaks[index], len(self._ends))

    def finish(self) -> None:
        self._advance(self.upper)

    def series(self, tz: ZoneInfo) -> list[tuple[datetime, int]]:
        return [(datetime.fromtimestamp(self.lower + n * self.width, tz=timezone.utc).astimezone(tz), peak)
                for n, peak in enumerate(self.peaks)]


def occupancy_series(session: Session, period: Period, *, points: int = 288,
                     trunks: Collection[str] | None = None) -> list[tuple[datetime, int]]:
    """Calls up at once over the period, for a chart: ``[(bucket start, most calls up in the bucket)]``
    (see ``Buckets``). Same calls as ``measure``, which can collect the same series in its own sweep
    (``series_points``); bucket starts are aware datetimes in the period's zone."""
    buckets = Buckets(int(period.utc_start.timestamp()), int(period.utc_end.timestamp()), points)
    for start, end, _ in _call_intervals(session, period, trunks):
        buckets.add(start, end)
    buckets.finish()
    return buckets.series(period.tz)
