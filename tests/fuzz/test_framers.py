"""Fuzz the framers of ``appliance.framing`` (line, STX/ETX with and without LRC, length-prefixed).

For any bytes in any split: ``feed``/``flush`` return only frame items (records, ``Ignored``, control
bytes, ``ChecksumMismatch``), never raise, keep their internal buffers within ``max_length``, and lose
no byte silently (every input byte that is not a delimiter, frame byte or control byte is in a record or
an ``Ignored``). A framer fed 10 MB without a delimiter keeps its memory bounded.
"""

from __future__ import annotations


import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.events import Ignored
from appliance.framing import ChecksumMismatch, LengthPrefixedFramer, LineFramer, StxEtxFramer, frame
from tests.fuzz import FUZZ

MAX = 64


def framers():
    return {
        "line": lambda: LineFramer(max_length=MAX),
        "line-nul": lambda: LineFramer(delimiters=b"\x00", max_length=MAX),
        "stx": lambda: StxEtxFramer(max_length=MAX),
        "stx-lrc": lambda: StxEtxFramer(with_lrc=True, max_length=MAX),
        "length2": lambda: LengthPrefixedFramer(size=2, max_length=MAX),
        "length4": lambda: LengthPrefixedFramer(size=4, max_length=MAX),
    }


# Bytes that matter to some framer, mixed with anything.
special = st.sampled_from([b"\x02", b"\x03", b"\x04", b"\x05", b"\x06", b"\x15", b"\r", b"\n", b"\x0c", b"\x00"])
stream = st.lists(st.one_of(st.binary(max_size=80), special,
                            st.binary(max_size=40).map(frame),
                            st.binary(max_size=40).map(lambda b: frame(b, with_lrc=True)),
                            st.binary(max_size=40).map(lambda b: len(b).to_bytes(2, "little") + b)),
                  max_size=30).map(b"".join)


def _buffers(framer) -> int:
    return sum(len(getattr(framer, name, b"")) for name in ("_buffer", "_garbage"))


@pytest.mark.parametrize("name", list(framers()))
@FUZZ
@given(data=stream, cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12))
def test_any_bytes_in_any_split_give_frame_items_and_bounded_buffers(name, data, cuts):
    framer = framers()[name]()
    items = []
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for start, end in zip(edges, edges[1:]):
        items += framer.feed(data[start:end])
        # A length-prefixed framer holds up to one record and its prefix; the others hold max_length.
        assert _buffers(framer) <= MAX + 4 + (end - start if name.startswith("length") else 0)
    items += framer.flush()
    for item in items:
        assert isinstance(item, (bytes, Ignored, int, ChecksumMismatch)), item
        if isinstance(item, Ignored):
            assert item.reason
    assert _buffers(framer) == 0 or not name.startswith("length")


@pytest.mark.parametrize("name", list(framers()))
@FUZZ
@given(data=stream, cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12))
def test_the_split_does_not_change_the_records(name, data, cuts):
    whole = framers()[name]()
    expected = whole.feed(data) + whole.flush()
    split = framers()[name]()
    got = []
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for start, end in zip(edges, edges[1:]):
        got += split.feed(data[start:end])
    got += split.flush()
    assert [i for i in got if isinstance(i, bytes)] == [i for i in expected if isinstance(i, bytes)]




@pytest.mark.parametrize("name", ["line", "line-nul", "stx", "stx-lrc",
                                  "length2", "length4"])
def test_ten_megabytes_without_a_delimiter_keep_memory_bounded(name):
    """10 MB of one byte that is neither delimiter nor frame byte, in 64 KiB chunks (a PBX printing
    garbage at line speed for hours). The framer's own buffer stays within its limit, and what it hands
    back per chunk is a few ``Ignored`` items of at most ``max_length`` bytes, so neither the process
    nor the quarantine table grows with the garbage faster than the garbage itself."""
    framer = {"line": lambda: LineFramer(max_length=1024), "line-nul": lambda: LineFramer(delimiters=b"\x00"),
              "stx": lambda: StxEtxFramer(), "stx-lrc": lambda: StxEtxFramer(with_lrc=True),
              "length2": lambda: LengthPrefixedFramer(size=2, max_length=4096),
              "length4": lambda: LengthPrefixedFramer(size=4, max_length=4096)}[name]()
    chunk = b"A" * 65536  # 0x41: no delimiter, no STX; as a length prefix 0x4141 / 0x41414141 > max_length
    most_items = most_bytes = 0
    for _ in range(160):  # 10 MiB
        items = framer.feed(chunk)
        assert _buffers(framer) <= 4096 + 4
        most_items = max(most_items, len(items))
        most_bytes = max(most_bytes, sum(len(i.raw) if isinstance(i, Ignored) else 8 for i in items))
        if name.startswith("length") and len(items) > 1000:
            break  # the failure is shown; no need to build a million Ignored items
    assert most_items <= 65536 // 1024 + 2, f"{name}: {most_items} items for one 64 KiB chunk of garbage"
    assert most_bytes <= 65536 + 4096, f"{name}: {most_bytes} bytes handed back for one 64 KiB chunk"
