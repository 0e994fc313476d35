"""Trunk utilisation and Erlang B against figures worked out by hand (the working is in the comments)."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal as D

import pytest

from appliance.reports import (
    Period, concurrency_steps, erlang_b, measure, peak_occupancy, trunk_utilisation, trunks_needed,
)
from tests.reports.conftest import DAY, TZ, add_call, local

PERIOD = Period.day(DAY, TZ)


# -- Erlang B --------------------------------------------------------------------------------------------

def test_erlang_b_two_erlangs_three_trunks() -> None:
    # B(0) = 1
    # B(1) = 2·1      / (1 + 2·1)      = 2/3
    # B(2) = 2·(2/3)  / (2 + 2·(2/3))  = (4/3) / (10/3) = 0.4
    # B(3) = 2·0.4    / (3 + 2·0.4)    = 0.8 / 3.8      = 4/19 = 0.210526...
    # Closed form agrees: (2³/3!) / (1 + 2 + 2²/2! + 2³/3!) = (4/3) / (19/3) = 4/19.
    assert erlang_b(2, 3) == pytest.approx(4 / 19)
    assert round(erlang_b(2, 3), 4) == 0.2105


def test_erlang_b_edges_and_table_values() -> None:
    assert erlang_b(1, 1) == pytest.approx(0.5)          # A/(1+A)
    assert erlang_b(0, 5) == 0.0                         # no traffic, no blocking
    assert erlang_b(3, 0) == 1.0                         # no trunks: everything blocked
    assert erlang_b(10, 10) == pytest.approx(0.2146, abs=5e-5)   # standard Erlang B table
    with pytest.raises(ValueError):
        erlang_b(-1, 2)


def test_erlang_b_is_stable_where_the_closed_form_overflows() -> None:
    # 400^500 / 500! overflows a float (math.factorial(500) alone has 1135 digits); the recursion does not.
    with pytest.raises(OverflowError):
        float(400 ** 500) / math.factorial(500)
    value = erlang_b(400, 500)
    assert 0 < value < 1e-6
    assert 0 < erlang_b(600, 500) < 1


def test_trunks_needed() -> None:
    # For 2 Erlangs, continuing the recursion above:
    # B(4) = 0.4211/4.4211 = 0.0952, B(5) = 0.1905/5.1905 = 0.0367, B(6) = 0.0734/6.0734 = 0.0121,
    # B(7) = 0.0242/7.0242 = 0.0034: seven trunks keep blocking under 1 %.
    assert trunks_needed(2, 0.01) == 7
    assert trunks_needed(2, 0.25) == 3
    assert trunks_needed(0, 0.01) == 1 or trunks_needed(0, 0.01) == 0


# -- the sweep line ----------------------------------------------------------------------------------

def test_concurrency_steps_hand_example() -> None:
    # 0----10          (A)
    #     5------15    (B)
    #         10-----20 (C)   C starts as A ends: A is freed first, so 2 (not 3) at t=10
    #           12-13  (D)
    steps = concurrency_steps([(0, 10), (5, 15), (10, 20), (12, 13)])
    assert steps == [(0, 1), (5, 2), (10, 2), (12, 3), (13, 2), (15, 1), (20, 0)]
    assert peak_occupancy([(0, 10), (5, 15), (10, 20), (12, 13)]) == (3, 12)
    assert peak_occupancy([]) == (0, None)
    assert peak_occupancy([(0, 5), (5, 10), (10, 15)]) == (1, 0)   # back to back on one trunk


def test_utilisation_of_the_day(seeded) -> None:
    figures = measure(seeded, PERIOD, trunk_count=2)
    # Trunk calls (internal d left out), local times:
    #   a 00:00:00-00:00:10  b 09:00-09:02  c 09:01-09:06  e 14:30-15:00  f 14:45-14:55
    #   g 14:50-15:05        h 15:10-16:00  i 20:00-20:01
    # Peak: at 14:50 e, f and g are up -> 3 (b and c overlap only 2).
    assert figures.peak == 3
    assert figures.peak_at == local("2024-03-05 14:50:00")
    # Traffic per hour: 14h = e 1800 s + f 600 s + g 600 s (14:50-15:00) = 3000 s = 0.8333 Erl;
    #                   15h = g 300 s (15:00-15:05) + h 3000 s = 3300 s = 0.9167 Erl  <- busy hour
    assert figures.busy_hour == local("2024-03-05 15:00:00")
    assert figures.busy_hour_erlangs == D("0.9167")
    hours = {moment.astimezone(TZ).hour: bucket for moment, bucket in figures.hours.items()}
    assert (hours[14].seconds, hours[14].peak, hours[14].calls) == (3000, 3, 3)
    # e ends at 15:00:00 exactly, so at 15:00 only g is up; h starts after g ended: peak 1.
    assert (hours[15].seconds, hours[15].peak, hours[15].calls) == (3300, 1, 1)
    assert (hours[9].seconds, hours[9].peak) == (420, 2)
    # Erlang B for A = 0.9167 (3300/3600 = 11/12) and N = 2:
    #   B(1) = (11/12) / (1 + 11/12) = 11/23
    #   B(2) = (11/12)(11/23) / (2 + (11/12)(11/23)) = (121/276) / (673/276) = 121/673 = 0.1798
    assert figures.blocking == pytest.approx(121 / 673, abs=1e-4)


def test_trunk_group_and_report(seeded) -> None:
    # Trunk T1 alone: b, c, f, g. Peak 2 (b+c at 09:01, f+g at 14:50); busy hour 14h: f 600 + g 600 s.
    t1 = measure(seeded, PERIOD, trunk_count=1, trunks={"T1"})
    assert (t1.peak, t1.peak_at) == (2, local("2024-03-05 09:01:00"))
    assert t1.busy_hour == local("2024-03-05 14:00:00")
    assert t1.busy_hour_erlangs == D("0.3333")
    report = trunk_utilisation(seeded, PERIOD, trunk_count=2)
    assert report.column("Hour") == ["2024-03-05 00:00", "2024-03-05 09:00", "2024-03-05 14:00",
                                     "2024-03-05 15:00", "2024-03-05 20:00"]
    assert report.column("Calls") == [1, 2, 3, 1, 1]
    # The call of 23:59:59 the day before runs 29 s into the day (and is up with a at 00:00:00: peak 2
    # in that hour, but it is not one of the day's calls). Seconds: 0h 10 + 29, 9h 420, 14h 3000,
    # 15h 3300, 20h 60 = 6819 s = 1.8942 Erlang-hours.
    assert report.column("Peak simultaneous") == [2, 2, 3, 1, 1]
    assert report.totals[1:] == (8, D("1.8942"), 3, D("0.9167"))
    assert any("Busy hour: 2024-03-05 15:00, 0.9167 Erlang" in note for note in report.notes)


def test_calls_over_the_period_edges(sessions) -> None:
    with sessions.begin() as session:
        # Up since 23:50 the day before: its last 20 minutes count, but not as a call of the day.
        add_call(session, 1, local("2024-03-04 23:50:00"), 1800)
        # Runs past midnight: only its first 10 minutes count.
        add_call(session, 2, local("2024-03-05 23:50:00"), 1800)
    with sessions() as session:
        figures = measure(session, PERIOD, trunk_count=1)
    hours = {moment.astimezone(TZ).hour: bucket for moment, bucket in figures.hours.items()}
    assert (hours[0].seconds, hours[0].calls, hours[0].peak) == (1200, 0, 1)
    assert (hours[23].seconds, hours[23].calls) == (600, 1)
    assert figures.peak == 1


def test_a_call_spanning_hours_sets_each_hours_peak(sessions) -> None:
    with sessions.begin() as session:
        add_call(session, 1, local("2024-03-05 08:30:00"), 3 * 3600)   # 08:30-11:30
        add_call(session, 2, local("2024-03-05 08:40:00"), 60)
    with sessions() as session:
        figures = measure(session, PERIOD, trunk_count=4)
    hours = {moment.astimezone(TZ).hour: (bucket.seconds, bucket.peak) for moment, bucket in figures.hours.items()}
    assert hours == {8: (1800 + 60, 2), 9: (3600, 1), 10: (3600, 1), 11: (1800, 1)}
    assert figures.busy_hour == local("2024-03-05 09:00:00")   # 9h and 10h tie: the earlier one
    assert measure(session, Period.day(date(2024, 3, 6), TZ), trunk_count=1).peak == 0
