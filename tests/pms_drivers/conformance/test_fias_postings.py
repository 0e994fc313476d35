"""Conformance, FIAS §3 posting records and §5 formats (Spec p.78-86, p.21, FAQ p.110; fias.md §3, §5).

PS posting modes (PT C + TA; PT T + MP; PT T + DU + DD), the TA decimal exponent, the optional fields
(PX trunk, PC call type, CT text, SO outlet, DA/TI of the call start), one PS in flight, PA matched by
P# only.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from appliance.errors import ProtocolError
from appliance.events import PostCharge, PostingAnswered
from pms_drivers.fias.link import FiasLink, FiasOptions
from pms_drivers.fias.peer import FiasPmsPeer
from pms_drivers.fias.peer_model import seeded_roster
from tests.pms_drivers.conformance.service_harness import Hotel
from tests.pms_drivers.fias_helpers import MODES, T0, alive_link

CHARGE = PostCharge(sequence=1042, room="0412", amount_minor=1275, start=datetime(2025, 3, 14, 10, 12, 3),
                    duration=192, dialled="00442071234567", trunk="3", call_type="I", text="Intl call", pulses=7)


@pytest.mark.parametrize(("options", "expected"), [
    (FiasOptions(), "PS|RN0412|PTC|TA1275|DU000312|DD00442071234567|PX3|PCI|CTIntl call|P#1042|DA250314|TI101203|"),
    (FiasOptions(posting_mode="T", t_method="pulses", send_du_dd=False),
     "PS|RN0412|PTT|MP7|PX3|PCI|CTIntl call|P#1042|DA250314|TI101203|"),
    (FiasOptions(posting_mode="T", t_method="duration", send_du_dd=False),  # DU+DD are required here
     "PS|RN0412|PTT|DU000312|DD00442071234567|PX3|PCI|CTIntl call|P#1042|DA250314|TI101203|"),
    (FiasOptions(send_px=False, send_pc=False, send_ct=False, send_da_ti=False, sales_outlet="12"),
     "PS|RN0412|PTC|TA1275|DU000312|DD00442071234567|P#1042|SO12|"),
    (FiasOptions(ta_exponent=3, currency_exponent=2), "PS|RN0412|PTC|TA12750|"),
    (FiasOptions(ta_exponent=2, currency_exponent=0), "PS|RN0412|PTC|TA127500|"),
])
def test_posting_modes_and_fields(options, expected):
    """§3 p.80-84: the PT modes and which fields go out, in the LR list too (§2: the PMS is told)."""
    link, wire = alive_link(options=options)
    link.send(CHARGE, T0)
    [sent] = wire.sent()
    assert sent.startswith(expected)
    fields = options.record_fields()["PS"]
    assert [part[:2] for part in sent.split("|")[1:-1]] == list(fields)


def test_da_ti_are_the_call_start_in_hotel_time():
    """§3 p.38 / §8 item 8: DA/TI carry the call start as the hotel's clock shows it; the outbox hands
    the start in UTC, the link shows it in the site's zone."""
    link = FiasLink(FiasOptions(), tz=ZoneInfo("America/New_York"))
    link.connection_made(T0)
    link.receive_data(b"\x02LS|\x03", T0)
    link.receive_data(b"\x02LA|\x03", T0)
    link.data_to_send()
    link.send(replace(CHARGE, start=datetime(2025, 3, 14, 3, 30, tzinfo=UTC)), T0)
    assert b"|DA250313|TI233000|" in link.data_to_send()


@pytest.mark.parametrize("mode", MODES)
def test_one_ps_in_flight_and_pa_by_p_number_only(mode):
    """§3 p.85: one PS in flight; the PA is matched by P# (never by room: sharers exist); a PA for
    another P# is reported for that P# only (a late answer, for the outbox), never matched to the posting
    in flight."""
    link, wire = alive_link(mode)
    link.send(CHARGE, T0)
    with pytest.raises(ProtocolError):
        link.send(replace(CHARGE, sequence=1043), T0)
    events = wire.pms("PA|RN0412|ASOK|P#1041|", "PA|RN0999|ASNG|P#1042|CTINVALID ROOM|", now=T0 + 1)
    assert events[0] == PostingAnswered(sequence=1041, status="OK", raw=b"PA|RN0412|ASOK|P#1041|")
    assert events[1] == PostingAnswered(sequence=1042, status="NG", text="INVALID ROOM",
                                        raw=b"PA|RN0999|ASNG|P#1042|CTINVALID ROOM|")
    assert link.ready_for_posting()


def test_ta_exponent_through_the_outbox(tmp_path):
    """§5 / FAQ p.110: a three-decimal TA from a Decimal amount, end to end through the outbox."""
    peer = FiasPmsPeer(tz=UTC, roster=seeded_roster(["101"]))
    hotel = Hotel(tmp_path / "a.db", options=FiasOptions(ta_exponent=3), peer=peer).start()
    hotel.advance(4)
    hotel.queue("101", amount="12.345")
    assert [p.amount for p in peer.postings] == ["12345"]
    assert hotel.states() == ["ok"]
    hotel.check()
