"""The PMS goes away for 30 s while calls keep coming; and the PMS loses an answer now and then.

Postings wait while the link is down and drain when it returns; nothing is lost or posted twice. A posting
whose answer never comes is ``failed`` (no answer) and the next posting still goes out.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from appliance.db.models import Posting
from appliance.db.session import make_engine, make_sessionmaker
from appliance.pipeline import add_posting
from tests.integration.harness import Site, wait_for

pytestmark = pytest.mark.slow
CALLS = 240
LOSE_EVERY = "25:lose-pa"


def test_postings_wait_for_the_pms_and_a_lost_answer_fails_only_its_posting(tmp_path, db_url) -> None:
    site = Site(tmp_path, db_url, answer_timeout=3.0)
    site.write_config()
    try:
        site.start_pms("--fault-every", LOSE_EVERY)
        site.start_daemon()
        site.start_pbx(CALLS, 4)
        wait_for(lambda: site.db()["states"].get("ok", 0) >= 5, 60, "first postings ok", site)

        site.kill("pms", signal.SIGTERM)
        stopped_at = site.db()
        time.sleep(30)
        during = site.db()
        assert during["calls"] > stopped_at["calls"], "calls must keep arriving while the PMS is away"
        assert during["states"].get("open", 0) > stopped_at["states"].get("open", 0), site.logs()
        assert during["states"].get("ok", 0) == stopped_at["states"].get("ok", 0)

        site.start_pms("--fault-every", LOSE_EVERY)
        wait_for(lambda: len(site.pbx_sent()) == CALLS and site.db()["calls"] == CALLS, 120, "all calls", site)
        wait_for(lambda: not (site.db()["states"].get("open") or site.db()["states"].get("retry")), 120,
                 "the queue drained", site)

        db = site.db()
        received = site.pms_received()
        sequences = [r["sequence"] for r in received]
        assert len(sequences) == len(set(sequences))
        charges = Counter((r["room"], r["amount"], r["date"], r["time"], r["dialled"]) for r in received)
        assert [c for c, n in charges.items() if n > 1] == []
        assert len(db["postings"]) == db["chargeable"]

        ok = {p.sequence for p in db["postings"] if p.state == "ok"}
        answered_ok = {r["sequence"] for r in received if r["answer"] == "OK"}
        lost = {r["sequence"] for r in received if r["fault"] == "lose-pa"}
        failed = [p for p in db["postings"] if p.state == "failed"]
        assert ok <= answered_ok
        assert lost, "the simulator lost no answer; the fault was not exercised"
        assert all(p.reason.startswith("no answer: check the folio before re-posting") for p in failed)
        assert lost <= {p.sequence for p in failed}
        # The link does not stall on a lost answer: the next posting goes out and is answered.
        followed = [sequence for sequence in lost if sequence < max(sequences)]
        assert followed, "no lost answer was followed by another posting"
        assert all(min(s for s in sequences if s > sequence) in ok for sequence in followed)
        assert answered_ok - ok <= {p.sequence for p in failed}  # the PS in flight when the PMS stopped
        print(f"calls={db['calls']} postings={db['states']} received={len(received)} lost={len(lost)}")
    finally:
        site.stop_all()


def _queue(site: Site, *rooms: str) -> None:
    engine = make_engine(site.db_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            for room in rooms:
                add_posting(session, call=None, link="pms", room=room, stay_id=None, amount=Decimal("1.25"),
                            currency="USD", now=datetime.now(timezone.utc), cause="test", destination="44207")
    finally:
        engine.dispose()


def _reasons(site: Site) -> dict[str, tuple[str, str]]:
    engine = make_engine(site.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            return {p.room: (p.state, p.reason) for p in session.scalars(select(Posting))}
    finally:
        engine.dispose()


def test_a_late_answer_counts_and_nothing_is_posted_twice(tmp_path, db_url) -> None:
    """Over loopback TCP with the real daemon (answer timeout 2 s): the PA of the first posting comes 4 s
    late, while the next posting is in flight; it is not taken for the next one, and the first becomes
    ``ok`` ("late answer"). A late NG keeps its posting failed, with the PMS's reason. The PMS received
    each posting once."""
    site = Site(tmp_path, db_url, answer_timeout=2.0)
    site.write_config()
    log = tmp_path / "daemon.log"
    try:
        site.start_pms()
        site.start_daemon()
        wait_for(lambda: log.exists() and "PMS link pms up" in log.read_text(), 60, "the PMS link", site)
        assert site.control("fault late-pa 4").startswith("OK"), site.logs()
        _queue(site, "101", "102")
        wait_for(lambda: _reasons(site).get("101", ("", ""))[0] == "ok"
                 and _reasons(site).get("102", ("", ""))[0] == "ok", 60, "the late OK", site)
        assert site.control("fault late-pa 4").startswith("OK")
        _queue(site, "999")
        wait_for(lambda: "late answer" in _reasons(site).get("999", ("", ""))[1], 60, "the late NG", site)

        reasons = _reasons(site)
        assert reasons["101"][1].startswith("late answer from the PMS: OK (after ")
        assert reasons["102"] == ("ok", "OK: posted")
        assert reasons["999"][0] == "failed"
        assert reasons["999"][1].startswith("late answer from the PMS: PMS refused it, NG: guest not found")
        received = site.pms_received()
        assert sorted(r["room"] for r in received) == ["101", "102", "999"]
        assert len({r["sequence"] for r in received}) == 3
    finally:
        site.stop_all()
