"""Cisco CUCM CDR files: the real 10.5 file through the header-remembering link, fields found by header
name whatever their order, record types, spreadsheet damage, the watched drop folder with processed-file
handling (FileFollowService on a task.Clock) and round trips."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from appliance.drivers import ParseContext
from appliance.events import CallRecord, Ignored, RecordReceived
from appliance.net.adapter import LinkFactory
from appliance.net.transports import FileFollowService
from appliance.registry import validate_spec
from pbx_drivers.callgen import generate_call
from pbx_drivers.cisco_cucm import SPEC, CucmLink, CucmOptions, format_record, parse_record
from tests.pbx_drivers import SPLITS, call_fields, check_any_split, check_capture, load_capture, run_link

LOS_ANGELES = ZoneInfo("America/Los_Angeles")
CONTEXT = ParseContext(tz=LOS_ANGELES, received_at=datetime(2016, 3, 8, tzinfo=LOS_ANGELES))
OPTIONS = CucmOptions()


def rows() -> list[list[str]]:
    return list(csv.reader(io.StringIO(load_capture("cisco_cucm").data.decode())))


def as_csv(table: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(table)
    return out.getvalue().encode()


def calls_from(data: bytes) -> list:
    return [parse_record(event.raw, OPTIONS, CONTEXT) for event in run_link(SPEC, OPTIONS, [data])
            if isinstance(event, RecordReceived)]


def test_spec_is_valid():
    assert validate_spec(SPEC) == [] and "file" in SPEC.transports


@pytest.mark.parametrize("split", SPLITS)
def test_capture_through_the_link(split):
    check_capture(load_capture("cisco_cucm"), split, trailing=b"1,1,22020,22670646,1456900585,1,0")


@settings(max_examples=30)
@given(st.lists(st.integers(min_value=0, max_value=5000), max_size=6))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("cisco_cucm"), cuts)


def test_columns_are_found_by_name_not_position():
    table = rows()
    order = list(range(len(table[0])))
    random.Random(7).shuffle(order)
    shuffled = [[row[i] for i in order] for row in table]
    assert [call_fields(c) for c in calls_from(as_csv(shuffled))] == load_capture("cisco_cucm").expected
    renamed = [[name.replace("destLegIdentifier", "destLegCallIdentifier") for name in table[0]], *table[1:]]
    assert [call_fields(c) for c in calls_from(as_csv(renamed))] == load_capture("cisco_cucm").expected


def test_type_row_quotes_and_cmr_rows():
    table = rows()
    types = ["INTEGER" if i % 2 else "VARCHAR(50)" for i in range(len(table[0]))]
    cmr = list(table[1])
    cmr[0] = "2"
    quoted = as_csv([table[0]]) + as_csv([types]) + b",".join(
        f'"{value}"'.encode() for value in table[1]) + b"\r\n" + as_csv([cmr])
    events = run_link(SPEC, OPTIONS, [quoted])
    assert [e.reason for e in events if isinstance(e, Ignored)] == ["column names", "column types"]
    results = [parse_record(e.raw, OPTIONS, CONTEXT) for e in events if isinstance(e, RecordReceived)]
    assert call_fields(results[0]) == load_capture("cisco_cucm").expected[0]
    assert isinstance(results[1], Ignored) and not results[1].quarantine and "CMR" in results[1].reason


def test_a_row_without_a_header_and_spreadsheet_numbers_are_quarantined():
    table = rows()
    headless = parse_record(as_csv(table[1:2]).strip(), OPTIONS, CONTEXT)
    assert headless.quarantine and "no header row" in headless.reason
    damaged = list(table[1])
    damaged[table[0].index("callingPartyNumber")] = "9.12678E+11"
    result = calls_from(as_csv([table[0], damaged]))[0]
    assert isinstance(result, Ignored) and "spreadsheet" in result.reason


def test_a_gateway_on_the_called_side_is_outgoing_with_outpulsed_digits():
    table = rows()
    row = dict(zip(table[0], table[1]))
    row.update(destDeviceName="S0/SU2/DS1-0@HQRTR", finalCalledPartyNumber="912125550134",
               outpulsedCalledPartyNumber="12125550134", clientMatterCode="4711",
               origCallTerminationOnBehalfOf="10")
    call = calls_from(as_csv([list(row), list(row.values())]))[0]
    assert (call.direction, call.extension, call.trunk, call.dialled) == (
        "outgoing", "51002", "S0/SU2/DS1-0@HQRTR", "12125550134")
    assert (call.account_code, call.transfer, call.call_id) == ("4711", "transferred", "22020")


@given(st.binary(max_size=300))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, OPTIONS, CONTEXT), (CallRecord, Ignored))


# ---------------------------------------------------------------- the drop folder


def follow(folder, clock) -> tuple[FileFollowService, list]:
    events: list = []
    factory = LinkFactory(lambda: CucmLink(OPTIONS), clock, lambda protocol, batch: events.extend(batch),
                          "cucm")
    return FileFollowService(str(folder), factory, clock, poll_interval=1.0), events


def test_drop_folder_reads_each_file_and_moves_it_to_processed(tmp_path):
    (tmp_path / "processed").mkdir()
    data = load_capture("cisco_cucm").data
    (tmp_path / "cdr_StandAloneCluster_01_201603011234_1").write_bytes(data)
    cmr = tmp_path / "cmr_StandAloneCluster_01_201603011234_1"
    cmr.write_bytes(b"cdrRecordType,globalCallID_callId\r\n")
    clock = Clock()
    service, events = follow(tmp_path, clock)
    service.startService()
    for _ in range(10):
        clock.advance(1.0)
    service.stopService()
    calls = [parse_record(e.raw, OPTIONS, CONTEXT) for e in events if isinstance(e, RecordReceived)]
    assert [call_fields(c) for c in calls] == load_capture("cisco_cucm").expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["processed"]
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == [
        "cdr_StandAloneCluster_01_201603011234_1", "cmr_StandAloneCluster_01_201603011234_1"]


def test_a_folder_without_processed_keeps_its_files(tmp_path):
    (tmp_path / "cdr_1").write_bytes(load_capture("cisco_cucm").data)
    clock = Clock()
    service, events = follow(tmp_path, clock)
    service.startService()
    for _ in range(10):
        clock.advance(1.0)
    service.stopService()
    assert len([e for e in events if isinstance(e, RecordReceived)]) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["cdr_1"]


def test_a_file_still_growing_is_not_moved(tmp_path):
    (tmp_path / "processed").mkdir()
    path = tmp_path / "cdr_2"
    header, *data_rows = load_capture("cisco_cucm").data.splitlines(keepends=True)
    path.write_bytes(header)
    clock = Clock()
    service, events = follow(tmp_path, clock)
    service.startService()
    for row in data_rows:
        clock.advance(1.0)
        with open(path, "ab") as handle:
            handle.write(row)
    clock.advance(1.0)
    assert path.exists()
    for _ in range(10):
        clock.advance(1.0)
    service.stopService()
    assert not path.exists() and (tmp_path / "processed" / "cdr_2").exists()
    assert len([e for e in events if isinstance(e, RecordReceived)]) == 4


# ---------------------------------------------------------------- round trips


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       call_id=st.sampled_from(["", "22020"]), transfer=st.sampled_from(["", "transferred"]))
def test_format_then_parse_gives_the_call_back(seed, start, call_id, transfer):
    utc = ZoneInfo("UTC")
    trunks = ("S0/SU2/DS1-0@gw1", "SIPTrunk-PSTN")
    call = generate_call(random.Random(seed), start.replace(tzinfo=utc), ("42000", "51002"), trunks)
    call = replace(call, call_id=call_id, transfer=transfer)
    context = ParseContext(tz=utc, received_at=datetime.now(UTC))
    events = run_link(SPEC, OPTIONS, [format_record(call, OPTIONS)])
    calls = [parse_record(e.raw, OPTIONS, context) for e in events if isinstance(e, RecordReceived)]
    assert len(calls) == 1 and isinstance(calls[0], CallRecord), calls
    # epoch seconds keep the time; a call without a ring time gets 0 (origination = connect)
    assert call_fields(calls[0]) == call_fields(replace(call, ring=call.ring or 0))
