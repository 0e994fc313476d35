"""Fuzz the PMS side: the FIAS record decoder (``pms_drivers/fias/records.py``, Oracle FIAS 2.20.23
record syntax ``RI|FFvalue|...|``), the FIAS link (handshake, guest and answer records, LRC and ACK/NAK
when serial), the HOBIC and STX/ETX/BCC posting links (fias.md §7: the answers the PMS sends back) and
the simulators' decoders of those records (the PMS peers).

Outcome for any input: events, or ``ProtocolError`` (``MalformedRecordError`` is one) that makes the
adapter drop and reconnect; never another exception.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.errors import ProtocolError
from appliance.framing import frame
from appliance.registry import default_registry
from pms_drivers.fias.records import FiasRecord, decode, encode
from pms_drivers.hobic_peer import HobicPmsPeer
from pms_drivers.stx_peer import StxPmsPeer
from tests.fuzz import FUZZ
from tests.fuzz.mutate import mutated

REGISTRY = default_registry()
NOW = 1_741_947_300.0  # 2025-03-14 10:15 UTC

# Records a PMS sends (FIAS 2.20.23): link control, guest data, posting answers, database swap.
FIAS_SEEDS = [
    b"LS|DA250314|TI101500|", b"LA|DA250314|TI101500|", b"LE|DA250314|TI101500|", b"LD|DA250314|TI101500|V#2.20|",
    b"GI|RN101|G#4711|GNM\x81ller, J\x94rg|GSN|GA250313|GD250320|DA250314|TI101500|",
    b"GO|RN101|G#4711|GSN|DA250314|TI101500|", b"GC|RN102|G#4711|ROR101|GSN|DA250314|TI101500|",
    b"PA|P#17|ASOK|CTposted|RN101|DA250314|TI101500|", b"PA|P#18|ASRY|CTretry|DA250314|TI101500|",
    b"PA|P#19|ASNG|CTguest not found|RN999|", b"DS|DA250314|TI101500|", b"DE|DA250314|TI101500|",
    b"NS|DA250314|TI101500|", b"NE|DA250314|TI101500|", b"KA|DA250314|TI101500|",
]
fias_payload = st.one_of(mutated(FIAS_SEEDS), st.binary(max_size=120))


@FUZZ
@given(raw=fias_payload, encoding=st.sampled_from(["cp850", "cp1252", "latin-1", "utf-8"]))
def test_fias_decode_gives_a_record_or_malformed(raw, encoding) -> None:
    try:
        rec = decode(raw, encoding)
    except ProtocolError as exc:
        assert str(exc)
        return
    assert isinstance(rec, FiasRecord) and len(rec.kind) == 2
    # What decodes re-encodes and decodes to the same record (the sender and the simulator share it).
    again = decode(encode(rec, encoding), encoding)
    assert again.kind == rec.kind


@pytest.mark.parametrize("serial", [False, True], ids=["tcp", "serial"])
@FUZZ
@given(data=st.data())
def test_the_fias_link_gives_events_or_a_protocol_error(serial, data) -> None:
    spec = REGISTRY.get("pms", "fias")
    options = REGISTRY.options("pms", "fias", {"lrc": serial, "ack_nak": serial} if serial else {})
    link = spec.make_link(options)
    records = data.draw(st.lists(fias_payload, max_size=10))
    handshake = [b"LS|DA250314|TI101500|", b"LA|DA250314|TI101500|"] if data.draw(st.booleans()) else []
    stream = b"".join(frame(r, with_lrc=serial) for r in handshake + records)
    stream += data.draw(st.binary(max_size=20))
    cut = data.draw(st.integers(min_value=0, max_value=len(stream)))
    now = NOW
    try:
        link.connection_made(now)
        for chunk in (stream[:cut], stream[cut:]):
            link.receive_data(chunk, now)
            link.data_to_send()
            now += 1
            deadline = link.deadline()
            if deadline is not None:
                link.handle_timeout(max(now, deadline))
        link.connection_lost(now)
    except ProtocolError:
        pass


@pytest.mark.parametrize("name", ["hobic", "stx_posting"])
@FUZZ
@given(answers=st.lists(st.one_of(st.sampled_from([b"\x06", b"\x15", b"\x05", b"y", b"n", b"\r\n"]),
                                  st.binary(max_size=30)), max_size=20))
def test_the_serial_posting_links_take_any_answer_bytes(name, answers) -> None:
    from datetime import UTC, datetime

    from appliance.events import PostCharge

    spec = REGISTRY.get("pms", name)
    link = spec.make_link(REGISTRY.options("pms", name, {}))
    now = NOW
    charge = PostCharge(sequence=1, room="101", amount_minor=250, dialled="12125550100", duration=65,
                        start=datetime(2025, 3, 14, 10, 0, tzinfo=UTC))
    try:
        link.connection_made(now)
        for index, answer in enumerate(answers):
            if index % 4 == 0 and link.ready_for_posting():
                link.send(charge, now)
            link.receive_data(answer, now)
            link.data_to_send()
            now += 0.5
            deadline = link.deadline()
            if deadline is not None and deadline <= now:
                link.handle_timeout(now)
        link.connection_lost(now)
    except ProtocolError:
        pass


@pytest.mark.parametrize("peer_class", [HobicPmsPeer, StxPmsPeer], ids=["hobic", "stx_posting"])
@FUZZ
@given(data=st.data())
def test_the_simulated_pms_decodes_any_record_bytes(peer_class, data) -> None:
    """The PMS peers decode what the appliance sends (HOBIC lines, STX/ETX/BCC frames); fed anything,
    they answer or ignore it."""
    name = "hobic" if peer_class is HobicPmsPeer else "stx_posting"
    from datetime import UTC, datetime

    from appliance.events import PostCharge

    module = __import__(f"pms_drivers.{name}", fromlist=["encode_record"])
    options = REGISTRY.options("pms", name, {})
    charge = PostCharge(sequence=7, room="101", amount_minor=250, dialled="12125550100", duration=65,
                        start=datetime(2025, 3, 14, 10, 0, tzinfo=UTC))
    good = module.encode_record(options, charge)
    chunks = data.draw(st.lists(st.one_of(mutated([good, b"\x05", good + b"\x05"]), st.binary(max_size=60)),
                                max_size=8))
    peer = peer_class(options)
    now = NOW
    try:
        peer.connection_made(now)
        for chunk in chunks:
            peer.receive_data(chunk, now)
            peer.data_to_send()
            now += 1
        peer.connection_lost(now)
    except ProtocolError:
        pass
