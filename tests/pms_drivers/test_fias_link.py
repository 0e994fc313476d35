"""The FIAS vendor link as scripted dialogues with explicit ``now=``.

Every dialogue runs three ways (``mode``): the PMS's bytes whole, one byte at a time, and followed by
trailing bytes of a frame still to come. Section and page references are to fias.md and the Spec
(Oracle HGBU-IFC8-FIAS Interface Specification 2.20.23) it summarises.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import pytest

from appliance.errors import ProtocolError
from appliance.events import (
    GuestChanged,
    GuestCheckedIn,
    GuestCheckedOut,
    Ignored,
    LinkDown,
    LinkReady,
    LinkUp,
    NightAuditEnded,
    NightAuditStarted,
    PostCharge,
    PostingAnswered,
    PostingUnanswered,
    RequestResync,
    ResyncEnded,
    ResyncStarted,
)
from pms_drivers.fias.link import FiasLink, FiasOptions, State
from tests.pms_drivers.fias_helpers import MODES, T0, UTC, Wire, alive_link

EXPECTED_LR = [
    "LR|RIGI|FLRNG#GSGNGFGLGASFDATI|",
    "LR|RIGO|FLRNG#GSSFDATI|",
    "LR|RIGC|FLRNG#GSGNGFGLRODATI|",
    "LR|RIPS|FLRNPTTADUDDPXPCCTP#DATI|",
    "LR|RIPA|FLRNASCTP#DATI|",
    "LR|RINS|FLDATI|",
    "LR|RINE|FLDATI|",
]


def charge(sequence: int = 1042, room: str = "0412", **overrides) -> PostCharge:
    charge = PostCharge(
        sequence=sequence,
        room=room,
        amount_minor=1275,
        start=datetime(2025, 3, 14, 10, 12, 3),
        duration=192,
        dialled="00442071234567",
        trunk="3",
        call_type="international",
        text="Intl call",
    )
    return replace(charge, **overrides)


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


# ---------------------------------------------------------------- §2 handshake


def test_handshake(mode):
    """§2 (Spec p.25-29): IFC8 sends LS first; we answer LD (DA/TI/V#/IF), one LR per record type, LA;
    the PMS's LA makes the link alive."""
    link = FiasLink(FiasOptions(), tz=UTC)
    wire = Wire(link, mode)
    assert link.connection_made(T0) == [LinkUp(detail="connected; waiting for the PMS's LS")]
    assert wire.sent() == []
    assert link.deadline() == T0 + 3.0  # listen before opening
    assert wire.pms("LS|DA250314|TI101500|", now=T0 + 1) == []
    assert wire.sent() == ["LD|DA250314|TI101501|V#0.1.0|IFPB|", *EXPECTED_LR, "LA|DA250314|TI101501|"]
    assert link.state is State.DESCRIBING
    assert not link.ready_for_posting()
    assert wire.pms("LA|DA250314|TI101501|", now=T0 + 2) == [LinkReady(detail="link alive")]
    assert link.state is State.ALIVE and link.ready_for_posting()
    assert link.deadline() == T0 + 2 + 300.0  # next: the keep-alive


def test_lr_field_lists_follow_the_options():
    """§2/§3: LR lists exactly the PS fields sent (PT C + TA, or PT T + MP, or DU + DD); P# is always in
    the PA list or IFC8 will not echo it (§8 item 7); DR/DS/DE need no LR."""
    fields = FiasOptions().record_fields()
    assert "P#" in fields["PA"] and set(fields) == {"GI", "GO", "GC", "PS", "PA", "NS", "NE"}
    pulses = FiasOptions(
        posting_mode="T",
        t_method="pulses",
        send_px=False,
        send_pc=False,
        send_ct=False,
        sales_outlet="12",
        night_audit_records=False,
    )
    assert pulses.posting_fields() == ("RN", "PT", "MP", "DU", "DD", "P#", "DA", "TI", "SO")
    assert set(pulses.record_fields()) == {"GI", "GO", "GC", "PS", "PA"}
    duration = FiasOptions(posting_mode="T")
    assert duration.posting_fields() == ("RN", "PT", "DU", "DD", "PX", "PC", "CT", "P#", "DA", "TI")


def test_listen_then_open_with_ls_and_pms_answers_ls(mode):
    """§2: listen about 3 s; if nothing arrives the vendor opens with LS. An IFC8 whose link never started
    answers LS, which we answer with the full LD/LR/LA."""
    link = FiasLink(FiasOptions(), tz=UTC)
    wire = Wire(link, mode)
    link.connection_made(T0)
    assert link.handle_timeout(T0 + 2.9) == [] and wire.sent() == []
    assert link.handle_timeout(T0 + 3) == []
    assert wire.sent() == ["LS|DA250314|TI101503|"]
    assert link.state is State.OPENING
    assert wire.pms("LS|DA250314|TI101504|", now=T0 + 4) == []
    assert wire.sent()[0].startswith("LD|")
    assert wire.pms("LA|", now=T0 + 5) == [LinkReady(detail="link alive")]


def test_listen_then_open_and_pms_answers_la(mode):
    """§2: an IFC8 whose side of the link is already active answers our LS with LA."""
    link = FiasLink(FiasOptions(), tz=UTC)
    wire = Wire(link, mode)
    link.connection_made(T0)
    link.handle_timeout(T0 + 3)
    assert wire.sent() == ["LS|DA250314|TI101503|"]
    assert wire.pms("LA|DA250314|TI101503|", now=T0 + 4) == [
        LinkReady(detail="the PMS answered our LS with LA: link already alive")
    ]
    assert link.ready_for_posting()


def test_opening_unanswered_fails_the_link(mode):
    """§2: a PMS that answers neither LS nor anything else within answer_timeout: give up and reconnect."""
    link = FiasLink(FiasOptions(), tz=UTC)
    link.connection_made(T0)
    link.handle_timeout(T0 + 3)
    assert link.deadline() == T0 + 33
    assert link.handle_timeout(T0 + 33) == [LinkDown(reason="the PMS did not answer our LS within 30 s")]
    assert link.wants_close and link.state is State.FAILED
    assert link.deadline() is None
    assert link.connection_lost(T0 + 34) == []  # LinkDown was already reported
    assert link.state is State.CLOSED


def test_no_la_after_link_description_fails(mode):
    """§2: without the PMS's LA the link never goes alive (StayConnect saw Protel never answer); after
    answer_timeout the link gives up so the service reconnects."""
    link = FiasLink(FiasOptions(), tz=UTC)
    wire = Wire(link, mode)
    link.connection_made(T0)
    wire.pms("LS|", now=T0)
    assert link.handle_timeout(T0 + 29) == []
    assert link.handle_timeout(T0 + 30) == [
        LinkDown(reason="the PMS did not answer our LD/LR/LA within 30 s")
    ]
    assert link.wants_close


def test_pms_repeating_ls_gets_the_description_again(mode):
    """§2: Protel kept resending LS until it had the LRs; every LS gets a full LD/LR/LA."""
    link = FiasLink(FiasOptions(), tz=UTC)
    wire = Wire(link, mode)
    link.connection_made(T0)
    wire.pms("LS|", now=T0)
    assert len(wire.sent()) == 9
    wire.pms("LS|", now=T0 + 10)
    assert len(wire.sent()) == 9
    assert link.deadline() == T0 + 40


# ---------------------------------------------------------------- §2 keep-alive


def test_keepalive_ls_after_idle_and_la_reply(mode):
    """§2 keep-alive: after 300 s without traffic send LS; IFC8 answers LA while alive (Spec p.28)."""
    link, wire = alive_link(mode)
    assert link.deadline() == T0 + 300
    assert link.handle_timeout(T0 + 299) == [] and wire.sent() == []
    assert link.handle_timeout(T0 + 300) == []
    assert wire.sent() == ["LS|DA250314|TI102000|"]
    assert link.deadline() == T0 + 330  # LA due
    assert wire.pms("LA|DA250314|TI102001|", now=T0 + 301) == []
    assert link.deadline() == T0 + 601
    assert link.ready_for_posting()


def test_traffic_postpones_the_keepalive(mode):
    """§2: the LS probe is for an idle link; anything heard from the PMS proves it alive."""
    link, wire = alive_link(mode)
    wire.pms("GI|RN101|G#1|GNA|", now=T0 + 200)
    assert link.handle_timeout(T0 + 300) == [] and wire.sent() == []
    assert link.deadline() == T0 + 500


def test_no_la_to_keepalive_takes_the_link_down(mode):
    """§2: no LA to our LS within answer_timeout: the link is dead; a posting in flight has an unknown
    fate."""
    link, wire = alive_link(mode)
    link.send(charge(sequence=5), T0 + 299)
    wire.sent()
    wire.pms("PA|ASOK|P#5|", now=T0 + 299.5)  # answered, so the keep-alive restarts from here
    link.handle_timeout(T0 + 599.5)
    assert wire.sent() == ["LS|DA250314|TI102459|"]
    link.send(charge(sequence=6), T0 + 600)
    assert link.handle_timeout(T0 + 629.5) == [
        LinkDown(reason="no LA within 30 s of our keep-alive LS"),
        PostingUnanswered(
            sequence=6, reason="link failed while awaiting the answer: no LA within 30 s of our keep-alive LS"
        ),
    ]
    assert link.wants_close
    assert wire.pms("PA|ASOK|P#6|", now=T0 + 630) == []  # the link is closing: input is moot
    with pytest.raises(ProtocolError):
        link.send(charge(sequence=7), T0 + 631)


# ---------------------------------------------------------------- §3 postings


def test_posting_and_answer_matched_by_p_number(mode):
    """§3 (Spec p.80-85): PS carries RN PT TA DU DD PX PC CT P# DA/TI (= call start); the PA echoes P#,
    the only correlation key."""
    link, wire = alive_link(mode)
    link.send(charge(), T0 + 10)
    assert wire.sent() == [
        ("PS|RN0412|PTC|TA1275|DU000312|DD00442071234567|PX3|PCI|CTIntl call|P#1042|DA250314|TI101203|")
    ]
    assert link.in_flight == 1042 and not link.ready_for_posting()
    assert link.deadline() == T0 + 40
    events = wire.pms("PA|RN0412|ASOK|P#1042|DA250314|TI101205|", now=T0 + 12)
    assert events == [
        PostingAnswered(sequence=1042, status="OK", text="", raw=b"PA|RN0412|ASOK|P#1042|DA250314|TI101205|")
    ]
    assert link.in_flight is None and link.ready_for_posting()


def test_failure_answer_and_leading_zero_p_number(mode):
    """§3: ASNG with CT INVALID ROOM; an OPERA log showed P#0001, which is P# 1."""
    link, wire = alive_link(mode)
    link.send(charge(sequence=1), T0)
    events = wire.pms("PA|RN0999|ASNG|P#0001|CTINVALID ROOM|", now=T0 + 1)
    assert events == [
        PostingAnswered(
            sequence=1, status="NG", text="INVALID ROOM", raw=b"PA|RN0999|ASNG|P#0001|CTINVALID ROOM|"
        )
    ]


def test_pa_for_another_p_number_is_never_matched_to_the_one_in_flight(mode):
    """§3 / §8 item 1: a PA whose P# is not in flight (late, duplicate) must never be matched to the
    posting that is; never correlate by RN. It is reported for its own P# (the outbox decides)."""
    link, wire = alive_link(mode)
    link.send(charge(sequence=8), T0)
    [event] = wire.pms("PA|RN0412|ASOK|P#7|", now=T0 + 1)
    assert event == PostingAnswered(sequence=7, status="OK", raw=b"PA|RN0412|ASOK|P#7|")
    assert link.in_flight == 8 and not link.ready_for_posting()
    [event] = wire.pms("PA|RN0412|ASOK|", now=T0 + 2)
    assert isinstance(event, Ignored) and "without P#" in event.reason
    [event] = wire.pms("PA|ASOK|P#x8|", now=T0 + 2)
    assert isinstance(event, Ignored) and "not a number" in event.reason
    assert wire.pms("PA|ASOK|P#8|", now=T0 + 3)[0] == PostingAnswered(
        sequence=8, status="OK", raw=b"PA|ASOK|P#8|"
    )


def test_answer_timeout_then_next_posting_and_late_pa(mode):
    """§3 (Spec p.24): wait >= 30 s for the PA; then the posting is unanswered (delivery unknown), the link
    takes the next one, and the late PA of the first is reported for P# 1, not matched to the second."""
    link, wire = alive_link(mode)
    link.send(charge(sequence=1), T0)
    assert link.handle_timeout(T0 + 29.9) == []
    assert link.handle_timeout(T0 + 30) == [PostingUnanswered(sequence=1, reason="no answer within 30 s")]
    assert link.ready_for_posting()
    link.send(charge(sequence=2), T0 + 31)
    late = PostingAnswered(sequence=1, status="OK", raw=b"PA|ASOK|P#1|")
    assert wire.pms("PA|ASOK|P#1|", now=T0 + 32) == [late]
    assert link.in_flight == 2
    assert wire.pms("PA|ASOK|P#2|", now=T0 + 33)[0].sequence == 2


def test_duplicate_pa_does_not_answer_the_next_posting(mode):
    """§8 item 3: a repeated PA is reported again for its own P# (the outbox notes it, changes nothing);
    the next posting in flight still awaits its own answer."""
    link, wire = alive_link(mode)
    link.send(charge(sequence=3), T0)
    events = wire.pms("PA|ASOK|P#3|", now=T0 + 1)
    assert events == [PostingAnswered(sequence=3, status="OK", raw=b"PA|ASOK|P#3|")]
    link.send(charge(sequence=4), T0 + 2)
    assert wire.pms("PA|ASOK|P#3|", now=T0 + 3)[0].sequence == 3
    assert link.in_flight == 4


def test_only_one_posting_in_flight_and_not_before_alive():
    """§3 (Spec p.85): only one PS in flight; nothing before the link is alive."""
    link = FiasLink(FiasOptions(), tz=UTC)
    link.connection_made(T0)
    with pytest.raises(ProtocolError, match="listening"):
        link.send(charge(), T0)
    link, _wire = alive_link()
    link.send(charge(sequence=1), T0)
    with pytest.raises(ProtocolError, match="awaiting its answer"):
        link.send(charge(sequence=2), T0)
    with pytest.raises(ValueError, match="P#"):
        alive_link()[0].send(charge(sequence=0), T0)
    with pytest.raises(TypeError):
        link.send("PS|", T0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            FiasOptions(posting_mode="T", t_method="pulses", send_pc=False),
            "PS|RN0412|PTT|MP7|DU000312|DD00442071234567|PX3|CTIntl call|P#1042|DA250314|TI101203|",
        ),
        (
            FiasOptions(posting_mode="T", sales_outlet="3", send_ct=False, send_px=False),
            "PS|RN0412|PTT|DU000312|DD00442071234567|PCI|P#1042|DA250314|TI101203|SO3|",
        ),
        (
            FiasOptions(currency_exponent=0),
            "PS|RN0412|PTC|TA127500|DU000312|DD00442071234567|PX3|PCI|CTIntl call|P#1042|DA250314|TI101203|",
        ),
    ],
)
def test_posting_modes(options, expected):
    """§3: PT C + TA, PT T + MP, or PT T + DU + DD; SO when set; TA with two decimals for a zero-decimal
    currency (FAQ p.110)."""
    link, wire = alive_link(options=options)
    link.send(charge(pulses=7), T0)
    assert wire.sent() == [expected]


