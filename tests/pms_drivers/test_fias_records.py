"""FIAS record encode/decode (fias.md §1 record layout and encoding, §5 formats; Spec p.20-23)."""

from __future__ import annotations

import contextlib
from datetime import date, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.errors import ProtocolError
from pms_drivers.fias.records import (
    FiasRecord,
    MalformedRecordError,
    check_encoding,
    decode,
    encode,
    format_amount,
    format_date,
    format_duration,
    format_time,
    parse_amount,
    parse_date,
    parse_duration,
    parse_time,
    record,
)


def test_decode_posting_answer():
    """fias.md §3 example exchange (Spec p.85): PA fields in wire order."""
    rec = decode(b"PA|RN0412|ASOK|P#1042|DA250314|TI101205|")
    assert rec.kind == "PA"
    assert rec.fields == (("RN", "0412"), ("AS", "OK"), ("P#", "1042"), ("DA", "250314"), ("TI", "101205"))
    assert rec.get("RN") == "0412"  # leading zeros are data (Spec p.21)
    assert rec.get("CT") == ""
    assert rec.get("CT", "none") == "none"


def test_repeating_fields_keep_order():
    """fias.md §1 / Spec p.47: GC carries GS twice, one per room; both survive, in order."""
    rec = decode(b"GC|G#35869|GNSmith|RN312|GSN|RO332|GSY|")
    assert rec.get_all("GS") == ("N", "Y")
    assert rec.get("GS") == "N"
    assert [key for key, _ in rec.fields] == ["G#", "GN", "RN", "GS", "RO", "GS"]


def test_digit_and_symbol_field_ids():
    """fias.md §1: field ids are any two printable characters (A0, S1, $2, +0, G+), not only letters."""
    rec = decode(b"PR|A0x|S1100|$2abc|+0-5|G+77|P#9|")
    assert rec.get("A0") == "x"
    assert rec.get("S1") == "100"
    assert rec.get("$2") == "abc"
    assert rec.get("+0") == "-5"
    assert rec.get("G+") == "77"


def test_empty_field_and_has():
    """fias.md §1: a field id with no value means "empty"; the swap flag SF| is the standard example."""
    rec = decode(b"GI|RN101|SF|G#7|")
    assert rec.has("SF") and rec.get("SF") == ""
    assert not rec.has("GS")


def test_record_without_fields_and_lenient_ends():
    """Spec p.23: every field ends with '|'; a missing final '|' or a bare id is tolerated on receive."""
    assert decode(b"LA|") == FiasRecord("LA")
    assert decode(b"LA") == FiasRecord("LA")
    assert decode(b"LS|DA250314|TI101500") == FiasRecord("LS", (("DA", "250314"), ("TI", "101500")))
    assert decode(b"LS||DA250314|") == FiasRecord("LS", (("DA", "250314"),))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "shorter"),
        (b"L", "shorter"),
        (b"LSDA250314|", "not followed by '|'"),
        (b"L\x01|DA1|", "record id"),
        (b"PA|X|", "shorter than its 2-character field id"),
        (b"PA|\x05Aval|", "field id"),
        (b"PA|A val|", "field id"),
    ],
)
def test_malformed_records_raise_with_reason(raw, reason):
    """fias.md §1 record layout: anything else is not a FIAS record and must not pass silently."""
    with pytest.raises(MalformedRecordError) as info:
        decode(raw)
    assert reason in info.value.reason
    assert isinstance(info.value, ProtocolError) and isinstance(info.value, ValueError)
    assert info.value.raw == raw


@pytest.mark.parametrize("encoding", ["cp850", "cp1252", "latin-1", "utf-8"])
def test_round_trip_in_each_encoding(encoding):
    """fias.md §1: the code page is a site setting (cp850, cp1252, latin-1, utf-8)."""
    rec = record(
        "GI", ("RN", "0412"), ("G#", "35869"), ("GN", "Müller-Lüdenscheidt"), ("GF", "José"), ("SF", "")
    )
    assert decode(encode(rec, encoding), encoding) == rec


def test_encodings_differ_on_the_wire():
    """The same name gives different bytes in cp850 and utf-8 (fias.md §8 item 6, garbled names)."""
    rec = record("GI", ("GN", "Müller"))
    assert encode(rec, "cp850") == b"GI|GNM\x81ller|"
    assert encode(rec, "utf-8") == b"GI|GNM\xc3\xbcller|"
    assert (
        decode(b"GI|GNM\xc3\xbcller|", "cp850").get("GN") == "M├╝ller"
    )  # wrong code page: garbled, not lost


def test_undecodable_bytes_are_replaced_not_fatal():
    """A bad byte in a name must not cost a check-in: it decodes to U+FFFD."""
    assert decode(b"GI|RN1|GN\xffX|", "utf-8").get("GN") == "\ufffdX"


def test_encode_strips_controls_and_separator():
    """fias.md §1: never emit bytes < 0x20, 0x7F or '|' inside a value (Spec p.20-21)."""
    rec = record("PS", ("RN", "1\x0201"), ("CT", "a|b\r\nc\x03d\x7f"))
    assert encode(rec) == b"PS|RN101|CTabcd|"


