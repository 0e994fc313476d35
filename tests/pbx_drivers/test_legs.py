"""Transfer legs (appliance.legs): which records are legs, which belong together, and the one call they
make: IP Office segments (same Call ID, continuation flag), Nortel S/E records, NEC continued billing."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from appliance.drivers import ParseContext
from pbx_drivers.avaya_ipoffice import IpOfficeOptions
from pbx_drivers.avaya_ipoffice import parse_record as parse_ipo
from appliance.legs import CONTINUED, MAX_CALL_SPAN, belongs, is_continued, leg_key, merge_legs

VANCOUVER = ZoneInfo("America/Vancouver")
CONTEXT = ParseContext(tz=VANCOUVER, received_at=datetime(2016, 9, 2, tzinfo=VANCOUVER))
# An IP Office call in two segments: 239 dials out, then transfers the far end to 241. Every segment
# carries the call's start and its Call ID; the first has continuation 1 (smdr.md 2.2).
FIRST = ("2016/09/01 01:33:36,00:00:30,0,239,O,12043247403,12043242878,,0,1007534,1,E239,Volunteer6,T9004,"
         "Line 4.0,0,0,,,,,,,,,,,U,Volunteer6,")
LAST = ("2016/09/01 01:33:36,00:00:27,0,241,O,12043247403,12043242878,,0,1007534,0,E241,Volunteer2,T9004,"
        "Line 4.0,0,0,,,,,,,,,,,U,Volunteer2,")


def ipo(line: str):
    return parse_ipo(line.encode(), IpOfficeOptions(), CONTEXT)


def test_ip_office_segments_are_one_call_charged_to_the_guest_who_dialled():
    first, last = ipo(FIRST), ipo(LAST)
    assert is_continued(first) and not is_continued(last)
    assert leg_key(first) == leg_key(last) == "1007534" and belongs(first, last)
    merged = merge_legs([first, last])
    assert (merged.extension, merged.trunk, merged.dialled, merged.direction) == (
        "239", "T9004", "12043242878", "outgoing")
    assert (merged.duration, merged.answered, merged.transfer, merged.call_id) == (57, True, "T:241",
                                                                                   "1007534")
    assert merged.start == first.start and merged.raw == FIRST.encode() + b"\n" + LAST.encode()


def test_order_of_arrival_does_not_matter_when_starts_differ():
    first, last = ipo(FIRST), ipo(LAST)
    later = replace(last, start=last.start + timedelta(seconds=30))
    assert merge_legs([later, first]) == merge_legs([first, later])


def test_outgoing_legs_decide_when_a_call_was_handed_out():
    # an incoming call answered by 221, which then forwarded it out on a trunk: the outgoing leg is charged
    incoming = ipo(FIRST.replace(",239,O,", ",2125550188,I,").replace("E239,Volunteer6,T9004",
                                                                      "T9007,Line 7,E221"))
    outgoing = replace(ipo(LAST), extension="221", start=incoming.start + timedelta(seconds=40))
    merged = merge_legs([incoming, outgoing])
    assert (merged.direction, merged.extension, merged.duration, merged.transfer) == ("outgoing", "221", 27,
                                                                                      "")


def test_unanswered_legs_add_no_time():
    first, last = ipo(FIRST), ipo(LAST.replace("00:00:27", "00:00:00"))
    merged = merge_legs([first, last])
    assert (merged.duration, merged.answered) == (30, True)


def test_records_without_a_key_are_not_legs():
    assert leg_key(replace(ipo(LAST), call_id="")) is None
    assert not is_continued(replace(ipo(FIRST), call_id=""))
    assert replace(ipo(FIRST), transfer=CONTINUED).transfer == "continued"


def test_legs_too_far_apart_are_not_one_call():
    first, last = ipo(FIRST), ipo(LAST)
    assert not belongs(first, replace(last, start=last.start + MAX_CALL_SPAN + timedelta(seconds=1)))
    assert not belongs(first, replace(last, call_id="1007535"))


def test_merging_nothing_or_different_calls_is_an_error():
    with pytest.raises(ValueError, match="no legs"):
        merge_legs([])
    with pytest.raises(ValueError, match="different calls"):
        merge_legs([ipo(FIRST), replace(ipo(LAST), call_id="1")])