def test_refund_and_hostile_text():
    """§3/§5: negative TA starts with '-'; CT is cleaned of '|' and control bytes and cut to 20; DD is
    digits only; a call of 24 h or more is clamped to DU235959."""
    link, wire = alive_link()
    link.send(
        charge(
            sequence=9,
            amount_minor=-340,
            dialled="+44 (20) 7123",
            duration=90000,
            trunk="T-12",
            call_type="",
            text="Refund|for\r\nwrong call to London",
        ),
        T0,
    )
    assert wire.sent() == [
        ("PS|RN0412|PTC|TA-340|DU235959|DD44207123|PX12|CTRefundforwrong call |P#9|DA250314|TI101203|")
    ]


def test_connection_lost_with_posting_in_flight(mode):
    """§8 item 1: a posting sent without its PA when the link drops is unknown, never resent."""
    link, _ = alive_link(mode)
    link.send(charge(sequence=4), T0)
    assert link.connection_lost(T0 + 1) == [
        LinkDown(reason="connection lost"),
        PostingUnanswered(sequence=4, reason="link dropped while awaiting the answer"),
    ]
    assert link.state is State.CLOSED and link.deadline() is None
    assert link.connection_lost(T0 + 2) == []
    assert link.connection_made(T0 + 5) == [LinkUp(detail="connected; waiting for the PMS's LS")]