def test_encode_truncates_ps_clear_text_to_20():
    """fias.md §3: PS CT is ANS 20 (Spec p.81); fias.md §8 item 6."""
    text = "International call to the United Kingdom"
    assert encode(record("PS", ("CT", text))) == b"PS|CT" + text[:20].encode() + b"|"
    # other record types are not cut: OPERA's PA text can exceed 50 characters
    assert encode(record("PA", ("CT", text))).endswith(text.encode() + b"|")


def test_encode_replaces_characters_missing_from_the_code_page():
    """A character the code page lacks becomes '?' instead of failing the posting."""
    assert encode(record("PS", ("CT", "Call €5 Ω")), "cp850") == b"PS|CTCall ?5 ?|"


def test_encode_rejects_bad_ids():
    """§1: record and field ids are exactly two printable characters, never the separator."""
    with pytest.raises(ValueError):
        encode(FiasRecord("P", ()))
    with pytest.raises(ValueError):
        encode(FiasRecord("PS", (("R|", "1"),)))


def test_record_helper_skips_none_and_str():
    """§1: an absent field is left out; a present one always ends with its separator."""
    rec = record("PS", ("RN", "101"), ("CT", None), ("P#", 5))
    assert rec.fields == (("RN", "101"), ("P#", "5"))
    assert str(rec) == "PS|RN101|P#5|"


def test_check_encoding():
    """§1: the code page is a site setting; it must keep the ASCII ids and separators as they are."""
    assert check_encoding("CP850") == "cp850"
    assert check_encoding("latin-1") == "iso8859-1"
    with pytest.raises(ValueError, match="unknown"):
        check_encoding("klingon")
    with pytest.raises(ValueError, match="ASCII"):
        check_encoding("utf-16")


def test_date_time_formats():
    """fias.md §5: DA = YYMMDD, TI = HHMMSS (Spec p.21, types D and T)."""
    stamp = datetime(2025, 3, 14, 10, 12, 3)
    assert format_date(stamp) == "250314"
    assert format_time(stamp) == "101203"
    assert parse_date("250314") == date(2025, 3, 14)
    assert parse_time("101203") == time(10, 12, 3)
    for bad in ("2503", "251314", "ab0314"):
        with pytest.raises(ValueError):
            parse_date(bad)
    with pytest.raises(ValueError):
        parse_time("246000")


def test_duration_format_and_clamp():
    """fias.md §5: DU is type T (HHMMSS), so calls of 24 h or more are clamped to 235959."""
    assert format_duration(0) == "000000"
    assert format_duration(225) == "000345"  # 3 min 45 s, the Spec's example
    assert format_duration(86399) == "235959"
    assert format_duration(86400) == "235959"
    assert format_duration(200000) == "235959"
    assert parse_duration("000345") == 225
    with pytest.raises(ValueError):
        format_duration(-1)
    with pytest.raises(ValueError):
        parse_duration("006000")


def test_amounts():
    """fias.md §3/§5: TA has no decimal point, two implied decimals by default, '-' for negatives;
    zero-decimal currencies still send two decimals, three-decimal currencies go as-is (FAQ p.110)."""
    assert format_amount(1050) == "1050"
    assert format_amount(-1050) == "-1050"
    assert format_amount(500, currency_exponent=0, ta_exponent=2) == "50000"  # 500 JPY
    assert format_amount(1250, currency_exponent=3, ta_exponent=3) == "1250"  # 1.250 KWD
    assert format_amount(1255, currency_exponent=3, ta_exponent=2) == "126"  # rounded half away from zero
    assert format_amount(-1255, currency_exponent=3, ta_exponent=2) == "-126"
    assert parse_amount("1050") == 1050
    assert parse_amount("-50000", currency_exponent=0) == -500
    with pytest.raises(ValueError):
        parse_amount("10.50")


_ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="|"),
    min_size=2,
    max_size=2,
)
_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="|\x7f"), max_size=30
)


@given(
    kind=_ids,
    fields=st.lists(st.tuples(_ids, _values), max_size=8),
    encoding=st.sampled_from(["cp1252", "latin-1", "utf-8"]),
)
def test_round_trip_property(kind, fields, encoding):
    """Any record of printable ids and clean values survives encode/decode (values the code page lacks
    aside: latin-1 and utf-8 cover U+0020-U+00FF; cp1252 lacks a few, which become '?')."""
    rec = FiasRecord(kind, tuple(fields))
    back = decode(encode(rec, encoding), encoding)
    assert back.kind == kind
    assert [key for key, _ in back.fields] == [key for key, _ in fields]
    if encoding != "cp1252":
        assert back == rec


@given(st.binary(max_size=200), st.sampled_from(["cp850", "utf-8"]))
def test_decode_hostile_bytes_only_raises_malformed(raw, encoding):
    """Garbage never raises anything but MalformedRecordError."""
    with contextlib.suppress(MalformedRecordError):
        decode(raw, encoding)
