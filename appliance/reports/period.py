"""Report periods: whole days in the site's zone, turned into UTC bounds for the database.

A report is asked for "March 2024 in Europe/Berlin"; the calls table stores UTC. ``Period`` keeps both the
local and the UTC view so every query filters on ``start >= utc_start AND start < utc_end`` (half open: a
call at midnight belongs to the day that starts then) and every hour-of-day figure is a local hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


@dataclass(frozen=True, kw_only=True)
class Period:
    """``[start, end)`` as aware local datetimes in ``tz``; ``label`` names it in titles and file names."""

    start: datetime
    end: datetime
    tz: ZoneInfo
    label: str

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a period needs aware datetimes")
        if self.end <= self.start:
            raise ValueError(f"period {self.label!r} ends before it starts")

    @property
    def utc_start(self) -> datetime:
        return self.start.astimezone(timezone.utc)

    @property
    def utc_end(self) -> datetime:
        return self.end.astimezone(timezone.utc)

    @property
    def seconds(self) -> int:
        return int((self.utc_end - self.utc_start).total_seconds())

    # -- constructors -------------------------------------------------------------------------------

    @classmethod
    def between(cls, first: date, last: date, tz: ZoneInfo, label: str = "") -> Period:
        """The local days ``first`` to ``last``, both included."""
        return cls(start=_midnight(first, tz), end=_midnight(last + timedelta(days=1), tz), tz=tz,
                   label=label or (f"{first.isoformat()}" if first == last
                                   else f"{first.isoformat()} to {last.isoformat()}"))

    @classmethod
    def day(cls, day: date, tz: ZoneInfo) -> Period:
        return cls.between(day, day, tz)

    @classmethod
    def week(cls, any_day: date, tz: ZoneInfo) -> Period:
        """The ISO week (Monday to Sunday) that holds ``any_day``."""
        monday = any_day - timedelta(days=any_day.weekday())
        year, week, _ = monday.isocalendar()
        return cls.between(monday, monday + timedelta(days=6), tz, label=f"{year}-W{week:02d}")

    @classmethod
    def month(cls, year: int, month: int, tz: ZoneInfo) -> Period:
        first = date(year, month, 1)
        following = date(year + month // 12, month % 12 + 1, 1)
        return cls.between(first, following - timedelta(days=1), tz, label=f"{year}-{month:02d}")

    # -- hour-of-day support ------------------------------------------------------------------------

    def offset_segments(self) -> list[tuple[datetime, datetime, int]]:
        """``(utc_from, utc_to, offset_seconds)`` pieces of the period with one UTC offset each.

        Hour-of-day grouping runs in SQL as ``(epoch + offset) / 3600 % 24``, which needs a constant
        offset, so a period that crosses a daylight-saving change is queried once per piece. Offsets are
        probed hourly: every zone in use changes its offset on an hour boundary in UTC.
        """
        segments: list[tuple[datetime, datetime, int]] = []
        cursor = self.utc_start
        current = _offset(cursor, self.tz)
        piece_start = cursor
        step = timedelta(hours=1)
        probe = cursor.replace(minute=0, second=0, microsecond=0) + step
        while probe < self.utc_end:
            offset = _offset(probe, self.tz)
            if offset != current:
                segments.append((piece_start, probe, current))
                piece_start, current = probe, offset
            probe += step
        segments.append((piece_start, self.utc_end, current))
        return segments


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


def _offset(moment: datetime, tz: ZoneInfo) -> int:
    delta = moment.astimezone(tz).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0