def test_connection_lost_without_posting():
    """§8 item 2: a dropped link is reported once, with nothing unanswered."""
    link, _ = alive_link()
    assert link.connection_lost(T0) == [LinkDown(reason="connection lost")]


def test_ls_while_alive_restarts_the_handshake(mode):
    """§2: any LS from IFC8 means it restarted: answer with the full LD/LR/LA; the posting in flight is
    reported unanswered and no posting goes out until the PMS's LA."""
    link, wire = alive_link(mode)
    link.send(charge(sequence=11), T0)
    wire.sent()
    events = wire.pms("LS|DA250314|TI101600|", now=T0 + 60)
    assert events == [
        PostingUnanswered(sequence=11, reason="the PMS restarted (LS) while the posting awaited its answer")
    ]
    sent = wire.sent()
    assert sent[0].startswith("LD|") and sent[-1].startswith("LA|") and len(sent) == 9
    assert not link.ready_for_posting()
    late = PostingAnswered(sequence=11, status="OK", raw=b"PA|ASOK|P#11|")
    assert wire.pms("PA|ASOK|P#11|", now=T0 + 61) == [late]
    assert wire.pms("LA|", now=T0 + 62) == [LinkReady(detail="link alive")]
    assert link.ready_for_posting()


# ---------------------------------------------------------------- §4 guests and resync


