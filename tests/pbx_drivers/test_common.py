"""pbx_drivers.common (year and date inference, durations, 12-hour clocks, directions, JSON) and
pbx_drivers.callgen (the simulator's calls)."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.drivers import ParseContext
from appliance.events import CallRecord
from pbx_drivers.callgen import generate_call
from pbx_drivers.common import (
    call_to_json,
    direction_from_trunks,
    format_hms,
    infer_date,
    infer_year,
    parse_duration,
    twelve_hour,
    unprintable,
)

NEW_YORK = ZoneInfo("America/New_York")


def context(received: str, tz: ZoneInfo = NEW_YORK) -> ParseContext:
    return ParseContext(tz=tz, received_at=datetime.fromisoformat(received))


def test_year_is_this_year_for_a_recent_record():
    start = infer_year(3, 5, time(13, 14, 13), context("2024-03-06T09:00:00-05:00"))
    assert start == datetime(2024, 3, 5, 13, 14, 13, tzinfo=NEW_YORK)
    assert start.utcoffset().total_seconds() == -5 * 3600


def test_december_record_read_in_january_is_last_year():
    start = infer_year(12, 31, time(23, 59, 30), context("2025-01-01T00:05:00-05:00"))
    assert start == datetime(2024, 12, 31, 23, 59, 30, tzinfo=NEW_YORK)


def test_december_record_read_weeks_later_is_still_last_year():
    assert infer_year(12, 20, time(10, 0), context("2025-02-10T08:00:00-05:00")).year == 2024


def test_january_record_from_a_pbx_clock_slightly_ahead_is_next_year():
    # Received at 23:50 on New Year's Eve, stamped 00:02 on 1 January by a PBX a few minutes fast.
    start = infer_year(1, 1, time(0, 2), context("2024-12-31T23:50:00-05:00"))
    assert start == datetime(2025, 1, 1, 0, 2, tzinfo=NEW_YORK)


def test_a_date_far_after_receipt_is_last_year():
    # 10 March read on 5 March: a record from the future by five days is last year's 10 March.
    assert infer_year(3, 10, time(9, 0), context("2024-03-05T12:00:00-05:00")).year == 2023


def test_leap_day_goes_back_to_the_last_leap_year():
    assert infer_year(2, 29, time(12, 0), context("2023-03-01T12:00:00-05:00")).year == 2020
    assert infer_year(2, 29, time(12, 0), context("2024-03-01T12:00:00-05:00")).year == 2024


def test_impossible_date_is_a_value_error():
    with pytest.raises(ValueError, match="02/30"):
        infer_year(2, 30, time(0, 0), context("2024-03-01T12:00:00-05:00"))


def test_received_at_is_compared_in_site_time():
    # 04:30 UTC on 1 January is still 31 December in New York: a 12/31 23:00 record is this (2024's) year.
    received = ParseContext(tz=NEW_YORK, received_at=datetime(2025, 1, 1, 4, 30, tzinfo=UTC))
    assert infer_year(12, 31, time(23, 0), received).year == 2024


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 12, 31)),
       st.integers(min_value=0, max_value=3 * 24 * 3600))
def test_year_inference_recovers_any_recent_start(start, delay):
    start = start.replace(microsecond=0)
    utc = ZoneInfo("UTC")
    received = ParseContext(tz=utc, received_at=start.replace(tzinfo=utc) + timedelta(seconds=delay))
    inferred = infer_year(start.month, start.day, start.time(), received)
    assert inferred.replace(tzinfo=None) == start


def test_time_only_record_just_before_midnight_is_yesterday():
    start = infer_date(time(23, 59), context("2024-06-02T00:01:00-04:00"))
    assert start == datetime(2024, 6, 1, 23, 59, tzinfo=NEW_YORK)
    assert infer_date(time(8, 0), context("2024-06-02T09:00:00-04:00")).day == 2


@pytest.mark.parametrize("text, seconds", [
    ("00:05:12", 312), ("0000:06:59", 419), ("1234:00:01", 1234 * 3600 + 1), ("5:07", 307),
    ("00:05'12", 312), ("0'05", 5), ("12'30", 750), ("226", 226), ("  00:00:21 ", 21),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "00:61:00", "1:2:3:4", "-5", "12.5"])
def test_bad_durations_name_the_text(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_hms():
    assert format_hms(419) == "00:06:59"
    assert format_hms(419, 4) == "0000:06:59"
    assert format_hms(100 * 3600) == "100:00:00"


@pytest.mark.parametrize("hour, pm, expected", [(12, False, 0), (12, True, 12), (1, False, 1), (1, True, 13),
                                                (11, True, 23)])
def test_twelve_hour_clock(hour, pm, expected):
    assert twelve_hour(hour, pm) == expected


def test_twelve_hour_clock_rejects_13():
    with pytest.raises(ValueError):
        twelve_hour(13, True)


def test_direction_from_trunks():
    assert direction_from_trunks(True, False) == "incoming"
    assert direction_from_trunks(False, True) == "outgoing"
    assert direction_from_trunks(True, True) == "tandem"
    assert direction_from_trunks(False, False) is None


def test_unprintable_names_the_byte_and_column():
    assert unprintable(b" 03/05 ok") is None
    assert unprintable(b" 03\x00/05") == "byte 0x00 at column 4 is not printable ASCII"
    assert unprintable("caf\u00e9".encode("latin-1")) == "byte 0xe9 at column 4 is not printable ASCII"


def test_call_to_json_has_exactly_the_parse_keys():
    call = CallRecord(start=datetime(2024, 3, 5, 13, 14, 13, tzinfo=NEW_YORK), duration=5, ring=None,
                      extension="101", trunk="T1", dialled="2125550100", caller="", direction="outgoing",
                      answered=True, raw=b"caf\xe9")
    assert call_to_json(call) == {
        "start": "2024-03-05T13:14:13-05:00", "duration": 5, "ring": None, "extension": "101", "trunk": "T1",
        "dialled": "2125550100", "caller": "", "direction": "outgoing", "answered": True, "account_code": "",
        "call_id": "", "transfer": "", "raw": "caf\ufffd",
    }
    assert call_to_json(call, "latin-1")["raw"] == "caf\u00e9"


# ---------------------------------------------------------------- callgen


def test_generate_call_is_deterministic_and_realistic():
    start = datetime(2025, 3, 14, 10, 0, 0, 123456, tzinfo=NEW_YORK)
    def make(seed: int) -> list[CallRecord]:
        rng = random.Random(seed)
        return [generate_call(rng, start, ["2101", "2102", "2103"], ["T801", "T802"]) for _ in range(20)]

    assert make(7) == make(7)
    assert make(7) != make(8)
    rng = random.Random(42)
    calls = [generate_call(rng, start, ["2101", "2102", "2103"], ["T801", "T802"]) for _ in range(2000)]
    kinds = Counter(call.direction for call in calls)
    assert kinds["outgoing"] > kinds["incoming"] > 0 and kinds["internal"] > 0 and "tandem" not in kinds
    assert all(call.start == start.replace(microsecond=0) for call in calls)
    for call in calls:
        assert call.answered == (call.duration > 0)
        assert 0 <= call.duration <= 4 * 3600
        if call.direction == "outgoing":
            assert call.trunk in ("T801", "T802") and call.ring is None and call.caller == ""
            # NANP shapes without the access code: 10-digit local, 1+10 toll and toll-free, 011 international
            assert re.fullmatch(r"212[2-9]\d{6}|1[2-9]\d\d[2-9]\d{6}|011\d{9,13}", call.dialled), call.dialled
        elif call.direction == "incoming":
            assert call.extension in ("2101", "2102", "2103") and call.trunk in ("T801", "T802")
            assert call.caller == "" or re.fullmatch(r"[2-9]\d\d[2-9]\d{6}", call.caller)
        else:
            assert call.dialled in ("2101", "2102", "2103") and call.dialled != call.extension
    assert 0.05 < sum(not call.answered for call in calls) / len(calls) < 0.2
    toll_free = [call for call in calls if call.dialled[1:4] in ("800", "888", "877", "866", "855", "844")]
    assert toll_free and all(len(call.dialled) == 11 for call in toll_free)


def test_generate_call_mix_is_configurable():
    rng = random.Random(1)
    start = datetime(2025, 3, 14, 10, 0, tzinfo=NEW_YORK)
    calls = [generate_call(rng, start, ["101"], ["T1"], mix={"international": 1}) for _ in range(50)]
    assert all(call.dialled.startswith("011") for call in calls)
    with pytest.raises(ValueError, match="unknown call kinds"):
        generate_call(rng, start, ["101"], ["T1"], mix={"premium": 1})


# ---------------------------------------------------------------- helpers added for the PBX drivers

from pbx_drivers.common import (
    digits_of,
    from_epoch,
    full_year,
    moment_of,
    named_row,
    parse_clock,
    parse_date,
    resolve_start,
    start_of,
)


@pytest.mark.parametrize("text, order, expected", [
    ("06/24/97", "mdy", (1997, 6, 24)), ("24/06/97", "dmy", (1997, 6, 24)), ("03/05", "mdy", (None, 3, 5)),
    ("14.03.25", "dmy", (2025, 3, 14)), ("2024-12-31", "ymd", (2024, 12, 31)),
    ("02/29", "mdy", (None, 2, 29)),
])
def test_parse_date_in_every_order(text, order, expected):
    assert parse_date(text, order) == expected


@pytest.mark.parametrize("text, order", [("24/06/97", "mdy"), ("02/30/24", "mdy"), ("2024/13", "ymd"),
                                         ("x", "dmy")])
def test_bad_dates_name_the_order(text, order):
    with pytest.raises(ValueError, match="date"):
        parse_date(text, order)


def test_full_year_pivots_at_70():
    assert (full_year(97), full_year(69), full_year(2024)) == (1997, 2069, 2024)


@pytest.mark.parametrize("text, twelve, expected", [
    ("10:03AM", False, time(10, 3)), ("10:03 PM", False, time(22, 3)), ("12:05P", False, time(12, 5)),
    ("12:05", True, time(0, 5)), ("23:59:30", False, time(23, 59, 30)), ("9:07", False, time(9, 7)),
])
def test_parse_clock(text, twelve, expected):
    assert parse_clock(text, twelve_hour_clock=twelve) == expected


@pytest.mark.parametrize("text", ["24:00", "13:00PM", "10:60", "ten"])
def test_bad_clocks(text):
    with pytest.raises(ValueError):
        parse_clock(text)


def test_resolve_start_with_and_without_a_year_and_end_times():
    ctx = context("2025-01-01T00:05:00-05:00")
    assert resolve_start(None, 12, 31, time(23, 59), ctx) == datetime(2024, 12, 31, 23, 59, tzinfo=NEW_YORK)
    assert resolve_start(2023, 6, 1, time(8, 0), ctx) == datetime(2023, 6, 1, 8, 0, tzinfo=NEW_YORK)
    end = datetime(2025, 3, 14, 10, 3, tzinfo=NEW_YORK)
    assert start_of(end, 312, "end") == datetime(2025, 3, 14, 9, 57, 48, tzinfo=NEW_YORK)
    assert start_of(end, 312, "start") == end
    started = datetime(2025, 3, 14, 9, 57, 48, tzinfo=NEW_YORK)
    assert moment_of(started, 312, "end") == datetime(2025, 3, 14, 10, 3)


def test_end_time_across_the_spring_dst_change_is_wall_clock_arithmetic():
    end = datetime(2025, 3, 9, 3, 1, tzinfo=NEW_YORK)  # clocks went 02:00 -> 03:00
    assert start_of(end, 120, "end").replace(tzinfo=None) == datetime(2025, 3, 9, 2, 59)


def test_epoch_and_digits():
    assert from_epoch(1456900585, ZoneInfo("America/Los_Angeles")).isoformat() == "2016-03-01T22:36:25-08:00"
    assert digits_of("1-631-220-3707") == "16312203707" and digits_of("10222P1*2#") == "102221*2#"


def test_named_row_allows_optional_and_trailing_fields():
    names = ("a", "b", "c")
    assert named_row('"1",2', names, optional=1) == {"a": "1", "b": "2"}
    assert named_row("1,2,3,", names) == {"a": "1", "b": "2", "c": "3"}
    with pytest.raises(ValueError, match="2 fields, expected 3"):
        named_row("1,2", names)
