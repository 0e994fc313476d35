"""The sans-IO framers, h11-style: every capture whole, one byte at a time and with trailing bytes; any split
of a capture gives the same records; garbage and over-long input become Ignored and the stream carries on.
Also every PBX driver capture through its driver's own link."""

from __future__ import annotations

from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.events import Ignored, RecordReceived
from appliance.framing import (
    ACK,
    ENQ,
    ETX,
    NAK,
    STX,
    ChecksumMismatch,
    Framer,
    LengthPrefixedFramer,
    LineFramer,
    StxEtxFramer,
    frame,
    lrc,
)
from tests.pbx_drivers import CAPTURE_NAMES, load_capture, run_link

# Mitel 5000 / Inter-Tel Axxess socket SMDR lines (real: fmahnke/axxess_8520_smdr_client tests, via
# /work/shared/samples/mitel5000_intertel.txt), each sent as a 4-byte little-endian length + line + CR LF.
AXXESS_LINES = [
    b"Station Message Detailed Recording                          00:00:04 07-03-2012",
    b"TLC 104   94151 952-474-1742                 08:52    S=226 $00.00              ",
    b"O/I 104   94151 011-49618296260              09:00    S=193 $00.00             *",
]
FIAS_RECORDS = [b"LS|DA250314|TI101500|", b"LD|DA250314|TI101501|V#1.0|IFPB|", b"PS|RN0412|TA340|P#17|"]


def feed_all(framer: Framer, chunks: list[bytes]) -> list[object]:
    out: list[object] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return out + framer.flush()


def bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def length_prefixed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "little") + payload


# Each framer capture: how to make the framer, the bytes, and the items a whole feed must give.
CAPTURES: dict[str, tuple[Callable[[], Framer], bytes, list[object]]] = {
    "lines": (
        LineFramer,
        b"\x0c  Date     Time    Ext\r\n\r\n 03/05 13:14:13 9999\r\nlast line, LF only\nCR only\r",
        [b"  Date     Time    Ext", b" 03/05 13:14:13 9999", b"last line, LF only", b"CR only"],
    ),
    "stx-etx": (
        StxEtxFramer,
        b"".join(frame(record) for record in FIAS_RECORDS) + b"\r\n" + bytes([ACK]),
        [*FIAS_RECORDS, ACK],
    ),
    "stx-etx-lrc": (
        lambda: StxEtxFramer(with_lrc=True),
        bytes([ENQ]) + b"".join(frame(record, with_lrc=True) for record in FIAS_RECORDS) + bytes([NAK]),
        [ENQ, *FIAS_RECORDS, NAK],
    ),
    "length-prefixed": (
        LengthPrefixedFramer,
        b"".join(length_prefixed(line + b"\r\n") for line in AXXESS_LINES),
        [line + b"\r\n" for line in AXXESS_LINES],
    ),
}


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_capture_whole_and_bytewise(name):
    make, data, expected = CAPTURES[name]
    assert feed_all(make(), [data]) == expected
    assert feed_all(make(), bytewise(data)) == expected


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_capture_with_trailing_bytes(name):
    make, data, expected = CAPTURES[name]
    framer = make()
    tail = {"lines": b"partial", "stx-etx": b"\x02LA|DA25", "stx-etx-lrc": b"\x02LA|DA25",
            "length-prefixed": length_prefixed(b"cut short")[:7]}[name]
    items = framer.feed(data + tail)
    assert items == expected  # nothing of the tail comes out before the stream ends
    rest = framer.flush()
    if name == "lines":
        assert rest == [b"partial"]  # a last line without its delimiter is still a record
    else:
        assert len(rest) == 1 and isinstance(rest[0], Ignored) and rest[0].reason.startswith("stream ended")