def test_resync_dialogue(mode):
    """§4 (Spec p.36-38): DR -> DS, GI/GO with SF, DE; send nothing in between (a PA may come back behind
    resync records)."""
    link, wire = alive_link(mode)
    link.send(RequestResync(), T0)
    assert wire.sent() == ["DR|DA250314|TI101500|"]
    assert not link.ready_for_posting()  # until the PMS starts (or ignores) the resync
    assert wire.pms("DS|", now=T0 + 1) == [ResyncStarted(raw=b"DS|")]
    assert not link.ready_for_posting() and link.state is State.RESYNC
    with pytest.raises(ProtocolError, match="resync"):
        link.send(charge(), T0 + 1)
    events = wire.pms(
        "GI|RN101|G#1|GNSmith|GFAnn|GSN|GA250312|SF|", "GO|RN102|SF|", "GI|RN103|G#3|GNLee|", now=T0 + 2
    )
    assert events == [
        GuestCheckedIn(
            room="101",
            guest_id="1",
            name="Smith, Ann",
            share=False,
            resync=True,
            arrival=date(2025, 3, 12),  # GA: the stay began on the arrival day, not at the resync
            raw=b"GI|RN101|G#1|GNSmith|GFAnn|GSN|GA250312|SF|",
        ),
        GuestCheckedOut(room="102", resync=True, raw=b"GO|RN102|SF|"),
        GuestCheckedIn(
            room="103", guest_id="3", name="Lee", raw=b"GI|RN103|G#3|GNLee|"
        ),  # real-time, mixed in
    ]
    assert wire.pms("DE|", now=T0 + 3) == [ResyncEnded(raw=b"DE|"), LinkReady(detail="resync ended")]
    assert link.ready_for_posting()


