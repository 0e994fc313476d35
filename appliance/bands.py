"""Time bands: which band (peak, off-peak, weekend, holiday) a moment is in, and a call cut at band edges.

Sources: CDRTool doc/RATING.txt (weekday / weekend / holiday profiles with up to four rate periods a day;
a call spanning periods is split into segments, each priced by its own period), CGRateS Timings (weekdays
and start times) and CGRateS issue #397 (100 % CPU on a call crossing OFFPEAK -> PEAK: here a call is cut
by jumping from edge to edge, never by looping second by second), peers.md S3, S7, S15.

Rules:
- bands are wall-clock times in the site's zone; a moment's day is its weekday (``mon``..``sun``), or
  ``hol`` on one of the tariff's holidays (a holiday replaces its weekday);
- the bands are tried in the order written and the first whose days and window contain the moment wins;
  a moment in no band is in ``standard``;
- a window ``[start, end)`` with ``end <= start`` wraps past midnight on the same listed days.

Band edges are whole minutes of wall-clock time and UTC offsets change on whole minutes, so the band can
change only at whole UTC minutes. From a moment we jump to the next wall-clock edge; when a daylight-saving
change lies before it (the offset differs), we stop at the change instead, found by bisection over whole
minutes, and carry on from the new wall-clock time. Across the spring-forward gap and the repeated autumn
hour this prices real elapsed seconds by the wall clock the guest saw.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo

from appliance.tariffs import STANDARD, Band, expand_days, parse_holiday

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY = 86_400
_MINUTE = timedelta(minutes=1)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Piece:
    """A stretch of a call in one band: ``seconds`` of billed time, or ``pulses`` pulses of ``pulse``."""

    band: str
    start: datetime  # aware, in the site's zone
    seconds: int
    pulses: int = 0
    pulse: int = 0


class Calendar:
    def __init__(self, bands: Sequence[Band], holidays: Sequence[date | str], tz: tzinfo) -> None:
        self.tz = tz
        self._bands = [(band.name, frozenset(expand_days(band.days)), *band.window) for band in bands]
        parsed = [parse_holiday(h) for h in holidays]
        self._dates = {date(y, m, d) for y, m, d in parsed if y}
        self._yearly = {(m, d) for y, m, d in parsed if not y}
        # Seconds after midnight where a band may begin or end; midnight itself changes the day.
        edges = {0}
        for _name, _days, start, end in self._bands:
            edges.update((start * 60 % _DAY, end * 60 % _DAY))
        self._edges = sorted(edges)

    def day_of(self, local: datetime) -> str:
        day = local.date()
        if day in self._dates or (day.month, day.day) in self._yearly:
            return "hol"
        return _WEEKDAYS[day.weekday()]

    def band_at(self, moment: datetime) -> str:
        return self._band_of(moment.astimezone(self.tz))

    def _band_of(self, local: datetime) -> str:
        day = self.day_of(local)
        second = local.hour * 3600 + local.minute * 60 + local.second  # whole seconds: no float anywhere
        for name, days, start, end in self._bands:
            if day not in days:
                continue
            start, end = start * 60, end * 60
            inside = start <= second < end if start < end else (second >= start or second < end)
            if inside:
                return name
        return STANDARD

    def next_change(self, moment: datetime) -> datetime:
        """The first instant after ``moment`` (UTC) at which the band might differ."""
        return self._next_change(moment, moment.astimezone(self.tz))

    def _next_change(self, moment: datetime, local: datetime) -> datetime:
        second_of_day = local.hour * 3600 + local.minute * 60 + local.second
        edges = self._edges
        index = bisect.bisect_right(edges, second_of_day)
        edge = edges[index] if index < len(edges) else _DAY
        candidate = moment + timedelta(seconds=edge - second_of_day)
        offset = local.utcoffset()
        if candidate.astimezone(self.tz).utcoffset() == offset:
            return candidate
        # A daylight-saving change comes first: bisect for the first whole minute on the new offset.
        low = moment.replace(second=0, microsecond=0)
        high = candidate.replace(second=0, microsecond=0) + _MINUTE
        while high - low > _MINUTE:
            middle = low + ((high - low) // _MINUTE // 2) * _MINUTE
            if middle.astimezone(self.tz).utcoffset() == offset:
                low = middle
            else:
                high = middle
        return high

    def split(self, start: datetime, seconds: int) -> list[Piece]:
        """Cut ``seconds`` of time from ``start`` at every band change; neighbours in one band merge."""
        pieces: list[Piece] = []
        moment = start.astimezone(timezone.utc)
        end = moment + timedelta(seconds=seconds)
        while moment < end:
            local = moment.astimezone(self.tz)  # once per piece: band, next edge and the piece's start
            band = self._band_of(local)
            stop = min(self._next_change(moment, local), end)
            length = (stop - moment) // _SECOND
            if pieces and pieces[-1].band == band:
                last = pieces[-1]
                pieces[-1] = Piece(band, last.start, last.seconds + length)
            else:
                pieces.append(Piece(band, local, length))
            moment = stop
        return pieces

    def pulses(self, start: datetime, seconds: int, pulse_of: Callable[[str], int]) -> list[Piece]:
        """Pulses covering ``seconds``: each is charged in the band where it starts, at that band's length."""
        pieces: list[Piece] = []
        moment = start.astimezone(timezone.utc)
        end = moment + timedelta(seconds=seconds)
        while moment < end:
            local = moment.astimezone(self.tz)
            band = self._band_of(local)
            pulse = pulse_of(band)
            stop = min(self._next_change(moment, local), end)
            count = -(-((stop - moment) // _SECOND) // pulse)
            if pieces and pieces[-1].band == band and pieces[-1].pulse == pulse:
                last = pieces[-1]
                pieces[-1] = Piece(band, last.start, last.seconds + count * pulse, last.pulses + count, pulse)
            else:
                pieces.append(Piece(band, local, count * pulse, count, pulse))
            moment += timedelta(seconds=count * pulse)
        return pieces


def single(start: datetime, seconds: int, tz: tzinfo) -> list[Piece]:
    """The one piece of a call under a tariff without bands."""
    return [Piece(STANDARD, start.astimezone(tz), seconds)]
