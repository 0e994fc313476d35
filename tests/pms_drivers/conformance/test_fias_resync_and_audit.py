"""Conformance through the daemon's PMS service: FIAS §4 resync (DR/DS/DE, Spec p.36-38) and night audit
(NS/NE) with the posting answers of §3 (AS codes, Spec p.111-112; fias.md §8 item 4).

- DR only after data loss (a database that never held a stay) or an administrator's request
  (``appliance pms resync``), never on every start; noticed while the link is up; never with a PS in
  flight; nothing sent between DS and DE; GI records without a DS/DE envelope accepted.
- NS ... NE holds postings; an NA answer waits until NE; RY retries with backoff; UR, NG, NP, DN and IA
  fail with the PMS's text kept and are never resent.
"""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from appliance.commands.pms import request_resync
from appliance.framing import frame
from pms_drivers.fias.peer import FiasPmsPeer
from pms_drivers.fias.peer_model import parse_fault, seeded_roster
from tests.pms_drivers.conformance.service_harness import Hotel


def _resyncs(hotel: Hotel) -> int:
    return sum(1 for e in hotel.peer_events if "resync requested" in getattr(e, "text", ""))


def _hotel(tmp_path, rooms=("101", "102", "103"), **kwargs) -> Hotel:
    peer = FiasPmsPeer(tz=UTC, roster=seeded_roster(list(rooms)))
    hotel = Hotel(tmp_path / "a.db", peer=peer, **kwargs).start()
    hotel.advance(4)
    return hotel


def test_dr_after_data_loss_only_not_on_every_start(tmp_path):
    """p.36-38: a new install (no stay ever) asks once; a restart with guests known does not ask again."""
    hotel = _hotel(tmp_path)
    assert _resyncs(hotel) == 1
    assert len(hotel.stays()) == 3
    hotel.stop()
    again = Hotel(tmp_path / "a.db", peer=hotel.peer, fresh_db=False).start()
    again.advance(10)
    assert any("link alive" in getattr(e, "text", "") for e in again.peer_events)
    assert _resyncs(again) == 0  # no second DR
    again.check()


def test_admin_resync_is_noticed_while_the_link_is_up(tmp_path):
    """An administrator's request (``appliance pms resync``) reaches a running daemon on its periodic wake,
    and waits for the PA of the posting in flight (a PA must not come back behind resync records)."""
    hotel = _hotel(tmp_path)
    hotel.peer.faults.queue(parse_fault("late-pa=8"))
    hotel.queue("101")
    assert request_resync(hotel.sessions, "pms", "admin", hotel.utc())
    hotel.advance(6)
    assert _resyncs(hotel) == 1  # not yet: P# 1 awaits its PA
    hotel.advance(6)
    assert hotel.states() == ["ok"] and _resyncs(hotel) == 2
    hotel.check()


def test_nothing_is_sent_during_a_resync_and_records_without_envelope_count(tmp_path):
    """p.38: between DS and DE no posting goes out; GI records with no DS/DE envelope (Protel on
    link-up, fias.md §4) are applied like any other."""
    hotel = _hotel(tmp_path, rooms=())
    hotel.pms_says(frame(b"DS|"))
    hotel.queue("101")
    hotel.advance(20)
    assert hotel.peer.postings == []
    hotel.pms_says(frame(b"GI|RN101|G#9|GNLate|SF|") + frame(b"DE|"))
    hotel.advance(2)
    assert len(hotel.peer.postings) == 1
    hotel.peer.check_in("105", "77", "Early", now=hotel.now)
    hotel.peer.restate(hotel.now)
    hotel.settle()
    assert ("105", "77", True) in hotel.stays() and ("101", "9", True) in hotel.stays()
    hotel.check()


def test_night_audit_holds_postings_until_ne(tmp_path):
    """NS ... NE: postings wait; NE releases them."""
    hotel = _hotel(tmp_path)
    hotel.peer.start_night_audit(hotel.now)
    hotel.settle()
    hotel.queue("101", "102")
    hotel.advance(120)
    assert hotel.peer.postings == [] and hotel.states() == ["open", "open"]
    hotel.peer.end_night_audit(hotel.now)
    hotel.settle()
    hotel.advance(2)
    assert hotel.states() == ["ok", "ok"] and len(hotel.peer.postings) == 2
    hotel.check()


def test_na_answer_waits_for_ne(tmp_path):
    """AS NA (night audit running, no NS seen): the posting waits (retry) and goes again at NE."""
    hotel = _hotel(tmp_path)
    hotel.peer.faults.queue(parse_fault("NA"))
    hotel.queue("101")
    [posting] = hotel.postings()
    assert (posting.state, posting.answer_code) == ("retry", "NA")
    hotel.peer.end_night_audit(hotel.now)
    hotel.settle()
    hotel.advance(1)
    assert hotel.states() == ["ok"] and [p.answer for p in hotel.peer.postings] == ["NA", "OK"]
    hotel.check()


def test_ry_retries_with_backoff(tmp_path):
    """AS RY: retried with backoff (30 s, then doubling), each time with a fresh P#."""
    hotel = _hotel(tmp_path)
    hotel.peer.faults.queue(parse_fault("RY"))
    hotel.peer.faults.queue(parse_fault("RY"))
    hotel.queue("101")
    hotel.advance(25)
    assert len(hotel.peer.postings) == 1
    hotel.advance(10)
    assert len(hotel.peer.postings) == 2
    hotel.advance(50)
    assert len(hotel.peer.postings) == 2  # the second wait is 60 s
    hotel.advance(20)
    assert hotel.states() == ["ok"]
    assert [p.sequence for p in hotel.peer.postings] == [1, 2, 3]
    hotel.check()


@pytest.mark.parametrize("code", ["UR", "NG", "NP", "DN", "IA"])
def test_refusals_fail_with_the_pms_text_and_are_never_resent(tmp_path, code):
    """UR, NG, NP, DN, IA: failed, the PMS's CT text kept for the review screen; never sent again."""
    hotel = _hotel(tmp_path)
    hotel.peer.faults.queue(parse_fault(code))
    hotel.queue("101")
    hotel.advance(3600)
    [posting] = hotel.postings()
    assert posting.state == "failed" and posting.answer_code == code
    assert posting.answer_text and posting.answer_text in posting.reason
    assert len(hotel.peer.postings) == 1
    hotel.check()


def test_retry_backoff_is_bounded(tmp_path):
    """§8 item 4: retry only on RY, with a bounded backoff; the posting eventually fails, never loops."""
    from appliance import postings

    delays = [postings.retry_later("RY", n, hotel_now := __import__("datetime").datetime.now(UTC))
              for n in range(1, postings.MAX_RETRIES + 1)]
    assert delays[-1].state == "failed"
    assert max(d.next_attempt_at - hotel_now for d in delays[:-1]) <= timedelta(seconds=postings.RETRY_CAP_SECONDS)