def test_ignored_resync_request_frees_the_link(mode):
    """§4: newer PMSs silently ignore redundant DR; after answer_timeout postings may go again."""
    link, _wire = alive_link(mode)
    link.send(RequestResync(), T0)
    assert link.handle_timeout(T0 + 30) == [
        LinkReady(detail="no DS within 30 s of our DR: the PMS ignored the resync request")
    ]
    assert link.ready_for_posting()


def test_resync_without_de_fails_the_link(mode):
    """§4: a resync that never ends would block postings forever; give up after resync_timeout."""
    link, wire = alive_link(mode, FiasOptions(resync_timeout=120))
    wire.pms("DS|", now=T0)
    link.handle_timeout(T0 + 100)
    wire.pms("LA|", now=T0 + 100)
    assert link.handle_timeout(T0 + 120) == [LinkDown(reason="no DE within 120 s of DS")]
    assert link.wants_close


def test_guest_records_without_envelope_and_stray_de(mode):
    """§4: Protel streams GI on link-up with no DS/DE envelope; accept them. A DE without DS is ignored."""
    _link, wire = alive_link(mode)
    assert wire.pms("GI|RN0412|G#9|GNDoe|", now=T0) == [
        GuestCheckedIn(room="0412", guest_id="9", name="Doe", raw=b"GI|RN0412|G#9|GNDoe|")
    ]
    [event] = wire.pms("DE|", now=T0)
    assert isinstance(event, Ignored) and event.reason == "DE without DS"


