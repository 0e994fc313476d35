"""Charts: the occupancy series over the hand-built day (worked out by hand from the table in conftest),
and the SVG drawings: tick values, one bar per value with its tooltip, escaped text, the limit line."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta, timezone
from decimal import Decimal

import pytest

from appliance.reports.period import Period
from appliance.reports.svg import bar_chart, hbar_chart, nice_ticks, step_chart
from appliance.reports.traffic import measure, occupancy_series
from tests.reports.conftest import DAY, TZ, local

SVG = "{http://www.w3.org/2000/svg}"


def test_occupancy_in_five_minute_buckets(seeded) -> None:
    series = occupancy_series(seeded, Period.day(DAY, TZ))
    assert len(series) == 288 and series[0][0] == local("2024-03-05 00:00:00")
    busy = {moment.strftime("%H:%M"): peak for moment, peak in series if peak}
    expected = {
        "00:00": 2,                      # a, and the call from 23:59:59 the day before (clipped to 00:00)
        "09:00": 2, "09:05": 1,          # b 09:00-09:02 with c 09:01-09:06
        "14:30": 1, "14:35": 1, "14:40": 1, "14:45": 2, "14:50": 3, "14:55": 2,  # e, f from 14:45, g from 14:50
        "15:00": 1,                      # e ended at 15:00; g runs to 15:05
        **{f"15:{m:02d}": 1 for m in range(10, 60, 5)},   # h 15:10-16:00
        "20:00": 1,                      # i; d (10:00) is internal and uses no trunk
    }
    assert busy == expected


def test_the_utilisation_sweep_collects_the_same_series(seeded) -> None:
    period = Period.day(DAY, TZ)
    figures = measure(seeded, period, trunk_count=2, series_points=288)
    assert figures.series == occupancy_series(seeded, period) and figures.peak == 3
    assert measure(seeded, period, trunk_count=2).series == []   # not asked for: no second bookkeeping


def test_occupancy_buckets_widen_for_a_month(seeded) -> None:
    series = occupancy_series(seeded, Period.month(2024, 3, TZ), points=100)
    utc = [moment.astimezone(timezone.utc) for moment, _ in series]  # same-zone subtraction is wall time
    widths = {b - a for a, b in zip(utc, utc[1:])}
    # 31 days minus the hour lost to summer time = 743 h, in buckets of a whole number of minutes.
    assert widths == {timedelta(minutes=446)} and len(series) == 100
    assert max(peak for _, peak in series) == 3


def test_nice_ticks() -> None:
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(32.8856) == [0, 10, 20, 30, 40]
    assert nice_ticks(0) == [0, 1]


def test_bar_chart_has_a_bar_and_tooltip_per_value_and_escapes_text() -> None:
    drawing = bar_chart(["<b>", "2"], [("Out", [3, 0]), ("In & back", [1, 2])], title="Calls <by> hour")
    root = ET.fromstring(drawing)  # well-formed XML: any unescaped text would break this
    assert root.get("role") == "img" and root.get("aria-label") == "Calls <by> hour"
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert [b.find(f"{SVG}title").text for b in bars] == ["<b> Out: 3", "<b> In & back: 1", "2 Out: 0",
                                                          "2 In & back: 2"]
    heights = [float(b.get("height")) for b in bars]
    assert heights[2] == 0
    assert heights[0] == pytest.approx(1.5 * heights[3], abs=0.2) == pytest.approx(3 * heights[1], abs=0.2)


def test_hbar_chart_keeps_the_largest_and_formats_money() -> None:
    labels = [f"ext {n}" for n in range(20)]
    drawing = hbar_chart(labels, [Decimal(20 - n) for n in range(20)], title="Amount", limit=5,
                         fmt=lambda v: f"{v:.2f}")
    root = ET.fromstring(drawing)
    titles = [t.text for t in root.iter(f"{SVG}title")][1:]
    assert titles == ["ext 0: 20.00", "ext 1: 19.00", "ext 2: 18.00", "ext 3: 17.00", "ext 4: 16.00"]


def test_step_chart_draws_the_limit_and_one_step_per_point() -> None:
    points = [(local("2024-03-05 00:00:00") + timedelta(hours=h), v) for h, v in enumerate([0, 2, 5, 1])]
    drawing = step_chart(points, title="Calls up at once", end=local("2024-03-05 04:00:00"), limit=4,
                         limit_label="4 trunks")
    root = ET.fromstring(drawing)
    hits = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "chart-hit"]
    assert [h.find(f"{SVG}title").text for h in hits] == ["00:00: 0", "01:00: 2", "02:00: 5", "03:00: 1"]
    assert len({round(float(h.get("width")), 1) for h in hits}) == 1   # equal hours, equal widths
    (limit,) = [line for line in root.iter(f"{SVG}line") if line.get("class") == "chart-limit"]
    assert "4 trunks" in drawing
    empty = step_chart([], title="x", end=local("2024-03-05 04:00:00"))
    assert "No calls in this period" in empty