@settings(max_examples=200)
@given(name=st.sampled_from(sorted(CAPTURES)),
       cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_split_gives_the_same_items(name, cuts):
    make, data, expected = CAPTURES[name]
    assert feed_all(make(), split_at(data, cuts)) == expected


# ---------------------------------------------------------------- garbage and over-long input


def test_over_long_line_is_ignored_and_the_next_line_still_comes_out():
    framer = LineFramer(max_length=10)
    items = feed_all(framer, [b"0123456789ABCDEF and more\r\nshort\r\n"])
    reason = "record longer than 10 bytes, skipped to the next delimiter"
    assert items == [Ignored(reason=reason, raw=b"0123456789"), b"short"]
    assert feed_all(LineFramer(max_length=10), bytewise(b"0123456789ABCDEF and more\r\nshort\r\n")) == items


def test_line_of_exactly_max_length_is_a_record():
    assert feed_all(LineFramer(max_length=5), [b"12345\n"]) == [b"12345"]


def test_nul_delimited_records():
    # Samsung OfficeServ ends each record with NUL; a form feed starts its page header.
    assert feed_all(LineFramer(delimiters=b"\x00\x0c"), [b"rec one\x00\x0c====\x00rec two\x00"]) == [
        b"rec one", b"====", b"rec two"]


def test_line_framer_needs_a_delimiter():
    with pytest.raises(ValueError):
        LineFramer(delimiters=b"")


def test_garbage_between_frames_is_ignored_and_the_next_frame_comes_out():
    data = b"noise" + frame(b"LS|DA250314|") + b"\x01\x7f" + frame(b"LA|")
    expected = [Ignored(reason="bytes outside an STX/ETX frame", raw=b"noise"), b"LS|DA250314|",
                Ignored(reason="bytes outside an STX/ETX frame", raw=b"\x01\x7f"), b"LA|"]
    assert feed_all(StxEtxFramer(), [data]) == expected
    assert feed_all(StxEtxFramer(), bytewise(data)) == expected


def test_stx_inside_a_frame_restarts_it():
    items = feed_all(StxEtxFramer(), [b"\x02LS|DA2\x02LA|\x03"])
    assert items == [Ignored(reason="frame restarted by STX before ETX", raw=b"\x02LS|DA2"), b"LA|"]


def test_over_long_frame_is_ignored_and_the_next_frame_comes_out():
    data = frame(b"x" * 20) + frame(b"LA|")
    items = feed_all(StxEtxFramer(max_length=8), [data])
    assert isinstance(items[0], Ignored) and items[0].reason == "frame longer than 8 bytes"
    assert items[-1] == b"LA|"
    assert all(isinstance(item, Ignored) for item in items[:-1])
    assert feed_all(StxEtxFramer(max_length=8), bytewise(data)) == items


def test_bad_lrc_is_reported_and_the_next_frame_comes_out():
    good = frame(b"LA|", with_lrc=True)
    bad = good[:-1] + bytes([good[-1] ^ 0x55])
    items = feed_all(StxEtxFramer(with_lrc=True), [bad + good])
    assert items == [ChecksumMismatch(raw=b"LA|", expected=good[-1], received=good[-1] ^ 0x55), b"LA|"]


def test_lrc_byte_equal_to_stx_or_etx_is_found_by_position():
    # A payload whose LRC is 0x02 (STX) must not start a new frame.
    payload = bytes([0x41, 0x41 ^ STX ^ ETX])
    assert lrc(payload + bytes([ETX])) == STX
    assert feed_all(StxEtxFramer(with_lrc=True), bytewise(frame(payload, with_lrc=True))) == [payload]


def test_fias_spec_lrc_examples():
    # FIAS 2.20.23 p.93: XOR of every byte after STX up to and including ETX.
    assert lrc(b"12345" + bytes([ETX])) == ord("2")
    assert lrc(b"LS|DA250314|TI101500|" + bytes([ETX])) == ord("|")
    assert frame(b"12345", with_lrc=True) == b"\x0212345\x032"


def test_length_prefix_over_the_limit_resyncs_and_the_next_record_comes_out():
    record = length_prefixed(AXXESS_LINES[1] + b"\r\n")
    for chunks in ([b"\xff\xff\xff\xff" + record], bytewise(b"\xff\xff\xff\xff" + record)):
        items = feed_all(LengthPrefixedFramer(), chunks)
        assert items[-1] == AXXESS_LINES[1] + b"\r\n"
        assert all(isinstance(item, Ignored) and "length prefix of at most 4096" in item.reason
                   for item in items[:-1])
        # Every skipped byte is kept, in as few quarantine rows as the chunks allow (one when fed whole).
        assert b"".join(item.raw for item in items[:-1]) == b"\xff\xff\xff\xff"
    assert len(feed_all(LengthPrefixedFramer(), [b"\xff\xff\xff\xff" + record])) == 2


def test_two_byte_length_prefix():
    assert feed_all(LengthPrefixedFramer(size=2), [b"\x03\x00abc\x01\x00d"]) == [b"abc", b"d"]


# ---------------------------------------------------------------- driver captures through their links


def records_of(events: list[object]) -> list[object]:
    return [event.raw if isinstance(event, RecordReceived) else event for event in events]


@pytest.mark.parametrize("name", CAPTURE_NAMES)
def test_driver_capture_whole_bytewise_and_trailing(name):
    capture = load_capture(name)
    whole = records_of(run_link(capture.spec, capture.options, [capture.data]))
    assert whole and all(isinstance(item, bytes) for item in whole)
    assert records_of(run_link(capture.spec, capture.options, bytewise(capture.data))) == whole
    trailing = records_of(run_link(capture.spec, capture.options, [capture.data, b"tail"]))
    assert trailing == [*whole, b"tail"]


@settings(max_examples=100)
@given(name=st.sampled_from(CAPTURE_NAMES),
       cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=16))
def test_driver_capture_any_split_gives_the_same_records(name, cuts):
    capture = load_capture(name)
    whole = records_of(run_link(capture.spec, capture.options, [capture.data]))
    assert records_of(run_link(capture.spec, capture.options, split_at(capture.data, cuts))) == whole


def test_driver_link_quarantines_an_over_long_line_and_carries_on():
    capture = load_capture("avaya_ipoffice")
    line = capture.data.splitlines()[0]
    events = run_link(capture.spec, capture.options, [b"x" * 5000 + b"\r\n" + line + b"\r\n"])
    assert isinstance(events[0], Ignored) and "longer than 1024 bytes" in events[0].reason
    assert events[1:] == [RecordReceived(raw=line)]