def test_sharers_and_room_move(mode):
    """§4 (Spec p.39-47): GS share flags; GC with RO is a move, each GS following the room it describes;
    GC without RO is a data change; GO carries G# and GS, never a name."""
    _link, wire = alive_link(mode)
    events = wire.pms(
        "GI|RN332|G#35868|GNSmith|GFJo|GSN|",
        "GI|RN332|G#35869|GNSmith|GFAl|GSY|",
        "GC|G#35869|GNSmith|RN312|GSN|RO332|GSY|",
        "GC|RN312|G#35869|GNSmith-Jones|GSN|",
        "GO|RN332|G#35868|GSN|",
        now=T0,
    )
    assert [(type(e), e.room, e.guest_id) for e in events] == [
        (GuestCheckedIn, "332", "35868"),
        (GuestCheckedIn, "332", "35869"),
        (GuestChanged, "312", "35869"),
        (GuestChanged, "312", "35869"),
        (GuestCheckedOut, "332", "35868"),
    ]
    assert events[1].share is True and events[0].share is False
    move = events[2]
    assert (move.old_room, move.share, move.old_room_share, move.name) == ("332", False, True, "Smith")
    change = events[3]
    assert (change.old_room, change.name, change.share) == ("", "Smith-Jones", False)
    assert events[4].share is False


def test_arrival_date(mode):
    """§4 (Spec p.40): GA is the arrival date (type D); a GA that is no date leaves arrival unknown but the
    check-in still counts."""
    _link, wire = alive_link(mode)
    events = wire.pms("GI|RN1|G#1|GA250301|", "GI|RN2|G#2|GA2503|", now=T0)
    assert [e.arrival for e in events] == [date(2025, 3, 1), None]


def test_guest_record_without_room_is_ignored(mode):
    """§4 (Spec p.39): RN is what a GI is about; without it the record is Ignored, not guessed."""
    _link, wire = alive_link(mode)
    [event] = wire.pms("GI|G#1|GNX|", now=T0)
    assert event == Ignored(reason="GI without RN", raw=b"GI|G#1|GNX|")


def test_night_audit(mode):
    """NS/NE (fias.md §4 "Related"): events only; postings stay allowed (an NA answer is the caller's
    business, §8 item 4)."""
    link, wire = alive_link(mode)
    assert wire.pms("NS|DA250314|TI020000|", now=T0) == [NightAuditStarted(raw=b"NS|DA250314|TI020000|")]
    assert link.night_audit and link.ready_for_posting()
    link.send(charge(sequence=12), T0)
    assert wire.pms("PA|ASNA|P#12|", now=T0 + 1) == [
        PostingAnswered(sequence=12, status="NA", raw=b"PA|ASNA|P#12|")
    ]
    assert wire.pms("NE|", now=T0 + 2) == [NightAuditEnded(raw=b"NE|")]
    assert not link.night_audit


def test_link_end_from_the_pms(mode):
    """§2: LE from the PMS: answer LE, the link is down (charges wait), a posting in flight is unanswered;
    the next contact resumes the link even without LS."""
    link, wire = alive_link(mode)
    link.send(charge(sequence=13), T0)
    wire.sent()
    assert wire.pms("LE|", now=T0 + 1) == [
        LinkDown(reason="PMS sent LE"),
        PostingUnanswered(sequence=13, reason="the PMS sent LE while the posting awaited its answer"),
    ]
    assert wire.sent() == ["LE|DA250314|TI101501|"]
    assert link.state is State.ENDED and not link.ready_for_posting() and not link.wants_close
    assert wire.pms("GI|RN1|G#2|", now=T0 + 5) == [
        LinkReady(detail="the PMS resumed after LE"),
        GuestCheckedIn(room="1", guest_id="2", raw=b"GI|RN1|G#2|"),
    ]
    assert link.ready_for_posting()
    wire.pms("LE|", now=T0 + 6)
    assert link.connection_lost(T0 + 7) == []  # down was reported with the LE


def test_keepalive_after_link_end(mode):
    """§2: after an LE the keep-alive LS still probes the PMS; its LA resumes the link, and the answered
    probe does not later count as missing."""
    link, wire = alive_link(mode)
    wire.pms("LE|", now=T0)
    wire.sent()
    link.handle_timeout(T0 + 300)
    assert wire.sent() == ["LS|DA250314|TI102000|"]
    assert wire.pms("LA|", now=T0 + 301) == [LinkReady(detail="the PMS resumed after LE")]
    assert link.handle_timeout(T0 + 331) == [] and not link.wants_close
    assert link.deadline() == T0 + 601


def test_ls_after_link_end_restarts(mode):
    """§2: after LE, IFC8 reopens and sends LS again."""
    _link, wire = alive_link(mode)
    wire.pms("LE|", now=T0)
    wire.pms("LS|", now=T0 + 2)
    assert len(wire.sent()) == 10  # our LE, then LD + 7 LR + LA
    assert wire.pms("LA|", now=T0 + 3) == [LinkReady(detail="link alive")]


# ---------------------------------------------------------------- robustness


def test_unknown_malformed_and_garbage(mode):
    """§1: unknown record types, malformed records and bytes outside frames become Ignored, never errors."""
    link, wire = alive_link(mode)
    [unknown] = wire.pms("WR|RN101|DA250314|TI070000|", now=T0)
    assert unknown.quarantine is False and "WR" in unknown.reason
    [bad] = wire.pms("P", now=T0)
    assert isinstance(bad, Ignored) and bad.reason.startswith("malformed FIAS record")
    assert [type(e) for e in wire.raw(b"noise\x02GI|RN5|\x03", now=T0)] == [Ignored, GuestCheckedIn]
    [la] = wire.pms("LA|", now=T0)
    assert la.quarantine is False  # an LA we did not ask for is harmless
    assert link.ready_for_posting()


def test_stray_control_bytes_between_frames_are_tolerated(mode):
    """§1 caveat: without ACK/NAK a receiver tolerates stray ACK/NAK/ENQ between frames, and CR/LF."""
    _link, wire = alive_link(mode)
    assert wire.raw(b"\x06\x15\x05\r\n\x02GO|RN7|\x03\x06", now=T0) == [
        GuestCheckedOut(room="7", raw=b"GO|RN7|")
    ]
    assert wire.sent() == []


def test_utf8_names():
    """§1: with encoding utf-8 the PMS's names decode as UTF-8."""
    _link, wire = alive_link(options=FiasOptions(encoding="utf-8"))
    assert wire.raw("\x02GI|RN1|GNMüller|\x03".encode(), now=T0)[0].name == "Müller"


def test_state_machine_guards():
    """Illegal transitions and calls in the wrong state raise ProtocolError (ARCHITECTURE rule 8)."""
    link = FiasLink()
    with pytest.raises(ProtocolError):
        link.receive_data(b"\x02LS|\x03", T0)
    link.connection_made(T0)
    with pytest.raises(ProtocolError, match="illegal"):
        link.connection_made(T0)
    with pytest.raises(ProtocolError):
        link.send(RequestResync(), T0)


def test_handle_timeout_early_is_harmless(mode):
    """§3 (Spec p.24): the 30 s answer timer is not cut short by an early wake-up."""
    link, _wire = alive_link(mode)
    link.send(charge(sequence=1), T0)
    assert link.handle_timeout(T0 + 1) == [] and link.in_flight == 1


def test_spec_registers_and_options_build():
    """The entry point's DriverSpec validates, and options come from YAML mappings (unknown keys fail)."""
    from appliance.registry import validate_spec
    from appliance.schema import build
    from pms_drivers.fias.link import SPEC

    assert validate_spec(SPEC) == []
    assert isinstance(SPEC.make_link(FiasOptions()), FiasLink)
    problems: list = []
    options = build(
        FiasOptions, {"encoding": "utf-8", "posting_mode": "T", "answer_timeout": 45}, "o", problems
    )
    assert problems == [] and options.answer_timeout == 45.0
    build(FiasOptions, {"encodng": "utf-8"}, "o", problems)
    assert problems and "did you mean 'encoding'" in problems[0][1]
    problems = []
    build(FiasOptions, {"vendor_version": "x" * 11}, "o", problems)
    assert problems and "vendor_version" in problems[0][1]
